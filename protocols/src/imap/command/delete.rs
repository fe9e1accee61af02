//! DELETE (RFC 9051 §6.3.5).

use crate::imap::backend::ImapBackend;
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

impl Core {
    pub(crate) fn delete(&mut self, tag: Tag, mailbox: &AString, backend: &mut dyn ImapBackend) {
        let Some(name) = self.mailbox_name(&tag, mailbox) else {
            return;
        };
        if name == "INBOX" {
            return self.respond(Some(&tag), Status::No, "[CANNOT] INBOX can't be deleted");
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            // RFC 9051 §6.3.5: deleting the selected mailbox leaves it.
            self.leave_mailbox(backend);
            if self.enabled.qresync || self.enabled.rev2 {
                self.untagged("OK [CLOSED] Mailbox deleted");
            }
        }
        let staged = backend.delete(&name);
        self.wait_for(tag, staged, AfterCommit::Simple("DELETE completed"));
    }
}
