//! APPEND (RFC 9051 §6.3.12) with `[APPENDUID]` (RFC 4315), APPENDLIMIT (RFC 7889) and
//! `UTF8 (~{n})` (RFC 6855). The literal is held in memory up to `IMAP_APPEND_BYTES_MAX`
//! (the framer was allowed that much for this command); streaming it comes later.

use crate::imap::backend::{BackendError, ImapBackend, InternalDate};
use crate::imap::command::{Flag, flag_list, to_flags};
use crate::imap::date::parse_date_time;
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendArgs {
    pub mailbox: AString,
    pub flags: Vec<Flag>,
    pub date: Option<InternalDate>,
    pub message: Vec<u8>,
}

/// `SP mailbox [SP flag-list] [SP date-time] SP (literal / literal8 / "UTF8" SP "(" literal8 ")")`
pub fn parse(input: &mut Cursor<'_>) -> Result<AppendArgs, ParseErrorKind> {
    input.sp()?;
    let mailbox = input.astring()?;
    input.sp()?;
    let mut flags = Vec::new();
    if input.peek() == Some(b'(') {
        flags = flag_list(input, false)?;
        input.sp()?;
    }
    let mut date = None;
    if input.peek() == Some(b'"') {
        let text = input.quoted()?;
        date = Some(parse_date_time(text.as_bytes()).ok_or(ParseErrorKind::InvalidArgument)?);
        input.sp()?;
    }
    let message = match input.peek() {
        Some(b'~') => input.literal8()?,
        Some(b'{') => input.literal()?.into_bytes(),
        Some(b'U' | b'u') => {
            let word = input.atom()?.to_ascii_uppercase();
            if word.as_str() != "UTF8" {
                return Err(ParseErrorKind::InvalidArgument);
            }
            input.sp()?;
            input.expect(b'(')?;
            let data = input.literal8()?;
            input.expect(b')')?;
            data
        }
        _ if input.at_eol() => return Err(ParseErrorKind::MissingArgument),
        _ => return Err(ParseErrorKind::InvalidArgument),
    };
    Ok(AppendArgs {
        mailbox,
        flags,
        date,
        message,
    })
}

impl Core {
    pub(crate) fn append(&mut self, tag: Tag, args: AppendArgs, backend: &mut dyn ImapBackend) {
        let Some(name) = self.mailbox_name(&tag, &args.mailbox) else {
            return;
        };
        let flags = match to_flags(&args.flags) {
            Ok(flags) => flags,
            Err(why) => return self.respond(Some(&tag), Status::Bad, &why),
        };
        if backend
            .append_limit()
            .is_some_and(|l| args.message.len() as u64 > l)
        {
            return self.respond(Some(&tag), Status::No, "[TOOBIG] Message too big");
        }
        match backend.append(&name, &flags, args.date, &args.message) {
            Err(BackendError::NoSuchMailbox) => {
                self.respond(Some(&tag), Status::No, "[TRYCREATE] Mailbox doesn't exist")
            }
            staged => self.wait_for(tag, staged, AfterCommit::Append),
        }
    }
}
