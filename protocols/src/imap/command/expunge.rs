//! EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, §6.4.9); CLOSE's silent expunge ends here too.

use crate::imap::backend::{Completion, ImapBackend, SystemFlags};
use crate::imap::command::SequenceSet;
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::Tag;

impl Core {
    pub(crate) fn expunge(
        &mut self,
        tag: Tag,
        uids: Option<&SequenceSet>,
        close: bool,
        backend: &mut dyn ImapBackend,
    ) {
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return self.respond(Some(&tag), Status::No, "[READ-ONLY] Mailbox is read-only");
        }
        let wanted = match uids {
            Some(set) => match self.resolve(&tag, set, true) {
                Some(wanted) => Some(wanted),
                None => return,
            },
            None => None,
        };
        let Some(selected) = &self.selected else {
            return;
        };
        let deleted: Vec<u32> = selected
            .messages
            .iter()
            .filter(|m| m.flags.system.contains(SystemFlags::DELETED))
            .map(|m| m.uid)
            .filter(|u| wanted.as_ref().is_none_or(|w| w.binary_search(u).is_ok()))
            .filter(|&u| !selected.is_expunged(u))
            .collect();
        if deleted.is_empty() {
            self.refresh(backend, true);
            return self.respond(Some(&tag), Status::Ok, "EXPUNGE completed");
        }
        let staged = backend.expunge(&selected.name, &deleted);
        self.wait_for(
            tag,
            staged,
            AfterCommit::Expunge {
                uid: uids.is_some(),
                close,
            },
        );
    }

    pub(crate) fn expunge_done(
        &mut self,
        tag: Tag,
        _uid: bool,
        close: bool,
        completion: Completion,
        backend: &mut dyn ImapBackend,
    ) {
        if close {
            self.leave_mailbox(backend);
            return self.respond(Some(&tag), Status::Ok, "CLOSE completed");
        }
        if let (Completion::Expunged { uids }, Some(selected)) = (completion, &mut self.selected) {
            for uid in uids {
                if selected.index_of(uid).is_some()
                    && let Err(at) = selected.expunged.binary_search(&uid)
                {
                    selected.expunged.insert(at, uid);
                }
            }
        }
        self.refresh(backend, true);
        self.respond(Some(&tag), Status::Ok, "EXPUNGE completed");
    }
}
