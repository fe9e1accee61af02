//! SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7–8).

use crate::imap::backend::ImapBackend;
use crate::imap::session::{AfterCommit, Core};
use crate::imap::types::{AString, Tag};

impl Core {
    pub(crate) fn subscribe(
        &mut self,
        tag: Tag,
        mailbox: &AString,
        subscribe: bool,
        backend: &mut dyn ImapBackend,
    ) {
        let Some(name) = self.mailbox_name(&tag, mailbox) else {
            return;
        };
        let staged = backend.subscribe(&name, subscribe);
        let done = if subscribe {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        };
        self.wait_for(tag, staged, AfterCommit::Simple(done));
    }
}
