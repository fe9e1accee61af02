//! CREATE (RFC 9051 §6.3.4) with `USE (…)` (RFC 6154 CREATE-SPECIAL-USE).

use crate::imap::backend::{ImapBackend, SpecialUse};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateArgs {
    pub mailbox: AString,
    /// Names from `(USE (\Sent …))`.
    pub special_use: Vec<String>,
}

/// `SP mailbox [SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"]`
pub fn parse(input: &mut Cursor<'_>) -> Result<CreateArgs, ParseErrorKind> {
    input.sp()?;
    let mailbox = input.astring()?;
    let mut special_use = Vec::new();
    if !input.at_eol() {
        input.sp()?;
        input.expect(b'(')?;
        let name = input.atom()?.to_ascii_uppercase();
        if name.as_str() != "USE" {
            return Err(ParseErrorKind::InvalidArgument);
        }
        input.sp()?;
        input.expect(b'(')?;
        while input.peek() != Some(b')') {
            if !special_use.is_empty() {
                input.sp()?;
            }
            let flag = crate::imap::command::flag(input)?;
            special_use.push(match flag {
                crate::imap::command::Flag::System(bit) => crate::imap::backend::SystemFlags::NAMES
                    .iter()
                    .find(|(b, _)| *b == bit)
                    .map_or_else(String::new, |(_, n)| (*n).to_owned()),
                crate::imap::command::Flag::OtherSystem(n) => n,
                crate::imap::command::Flag::Keyword(k) => k,
            });
            if special_use.len() > 8 {
                return Err(ParseErrorKind::InvalidArgument);
            }
        }
        input.expect(b')')?;
        input.expect(b')')?;
    }
    Ok(CreateArgs {
        mailbox,
        special_use,
    })
}

impl Core {
    pub(crate) fn create(&mut self, tag: Tag, args: CreateArgs, backend: &mut dyn ImapBackend) {
        let Some(mut name) = self.mailbox_name(&tag, &args.mailbox) else {
            return;
        };
        // A trailing separator only says the client means to create children.
        if name.len() > 1 && name.ends_with('/') {
            name.pop();
        }
        let special_use = match args.special_use.as_slice() {
            [] => None,
            [one] => match SpecialUse::from_imap(one) {
                Some(u) => Some(u),
                None => {
                    return self.respond(
                        Some(&tag),
                        Status::No,
                        "[USEATTR] Unsupported special-use attribute",
                    );
                }
            },
            _ => {
                return self.respond(
                    Some(&tag),
                    Status::No,
                    "[USEATTR] Only one special-use attribute per mailbox",
                );
            }
        };
        if name == "INBOX" {
            return self.respond(Some(&tag), Status::No, "[ALREADYEXISTS] INBOX exists");
        }
        let staged = backend.create(&name, special_use);
        self.wait_for(tag, staged, AfterCommit::Simple("CREATE completed"));
    }
}
