//! STATUS (RFC 9051 §6.3.11; HIGHESTMODSEQ RFC 7162, SIZE RFC 8438).

use crate::imap::backend::{ImapBackend, MailboxStatus};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{Core, Status};
use crate::imap::types::{AString, Tag};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    HighestModSeq,
    Size,
}

impl StatusItem {
    fn from_name(name: &str) -> Option<StatusItem> {
        Some(match name {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "SIZE" => StatusItem::Size,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    pub mailbox: AString,
    pub items: Vec<StatusItem>,
}

/// `"(" status-att *(SP status-att) ")"`
pub fn items(input: &mut Cursor<'_>) -> Result<Vec<StatusItem>, ParseErrorKind> {
    input.expect(b'(')?;
    let mut items = Vec::new();
    loop {
        let name = input.atom()?.to_ascii_uppercase();
        let item = StatusItem::from_name(name.as_str()).ok_or(ParseErrorKind::InvalidArgument)?;
        if !items.contains(&item) {
            items.push(item);
        }
        if input.peek() == Some(b')') {
            break;
        }
        input.sp()?;
    }
    input.expect(b')')?;
    Ok(items)
}

/// `SP mailbox SP "(" status-att *(SP status-att) ")"`
pub fn parse(input: &mut Cursor<'_>) -> Result<StatusArgs, ParseErrorKind> {
    input.sp()?;
    let mailbox = input.astring()?;
    input.sp()?;
    Ok(StatusArgs {
        mailbox,
        items: items(input)?,
    })
}

/// `MESSAGES 2 UIDNEXT 7`
pub fn format_items(items: &[StatusItem], status: &MailboxStatus) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item {
            StatusItem::Messages => format!("MESSAGES {}", status.messages),
            StatusItem::Recent => format!("RECENT {}", status.recent),
            StatusItem::UidNext => format!("UIDNEXT {}", status.uidnext),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", status.uidvalidity),
            StatusItem::Unseen => format!("UNSEEN {}", status.unseen),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", status.highestmodseq),
            StatusItem::Size => format!("SIZE {}", status.size),
        })
        .collect();
    parts.join(" ")
}

impl Core {
    pub(crate) fn status(&mut self, tag: &Tag, args: &StatusArgs, backend: &mut dyn ImapBackend) {
        let Some(name) = self.mailbox_name(tag, &args.mailbox) else {
            return;
        };
        if args.items.contains(&StatusItem::HighestModSeq) {
            self.enabled.condstore = true;
        }
        match backend.status(&name) {
            Ok(status) => {
                let line = format!(
                    "STATUS {} ({})",
                    self.wire_name(&name),
                    format_items(&args.items, &status)
                );
                self.untagged(&line);
                self.refresh(backend, true);
                self.respond(Some(tag), Status::Ok, "STATUS completed");
            }
            Err(error) => self.respond(Some(tag), Status::No, &error.response()),
        }
    }
}
