//! IDLE (RFC 2177): the session says `+ idling`, pushes updates as the engine reports
//! changes (`ImapSession::mailbox_changed`), and ends at `DONE`.

use crate::imap::backend::ImapBackend;
use crate::imap::session::{Core, MailboxEvent, Status};
use crate::imap::types::Tag;

impl Core {
    pub(crate) fn idle_start(&mut self, tag: Tag, backend: &mut dyn ImapBackend) {
        self.raw(b"+ idling\r\n");
        self.idle = Some(tag);
        self.mailbox_events.push_back(MailboxEvent::IdleStarted);
        self.refresh(backend, true);
    }

    pub(crate) fn idle_done(&mut self, done: bool, backend: &mut dyn ImapBackend) {
        let Some(tag) = self.idle.take() else {
            return;
        };
        self.mailbox_events.push_back(MailboxEvent::IdleDone);
        self.refresh(backend, true);
        if done {
            self.respond(Some(&tag), Status::Ok, "IDLE terminated");
        } else {
            self.respond(Some(&tag), Status::Bad, "Expected DONE");
        }
    }
}
