//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH (RFC 4731), SEARCHRES (RFC 5182)
//! and MODSEQ (RFC 7162). Done in the session: flags, dates and sizes from the message
//! list; header and body text read through the backend, transfer-decoded and compared
//! case-insensitively (Unicode lower case) as UTF-8.

use crate::imap::backend::{
    ImapBackend, InternalDate, MessageLayout, MessageMeta, PartKind, SystemFlags,
};
use crate::imap::command::fetch::decode_part;
use crate::imap::command::{SequenceSet, format_set, number64, sequence_set};
use crate::imap::date::{local_day, parse_date};
use crate::imap::limits::{IMAP_DECODE_BYTES_MAX, IMAP_SEARCH_KEYS_MAX};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::search_text::{casemap, decode_header, to_utf8};
use crate::imap::session::{Core, Status};
use crate::imap::types::Tag;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    /// A system flag set (or, with `unset`, not set).
    Flag {
        bit: u8,
        unset: bool,
    },
    New,
    Old,
    Recent,
    Keyword {
        name: String,
        unset: bool,
    },
    /// A header field contains the text (`FROM`, `SUBJECT`, `HEADER name text`…).
    Header {
        field: String,
        text: String,
    },
    Body(String),
    Text(String),
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    Seq(SequenceSet),
    ModSeq(u64),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnOpt {
    Min,
    Max,
    All,
    Count,
    Save,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchArgs {
    pub uid: bool,
    /// `RETURN (…)` given: answer with ESEARCH (empty list means ALL).
    pub ret: Option<Vec<ReturnOpt>>,
    pub key: SearchKey,
    /// The CHARSET given is one we search in (UTF-8, US-ASCII); otherwise the answer
    /// is `NO [BADCHARSET]` (RFC 9051 §6.4.4), not BAD.
    pub charset_known: bool,
}

/// `[SP "RETURN" SP "(" opts ")"] [SP "CHARSET" SP astring] 1*(SP search-key)`
pub fn parse(input: &mut Cursor<'_>, uid: bool) -> Result<SearchArgs, ParseErrorKind> {
    input.sp()?;
    let mut ret = None;
    let mut count = 0usize;
    let mut keys = Vec::new();
    let mut charset_known = true;
    let first = key(input, &mut count, 0)?;
    let first = match first {
        Parsed::Return => {
            input.sp()?;
            input.expect(b'(')?;
            let mut opts = Vec::new();
            while input.peek() != Some(b')') {
                let word = input.atom()?.to_ascii_uppercase();
                opts.push(match word.as_str() {
                    "MIN" => ReturnOpt::Min,
                    "MAX" => ReturnOpt::Max,
                    "ALL" => ReturnOpt::All,
                    "COUNT" => ReturnOpt::Count,
                    "SAVE" => ReturnOpt::Save,
                    _ => return Err(ParseErrorKind::InvalidArgument),
                });
                if input.peek() == Some(b' ') {
                    input.sp()?;
                }
            }
            input.expect(b')')?;
            ret = Some(opts);
            input.sp()?;
            key(input, &mut count, 0)?
        }
        other => other,
    };
    let first = match first {
        Parsed::Charset => {
            input.sp()?;
            let charset = input.astring()?;
            let name = String::from_utf8_lossy(charset.as_bytes()).to_ascii_uppercase();
            charset_known = crate::imap::command::sort::charset_known(&name);
            input.sp()?;
            key(input, &mut count, 0)?
        }
        other => other,
    };
    match first {
        Parsed::Key(k) => keys.push(k),
        _ => return Err(ParseErrorKind::InvalidArgument),
    }
    while !input.at_eol() {
        input.sp()?;
        match key(input, &mut count, 0)? {
            Parsed::Key(k) => keys.push(k),
            _ => return Err(ParseErrorKind::InvalidArgument),
        }
    }
    let key = if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    };
    Ok(SearchArgs {
        uid,
        ret,
        key,
        charset_known,
    })
}

/// `1*(SP search-key)`, as SORT and THREAD take them after their charset.
pub(crate) fn parse_keys(input: &mut Cursor<'_>) -> Result<SearchKey, ParseErrorKind> {
    let mut count = 0usize;
    let mut keys = Vec::new();
    loop {
        input.sp()?;
        match key(input, &mut count, 0)? {
            Parsed::Key(k) => keys.push(k),
            _ => return Err(ParseErrorKind::InvalidArgument),
        }
        if input.at_eol() {
            break;
        }
    }
    Ok(if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    })
}

/// Whether a key asks for MODSEQ (RFC 7162: the answer then carries the highest).
pub(crate) fn uses_modseq_key(key: &SearchKey) -> bool {
    uses_modseq(key)
}

enum Parsed {
    Key(SearchKey),
    Return,
    Charset,
}

fn text(input: &mut Cursor<'_>) -> Result<String, ParseErrorKind> {
    input.sp()?;
    Ok(String::from_utf8_lossy(input.astring()?.as_bytes()).into_owned())
}

fn day(input: &mut Cursor<'_>) -> Result<i64, ParseErrorKind> {
    input.sp()?;
    let value = if input.peek() == Some(b'"') {
        input.quoted()?.into_bytes()
    } else {
        input.atom()?.as_str().as_bytes().to_vec()
    };
    parse_date(&value).ok_or(ParseErrorKind::InvalidArgument)
}

fn key(input: &mut Cursor<'_>, count: &mut usize, depth: usize) -> Result<Parsed, ParseErrorKind> {
    *count += 1;
    if *count > IMAP_SEARCH_KEYS_MAX || depth > 32 {
        return Err(ParseErrorKind::ListTooDeep);
    }
    let sub = |input: &mut Cursor<'_>, count: &mut usize| -> Result<SearchKey, ParseErrorKind> {
        match key(input, count, depth + 1)? {
            Parsed::Key(k) => Ok(k),
            _ => Err(ParseErrorKind::InvalidArgument),
        }
    };
    match input.peek() {
        Some(b'(') => {
            input.expect(b'(')?;
            let mut keys = vec![sub(input, count)?];
            while input.peek() == Some(b' ') {
                input.sp()?;
                keys.push(sub(input, count)?);
            }
            input.expect(b')')?;
            return Ok(Parsed::Key(SearchKey::And(keys)));
        }
        Some(b'0'..=b'9' | b'*' | b'$') => {
            return Ok(Parsed::Key(SearchKey::Seq(sequence_set(input)?)));
        }
        _ => {}
    }
    let word = input.atom()?.to_ascii_uppercase();
    let flag = |bit, unset| SearchKey::Flag { bit, unset };
    let header = |field: &str, input: &mut Cursor<'_>| -> Result<SearchKey, ParseErrorKind> {
        Ok(SearchKey::Header {
            field: field.to_owned(),
            text: text(input)?,
        })
    };
    let key = match word.as_str() {
        "RETURN" => return Ok(Parsed::Return),
        "CHARSET" => return Ok(Parsed::Charset),
        "ALL" => SearchKey::All,
        "ANSWERED" => flag(SystemFlags::ANSWERED, false),
        "DELETED" => flag(SystemFlags::DELETED, false),
        "DRAFT" => flag(SystemFlags::DRAFT, false),
        "FLAGGED" => flag(SystemFlags::FLAGGED, false),
        "SEEN" => flag(SystemFlags::SEEN, false),
        "UNANSWERED" => flag(SystemFlags::ANSWERED, true),
        "UNDELETED" => flag(SystemFlags::DELETED, true),
        "UNDRAFT" => flag(SystemFlags::DRAFT, true),
        "UNFLAGGED" => flag(SystemFlags::FLAGGED, true),
        "UNSEEN" => flag(SystemFlags::SEEN, true),
        "NEW" => SearchKey::New,
        "OLD" => SearchKey::Old,
        "RECENT" => SearchKey::Recent,
        "KEYWORD" | "UNKEYWORD" => {
            input.sp()?;
            SearchKey::Keyword {
                name: input.atom()?.as_str().to_owned(),
                unset: word.as_str() == "UNKEYWORD",
            }
        }
        "BCC" => header("BCC", input)?,
        "CC" => header("CC", input)?,
        "FROM" => header("FROM", input)?,
        "TO" => header("TO", input)?,
        "SUBJECT" => header("SUBJECT", input)?,
        "HEADER" => {
            input.sp()?;
            let field = String::from_utf8_lossy(input.astring()?.as_bytes()).to_ascii_uppercase();
            SearchKey::Header {
                field,
                text: text(input)?,
            }
        }
        "BODY" => SearchKey::Body(text(input)?),
        "TEXT" => SearchKey::Text(text(input)?),
        "BEFORE" => SearchKey::Before(day(input)?),
        "ON" => SearchKey::On(day(input)?),
        "SINCE" => SearchKey::Since(day(input)?),
        "SENTBEFORE" => SearchKey::SentBefore(day(input)?),
        "SENTON" => SearchKey::SentOn(day(input)?),
        "SENTSINCE" => SearchKey::SentSince(day(input)?),
        "LARGER" => {
            input.sp()?;
            SearchKey::Larger(number64(input)?)
        }
        "SMALLER" => {
            input.sp()?;
            SearchKey::Smaller(number64(input)?)
        }
        "UID" => {
            input.sp()?;
            SearchKey::Uid(sequence_set(input)?)
        }
        "MODSEQ" => {
            input.sp()?;
            if input.peek() == Some(b'"') {
                // entry-name SP entry-type-req: per-flag modseqs are not kept separately.
                input.quoted()?;
                input.sp()?;
                input.atom()?;
                input.sp()?;
            }
            SearchKey::ModSeq(number64(input)?)
        }
        "NOT" => {
            input.sp()?;
            SearchKey::Not(Box::new(sub(input, count)?))
        }
        "OR" => {
            input.sp()?;
            let a = sub(input, count)?;
            input.sp()?;
            let b = sub(input, count)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        _ => return Err(ParseErrorKind::InvalidArgument),
    };
    Ok(Parsed::Key(key))
}

/// Lazily loaded message content for one evaluation.
struct Content<'a> {
    backend: &'a mut dyn ImapBackend,
    mailbox: &'a str,
    uid: u32,
    layout: Option<Option<MessageLayout>>,
    header: Option<String>,
    body: Option<String>,
    /// The backend's lines of these fields ([`ImapBackend::search_header`]), when it
    /// had them for this message; `fields` is empty otherwise.
    cached_fields: &'static [&'static str],
    cached: Option<&'a [u8]>,
}

/// A header as SEARCH compares it: unfolded, RFC 2047 words decoded, casemapped.
fn searchable_header(raw: &[u8]) -> String {
    if raw.is_ascii() && memchr::memmem::find(raw, b"=?").is_none() {
        // No RFC 2047 word and nothing beyond ASCII (most headers): decoding changes
        // nothing and the casemap is ASCII uppercase; unfold and uppercase in one pass.
        let mut text = String::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i..].starts_with(b"\r\n ") || raw[i..].starts_with(b"\r\n\t") {
                text.push(' ');
                i += 3;
            } else {
                text.push(char::from(raw[i].to_ascii_uppercase()));
                i += 1;
            }
        }
        return text;
    }
    let unfolded = String::from_utf8_lossy(raw)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    casemap(&decode_header(unfolded.as_bytes()))
}

/// What `field_values(&searchable_header(lines), field)` answers, looking only at the
/// lines of `field` (each processed on its own: RFC 2047 words never span lines, and
/// a line starts with its field name, so nothing joins across lines). `field` is one
/// of the backend's ASCII field names.
fn cached_field_values(lines: &[u8], field: &str, wanted: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let mut rest = lines;
    while !rest.is_empty() {
        // A logical line: up to a line feed not followed by a space or tab.
        let mut end = 0;
        loop {
            match memchr::memchr(b'\n', &rest[end..]) {
                None => {
                    end = rest.len();
                    break;
                }
                Some(i) => {
                    end += i + 1;
                    if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
            }
        }
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let named = line.len() > field.len()
            && line[field.len()] == b':'
            && line[..field.len()].eq_ignore_ascii_case(field.as_bytes());
        if !named {
            continue;
        }
        let ascii = std::str::from_utf8(line)
            .ok()
            .filter(|l| l.is_ascii() && !l.contains("=?"));
        if let Some(line) = ascii {
            // What the general path below gives for such a line (one value: the line is
            // unfolded, so its only CRLF is the last), built in place.
            push_ascii_value(
                &line[field.len() + 1..],
                out.get_or_insert_with(String::new),
            );
        } else if let Some(values) = field_values(&searchable_header(line), wanted) {
            out.get_or_insert_with(String::new).push_str(&values);
        }
    }
    out
}

/// Appends an ASCII field value as [`searchable_header`] and [`field_values`] give it:
/// unfolded, uppercased, trimmed, then a line feed. SEARCH FROM/TO/SUBJECT spent most of
/// its time building and splitting the intermediate strings.
fn push_ascii_value(value: &str, out: &mut String) {
    // Trimming first gives the same text: unfolding only turns whitespace into a space.
    let mut rest = value.trim();
    let start = out.len();
    // Stretches between folds are copied whole and uppercased in place.
    while let Some(i) = memchr::memchr(b'\r', rest.as_bytes()) {
        let bytes = rest.as_bytes();
        if bytes.get(i + 1) == Some(&b'\n') && matches!(bytes.get(i + 2), Some(b' ' | b'\t')) {
            out.push_str(&rest[..i]);
            out.push(' ');
            rest = &rest[i + 3..];
        } else {
            out.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out[start..].make_ascii_uppercase();
    out.push('\n');
}

/// What a line of a [`searchable_header`] starts with when it is of `field`.
fn field_prefix(field: &str) -> String {
    format!("{}:", casemap(field))
}

/// The values of one header field in a [`searchable_header`], one per line; `wanted` is
/// its [`field_prefix`].
fn field_values(header: &str, wanted: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for line in header.split("\r\n") {
        if let Some(value) = line.strip_prefix(wanted) {
            let out = out.get_or_insert_with(String::new);
            out.push_str(value.trim());
            out.push('\n');
        }
    }
    out
}

/// True when `key` looks at one of `fields` (so the backend's lines are worth asking for).
fn uses_fields(key: &SearchKey, fields: &[&str]) -> bool {
    let mut found = false;
    each_leaf(key, &mut |k| {
        if let SearchKey::Header { field, .. } = k {
            found |= fields.iter().any(|f| f.eq_ignore_ascii_case(field));
        }
    });
    found
}

/// Calls `f` on every key of the tree that is not NOT, OR or an AND list.
fn each_leaf(key: &SearchKey, f: &mut dyn FnMut(&SearchKey)) {
    match key {
        SearchKey::Not(k) => each_leaf(k, f),
        SearchKey::Or(a, b) => {
            each_leaf(a, f);
            each_leaf(b, f);
        }
        SearchKey::And(keys) => keys.iter().for_each(|k| each_leaf(k, f)),
        leaf => f(leaf),
    }
}

/// Messages whose cached header lines are asked for at once: bounds the memory a
/// SEARCH of a large mailbox holds (a few hundred bytes per message).
const SEARCH_HEADER_BATCH: usize = 256;

impl Content<'_> {
    fn layout(&mut self) -> Option<&MessageLayout> {
        if self.layout.is_none() {
            self.layout = Some(self.backend.layout(self.mailbox, self.uid).ok());
        }
        self.layout.as_ref().and_then(Option::as_ref)
    }

    /// The top-level header, unfolded, RFC 2047 words decoded, casemapped.
    fn header(&mut self) -> &str {
        if self.header.is_none() {
            let range = self
                .layout()
                .and_then(|l| l.parts.first().map(|p| p.header));
            let text = range
                .and_then(|(s, e)| self.backend.read(self.mailbox, self.uid, s, e).ok())
                .map(|raw| searchable_header(&raw))
                .unwrap_or_default();
            self.header = Some(text);
        }
        self.header.as_deref().unwrap_or_default()
    }

    /// Every text leaf, transfer-decoded, converted from its charset, casemapped.
    fn body(&mut self) -> &str {
        if self.body.is_none() {
            let leaves: Vec<_> = self
                .layout()
                .map(|l| {
                    l.parts
                        .iter()
                        .filter(|p| p.kind == PartKind::Single)
                        .filter(|p| {
                            p.content_type.starts_with("text/") || p.content_type.is_empty()
                        })
                        .map(|p| (p.body, p.encoding, p.charset.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let mut text = String::new();
            for ((s, e), encoding, charset) in leaves {
                let e = e.min(s.saturating_add(IMAP_DECODE_BYTES_MAX));
                if let Ok(raw) = self.backend.read(self.mailbox, self.uid, s, e) {
                    let decoded = decode_part(&raw, encoding);
                    text.push_str(&casemap(&to_utf8(charset.as_deref(), &decoded)));
                    text.push('\n');
                }
            }
            self.body = Some(text);
        }
        self.body.as_deref().unwrap_or_default()
    }

    /// Values of one header field (casemapped text), one per line: from the backend's
    /// cached lines when they hold this field, else from the message's header.
    fn field(&mut self, field: &str, wanted: &str) -> Option<String> {
        if let Some(lines) = self.cached
            && self
                .cached_fields
                .iter()
                .any(|f| f.eq_ignore_ascii_case(field))
        {
            return cached_field_values(lines, field, wanted);
        }
        field_values(self.header(), wanted)
    }
}

struct Context<'a> {
    seq: u32,
    count: u32,
    largest_uid: u32,
    saved: &'a [u32],
    meta: &'a MessageMeta,
    /// Each header field the key names, with its [`field_prefix`].
    prefixes: &'a [(String, String)],
}

/// The key with every text already casemapped (done once per SEARCH, not per message;
/// casemap is not idempotent, so [`eval`] takes prepared keys only).
fn prepare(key: &SearchKey) -> SearchKey {
    match key {
        SearchKey::Header { field, text } => SearchKey::Header {
            field: field.clone(),
            text: casemap(text),
        },
        SearchKey::Body(text) => SearchKey::Body(casemap(text)),
        SearchKey::Text(text) => SearchKey::Text(casemap(text)),
        SearchKey::Not(k) => SearchKey::Not(Box::new(prepare(k))),
        SearchKey::Or(a, b) => SearchKey::Or(Box::new(prepare(a)), Box::new(prepare(b))),
        SearchKey::And(keys) => SearchKey::And(keys.iter().map(prepare).collect()),
        other => other.clone(),
    }
}

/// Every header field `key` names, with its [`field_prefix`].
fn prefixes(key: &SearchKey, out: &mut Vec<(String, String)>) {
    each_leaf(key, &mut |k| {
        if let SearchKey::Header { field, .. } = k
            && !out.iter().any(|(f, _)| f == field)
        {
            out.push((field.clone(), field_prefix(field)));
        }
    });
}

fn eval(key: &SearchKey, cx: &Context<'_>, content: &mut Content<'_>) -> bool {
    let m = cx.meta;
    match key {
        SearchKey::All => true,
        SearchKey::Flag { bit, unset } => m.flags.system.contains(*bit) != *unset,
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::Old => true,
        SearchKey::Keyword { name, unset } => m.flags.has_keyword(name) != *unset,
        SearchKey::Header { field, text } => {
            let computed;
            let wanted = match cx.prefixes.iter().find(|(f, _)| f == field) {
                Some((_, wanted)) => wanted.as_str(),
                None => {
                    computed = field_prefix(field);
                    computed.as_str()
                }
            };
            content
                .field(field, wanted)
                .is_some_and(|v| contains(&v, text))
        }
        SearchKey::Body(text) => contains(content.body(), text),
        SearchKey::Text(text) => contains(content.header(), text) || contains(content.body(), text),
        SearchKey::Before(d) => local_day(m.internaldate) < *d,
        SearchKey::On(d) => local_day(m.internaldate) == *d,
        SearchKey::Since(d) => local_day(m.internaldate) >= *d,
        SearchKey::SentBefore(d) | SearchKey::SentOn(d) | SearchKey::SentSince(d) => {
            // Dovecot: the Date header's own local day; a missing or invalid Date
            // is 0 (1970), and the time is kept in 32 bits.
            let sent =
                content
                    .layout()
                    .and_then(|l| l.fields.date)
                    .map_or(InternalDate::default(), |d| InternalDate {
                        unix_secs: i64::from(d.unix_secs as u32),
                        tz_minutes: d.tz_minutes,
                    });
            let day = local_day(sent);
            match key {
                SearchKey::SentBefore(_) => day < *d,
                SearchKey::SentOn(_) => day == *d,
                _ => day >= *d,
            }
        }
        SearchKey::Larger(n) => m.size > *n,
        SearchKey::Smaller(n) => m.size < *n,
        SearchKey::Uid(set) => !set
            .resolve(&[m.uid], cx.largest_uid, Some(cx.saved))
            .is_empty(),
        SearchKey::Seq(SequenceSet::Saved) => cx.saved.contains(&m.uid),
        SearchKey::Seq(set) => !set.resolve(&[cx.seq], cx.count, None).is_empty(),
        SearchKey::ModSeq(n) => m.modseq >= *n,
        SearchKey::Not(k) => !eval(k, cx, content),
        SearchKey::Or(a, b) => eval(a, cx, content) || eval(b, cx, content),
        SearchKey::And(keys) => keys.iter().all(|k| eval(k, cx, content)),
    }
}

/// `haystack.contains(needle)`, with memchr's SIMD substring search (a byte match of
/// UTF-8 text is a match of its characters).
fn contains(haystack: &str, needle: &str) -> bool {
    memchr::memmem::find(haystack.as_bytes(), needle.as_bytes()).is_some()
}

fn uses_modseq(key: &SearchKey) -> bool {
    let mut found = false;
    each_leaf(key, &mut |k| found |= matches!(k, SearchKey::ModSeq(_)));
    found
}

impl Core {
    pub(crate) fn search(&mut self, tag: &Tag, args: SearchArgs, backend: &mut dyn ImapBackend) {
        if !args.charset_known {
            return self.respond(
                Some(tag),
                Status::No,
                "[BADCHARSET (US-ASCII UTF-8)] Unknown charset",
            );
        }
        let modseq = uses_modseq(&args.key);
        if modseq {
            self.enabled.condstore = true;
        }
        self.refresh(backend, false);
        if self.selected.is_none() {
            return;
        }
        let found = self.matching(&args.key, backend);
        self.answer_search(tag, args, modseq, found);
    }

    /// The messages of the selected mailbox that match `key`, in mailbox order:
    /// (sequence number, UID, modseq).
    pub(crate) fn matching(
        &self,
        key: &SearchKey,
        backend: &mut dyn ImapBackend,
    ) -> Vec<(u32, u32, u64)> {
        let Some(selected) = &self.selected else {
            return Vec::new();
        };
        let count = selected.messages.len() as u32;
        let largest_uid = selected.messages.last().map_or(0, |m| m.uid);
        let key = &prepare(key);
        let mut field_prefixes = Vec::new();
        prefixes(key, &mut field_prefixes);
        let fields = backend.search_header_fields();
        let fields = if uses_fields(key, fields) {
            fields
        } else {
            &[]
        };
        let mut found: Vec<(u32, u32, u64)> = Vec::new();
        for (batch, metas) in selected.messages.chunks(SEARCH_HEADER_BATCH).enumerate() {
            let cached = if fields.is_empty() {
                Vec::new()
            } else {
                let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
                backend
                    .search_header(&selected.name, &uids)
                    .unwrap_or_default()
            };
            for (j, meta) in metas.iter().enumerate() {
                let seq = (batch * SEARCH_HEADER_BATCH + j) as u32 + 1;
                let cx = Context {
                    seq,
                    count,
                    largest_uid,
                    saved: &selected.saved,
                    meta,
                    prefixes: &field_prefixes,
                };
                let mut content = Content {
                    backend: &mut *backend,
                    mailbox: &selected.name,
                    uid: meta.uid,
                    layout: None,
                    header: None,
                    body: None,
                    cached_fields: fields,
                    cached: cached.get(j).and_then(Option::as_deref),
                };
                if eval(key, &cx, &mut content) {
                    found.push((seq, meta.uid, meta.modseq));
                }
            }
        }
        found
    }

    fn answer_search(
        &mut self,
        tag: &Tag,
        args: SearchArgs,
        modseq: bool,
        found: Vec<(u32, u32, u64)>,
    ) {
        let numbers: Vec<u32> = found
            .iter()
            .map(|&(seq, uid, _)| if args.uid { uid } else { seq })
            .collect();
        let highest = found.iter().map(|f| f.2).max();
        let mut opts = args.ret.clone().unwrap_or_default();
        if let Some(selected) = &mut self.selected
            && opts.contains(&ReturnOpt::Save)
        {
            selected.saved = found.iter().map(|f| f.1).collect();
        }
        match args.ret {
            None => {
                let mut line = String::from("SEARCH");
                for n in &numbers {
                    line.push_str(&format!(" {n}"));
                }
                if let (true, Some(h)) = (modseq, highest) {
                    line.push_str(&format!(" (MODSEQ {h})"));
                }
                self.untagged(&line);
            }
            Some(_) => {
                let save_only = opts == [ReturnOpt::Save];
                opts.retain(|o| *o != ReturnOpt::Save);
                if opts.is_empty() && !save_only {
                    opts.push(ReturnOpt::All);
                }
                if !opts.is_empty() {
                    let mut line = format!("ESEARCH (TAG \"{tag}\")");
                    if args.uid {
                        line.push_str(" UID");
                    }
                    let mut sorted = numbers.clone();
                    sorted.sort_unstable();
                    for opt in &opts {
                        match (opt, sorted.first(), sorted.last()) {
                            (ReturnOpt::Min, Some(min), _) => line.push_str(&format!(" MIN {min}")),
                            (ReturnOpt::Max, _, Some(max)) => line.push_str(&format!(" MAX {max}")),
                            (ReturnOpt::All, Some(_), _) => {
                                line.push_str(&format!(" ALL {}", format_set(&sorted)))
                            }
                            (ReturnOpt::Count, _, _) => {
                                line.push_str(&format!(" COUNT {}", sorted.len()))
                            }
                            _ => {}
                        }
                    }
                    if let (true, Some(h)) = (modseq, highest) {
                        line.push_str(&format!(" MODSEQ {h}"));
                    }
                    self.untagged(&line);
                }
            }
        }
        self.respond(Some(tag), Status::Ok, "SEARCH completed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &[&[u8]] = &[
        b"From: Alice <alice@example.org>\r\n",
        b"FROM: =?utf-8?q?Ren=C3=A9e?= <r@x>\r\n",
        b"from:\r\n =?iso-8859-1?q?caf=E9?=\r\n\t=?utf-8?b?w6ls?= tail\r\n",
        b"To: a@b, \r\n c@d\r\n",
        b"Cc: =?bogus\r\n",
        b"Subject: =?utf-8?q?x?= =?utf-8?q?y?= plain \xc3\xa9t\xc3\xa9\r\n",
        b"Subject: 8bit \xff\xfe bytes\r\n",
        b"Bcc: \r\n",
        b"To:no-space\r\n",
        b"Subject: Re: =?utf-8?q?=EF=AC=81le?= \xef\xbd\x86\xef\xbd\x92\r\n",
        b"subject:  \t Spaced\x0b out \r\n \r\n\tend \t\r\n",
        b"From: bare\n lf\r\n",
    ];

    /// Field by field, per line, the answer equals processing every line together.
    #[test]
    fn cached_lines_answer_like_the_whole_header() {
        for n in 0..1u32 << LINES.len() {
            let lines: Vec<u8> = LINES
                .iter()
                .enumerate()
                .filter(|(i, _)| n & (1 << i) != 0)
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
            let whole = searchable_header(&lines);
            for field in ["from", "to", "cc", "bcc", "subject", "FROM", "Subject"] {
                let wanted = field_prefix(field);
                assert_eq!(
                    cached_field_values(&lines, field, &wanted),
                    field_values(&whole, &wanted),
                    "{field} in {}",
                    lines.escape_ascii()
                );
            }
        }
    }

    /// The ASCII shortcut gives what decoding and the full casemap give.
    #[test]
    fn ascii_shortcut_is_the_full_path() {
        for raw in [
            &b"From: Plain Name <p@x.org>\r\n\tfolded"[..],
            b"Subject: ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./ 0123456789",
            b"X: =? not a word",
            b"a\r\r\n \n\tb\r\n \r\n\tc\r\n\r\n  d\r\n",
            b"",
        ] {
            let unfolded = String::from_utf8_lossy(raw)
                .replace("\r\n ", " ")
                .replace("\r\n\t", " ");
            assert_eq!(
                searchable_header(raw),
                casemap(&decode_header(unfolded.as_bytes())),
                "{}",
                raw.escape_ascii()
            );
        }
    }
}
