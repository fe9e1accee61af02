//! RENAME (RFC 9051 §6.3.6).

use crate::imap::backend::ImapBackend;
use crate::imap::parser::{Command, Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

/// `SP mailbox SP mailbox`
pub fn parse(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    input.sp()?;
    let from = input.astring()?;
    input.sp()?;
    let to = input.astring()?;
    Ok(Command::Rename { from, to })
}

impl Core {
    pub(crate) fn rename(
        &mut self,
        tag: Tag,
        from: &AString,
        to: &AString,
        backend: &mut dyn ImapBackend,
    ) {
        let Some(from) = self.mailbox_name(&tag, from) else {
            return;
        };
        let Some(to) = self.mailbox_name(&tag, to) else {
            return;
        };
        if to == "INBOX" {
            return self.respond(Some(&tag), Status::No, "[ALREADYEXISTS] INBOX exists");
        }
        let staged = backend.rename(&from, &to);
        self.wait_for(tag, staged, AfterCommit::Simple("RENAME completed"));
    }
}
