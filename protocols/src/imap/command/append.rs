//! APPEND (RFC 9051 §6.3.12) with `[APPENDUID]` (RFC 4315), APPENDLIMIT (RFC 7889) and
//! `UTF8 (~{n})` (RFC 6855).
//!
//! The message literal is streamed: when its announcement ends the frame so far, the
//! command head is parsed ([`parse_head`]), the backend is asked first
//! (`append_begin`: mailbox, quota, size — refused before the client sends a byte), and
//! the data goes to the backend (`append_data`) as it arrives, never into the frame.
//! Over APPENDLIMIT a synchronising literal gets `NO [TOOBIG]`; a non-synchronising one
//! is already on its way, so the answer is `BYE` (RFC 7888 §4). [`parse`] remains for an
//! APPEND whose whole frame was buffered (a head the streaming path did not recognise).

use crate::imap::backend::{BackendError, Flags, ImapBackend, InternalDate};
use crate::imap::command::{Flag, flag_list, to_flags};
use crate::imap::date::parse_date_time;
use crate::imap::framing::Literal;
use crate::imap::limits::IMAP_APPEND_BYTES_MAX;
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

/// An APPEND whose message literal is being streamed to the backend.
#[derive(Debug)]
pub(crate) struct AppendStream {
    tag: Tag,
    mailbox: String,
    flags: Flags,
    date: Option<InternalDate>,
    /// `UTF8 (~{n})`: a `)` must follow the literal.
    utf8: bool,
    /// Where the frame continues after the literal (the data is not in the frame).
    tail_from: usize,
    /// The backend refused some data: answered at the end of the command.
    failed: Option<BackendError>,
}

/// The part of an APPEND before its message literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppendHead {
    pub tag: Tag,
    pub mailbox: AString,
    pub flags: Vec<Flag>,
    pub date: Option<InternalDate>,
    pub utf8: bool,
}

/// Parses `tag SP "APPEND" SP mailbox [SP flag-list] [SP date-time] SP` followed by
/// exactly a literal announcement (`{n}`, `~{n}`, `UTF8 (~{n}`, each with `+` or not) at
/// the end of `frame`; `None` when the announced literal is not the message (say, the
/// mailbox name as a literal) or the head is malformed (then the whole command is
/// framed and parsed as usual, and answered BAD).
pub(crate) fn parse_head(frame: &[u8]) -> Option<AppendHead> {
    let mut input = Cursor::new(frame);
    let tag = input.tag().ok()?;
    input.sp().ok()?;
    if !input.atom().ok()?.as_str().eq_ignore_ascii_case("APPEND") {
        return None;
    }
    input.sp().ok()?;
    let mailbox = input.astring().ok()?;
    input.sp().ok()?;
    let mut flags = Vec::new();
    if input.peek() == Some(b'(') {
        flags = flag_list(&mut input, false).ok()?;
        input.sp().ok()?;
    }
    let mut date = None;
    if input.peek() == Some(b'"') {
        let text = input.quoted().ok()?;
        date = Some(parse_date_time(text.as_bytes())?);
        input.sp().ok()?;
    }
    let mut rest = input.rest();
    let utf8 = rest
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"UTF8 ("));
    if utf8 {
        rest = &rest[6..];
    }
    let rest = rest.strip_suffix(b"\n")?;
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let (binary, rest) = match rest.strip_prefix(b"~") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if utf8 && !binary {
        return None;
    }
    let digits = rest.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(AppendHead {
        tag,
        mailbox,
        flags,
        date,
        utf8,
    })
}

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
    /// The message literal of an APPEND is announced: refuse it, or stream it.
    pub(crate) fn append_literal(
        &mut self,
        head: AppendHead,
        literal: Literal,
        backend: &mut dyn ImapBackend,
    ) {
        let tag = head.tag;
        let limit = backend
            .append_limit()
            .map_or(IMAP_APPEND_BYTES_MAX, |l| l.min(IMAP_APPEND_BYTES_MAX));
        if literal.len > limit {
            if literal.sync {
                self.framer.reject_literal();
                return self.respond(Some(&tag), Status::No, "[TOOBIG] Message too big");
            }
            // RFC 7888 §4: the data is already coming and cannot be refused otherwise.
            return self.bye("[TOOBIG] Message too big for APPENDLIMIT");
        }
        let Some(name) = self.mailbox_name(&tag, &head.mailbox) else {
            return self.framer.reject_literal();
        };
        let flags = match to_flags(&head.flags) {
            Ok(flags) => flags,
            Err(why) => {
                self.framer.reject_literal();
                return self.respond(Some(&tag), Status::Bad, &why);
            }
        };
        if let Err(e) = backend.append_begin(&name, literal.len) {
            self.framer.reject_literal();
            let text = match e {
                BackendError::NoSuchMailbox => "[TRYCREATE] Mailbox doesn't exist".to_owned(),
                e => e.response(),
            };
            return self.respond(Some(&tag), Status::No, &text);
        }
        if literal.sync {
            self.output
                .extend_from_slice(b"+ Ready for literal data\r\n");
        }
        self.framer.accept_literal_streamed();
        self.append = Some(Box::new(AppendStream {
            tag,
            mailbox: name,
            flags,
            date: head.date,
            utf8: head.utf8,
            tail_from: self.framer.frame_len(),
            failed: None,
        }));
    }

    /// Literal data of the streaming APPEND arrived.
    pub(crate) fn append_stream_data(&mut self, backend: &mut dyn ImapBackend) {
        let data = self.framer.take_streamed();
        if let Some(s) = &mut self.append
            && s.failed.is_none()
            && let Err(e) = backend.append_data(&data)
        {
            s.failed = Some(e);
        }
    }

    /// A second literal in one APPEND (MULTIAPPEND, not offered): the command is refused.
    pub(crate) fn append_second_literal(&mut self, backend: &mut dyn ImapBackend) {
        if let Some(s) = self.append.take() {
            backend.append_abort();
            self.framer.reject_literal();
            self.respond(Some(&s.tag), Status::Bad, "One message per APPEND");
        }
    }

    /// The streaming APPEND's frame is complete (`frame` holds its line parts only).
    pub(crate) fn append_complete(&mut self, frame: &[u8], backend: &mut dyn ImapBackend) {
        let Some(s) = self.append.take() else {
            return;
        };
        let tail = frame.get(s.tail_from..).unwrap_or_default();
        let tail = if s.utf8 {
            tail.strip_prefix(b")")
        } else {
            Some(tail)
        };
        if !matches!(tail, Some(b"\r\n" | b"\n")) {
            backend.append_abort();
            return self.respond(Some(&s.tag), Status::Bad, "Unexpected extra arguments");
        }
        if let Some(e) = s.failed {
            backend.append_abort();
            return self.respond(Some(&s.tag), Status::No, &e.response());
        }
        match backend.append_commit(&s.mailbox, &s.flags, s.date) {
            Err(BackendError::NoSuchMailbox) => self.respond(
                Some(&s.tag),
                Status::No,
                "[TRYCREATE] Mailbox doesn't exist",
            ),
            staged => self.wait_for(s.tag, staged, AfterCommit::Append),
        }
    }

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
