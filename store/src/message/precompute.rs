//! Precompute at delivery (DESIGN §3): everything FETCH, SEARCH, SORT and THREAD need
//! from a message's structure, computed once from its CRLF bytes.

use std::ops::Range;

use mail_parser::{Address as MpAddress, MessageParser};

use super::limits::{SEARCH_HEADER_BYTES_MAX, SORT_FIELD_BYTES_MAX, SORT_HEADER_BYTES_MAX};
use super::mime::{self, Kind, Node};
use super::sort_keys::{SortKeys, parse_date, sort_keys};
use super::structure::{Envelope, Writer, envelope_of, write_envelope};

/// A byte range of the stored message, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    fn new(r: (usize, usize)) -> Self {
        Self {
            start: r.0 as u64,
            end: r.1 as u64,
        }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As a slice range; `None` when it does not fit in memory's address space.
    pub fn to_range(&self) -> Option<Range<usize>> {
        Some(usize::try_from(self.start).ok()?..usize::try_from(self.end).ok()?)
    }

    const EMPTY: ByteRange = ByteRange { start: 0, end: 0 };
}

/// What a part is, for section lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// multipart/*: its parts follow it.
    Multipart,
    /// message/rfc822: the next part is the message it holds (header and body).
    Message,
    /// Anything else, a leaf.
    Single,
}

/// Content-Transfer-Encoding of a part (for BINARY[] later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    SevenBit,
    EightBit,
    Binary,
    Base64,
    QuotedPrintable,
    /// Anything else (x-uuencode, garbage): BINARY answers it as unknown.
    Other,
}

impl TransferEncoding {
    fn from_header(value: Option<&[u8]>) -> Self {
        let Some(v) = value else {
            return Self::SevenBit;
        };
        match &v.to_ascii_lowercase()[..] {
            b"7bit" => Self::SevenBit,
            b"8bit" => Self::EightBit,
            b"binary" => Self::Binary,
            b"base64" => Self::Base64,
            b"quoted-printable" => Self::QuotedPrintable,
            _ => Self::Other,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Self::SevenBit => 0,
            Self::EightBit => 1,
            Self::Binary => 2,
            Self::Base64 => 3,
            Self::QuotedPrintable => 4,
            Self::Other => 5,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Self::SevenBit,
            1 => Self::EightBit,
            2 => Self::Binary,
            3 => Self::Base64,
            4 => Self::QuotedPrintable,
            5 => Self::Other,
            _ => return None,
        })
    }
}

/// One MIME part. The table is in preorder: a part's sub-parts follow it, and
/// `subtree_len` says how many entries (itself included) its subtree takes.
///
/// `parts[0]` is the message itself. The message held by a message/rfc822 part is
/// the entry right after it: its `header` is BODY[n.HEADER], its `body` BODY[n.TEXT].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// IMAP part number, e.g. `[1, 2]` for BODY[1.2]. A multipart that is the whole
    /// message or the whole of a message/rfc822 part has no number of its own and
    /// carries its container's (`[]` for the top level).
    pub path: Vec<u32>,
    pub kind: PartKind,
    /// The MIME header, blank line included (BODY[n.MIME]).
    pub header: ByteRange,
    /// The body (BODY[n]).
    pub body: ByteRange,
    pub encoding: TransferEncoding,
    pub subtree_len: u32,
    /// `type/subtype`, lower case (`text/plain` when the part has no Content-Type),
    /// and the charset parameter, lower case: SEARCH reads text parts only, converted.
    pub content_type: String,
    pub charset: Option<String>,
}

/// What of a section is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionText {
    /// BODY[n] (or BODY[] when the path is empty).
    Body,
    /// BODY[n.MIME].
    Mime,
    /// BODY[n.HEADER] (BODY[HEADER] when the path is empty).
    Header,
    /// BODY[n.TEXT] (BODY[TEXT] when the path is empty).
    Text,
}

/// A Date header read as a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderDate {
    pub unix_seconds: i64,
    /// The header's own zone, minutes east of UTC.
    pub tz_minutes: i16,
}

/// The first mailbox of an address header, for SORT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// `local@domain` (or just what there was).
    pub addr_spec: String,
    /// The display name, RFC 2047-decoded.
    pub display_name: Option<String>,
}

/// Header fields SEARCH, SORT and THREAD need, read from the top-level header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderFields {
    /// Date, when it parses.
    pub date: Option<HeaderDate>,
    /// Subject as sent (unfolded, not decoded).
    pub subject_raw: Option<Vec<u8>>,
    /// Subject decoded to UTF-8 (RFC 2047).
    pub subject: Option<String>,
    /// RFC 5256 base subject of the decoded subject (case kept; compare folded).
    pub base_subject: String,
    pub from: Option<Mailbox>,
    pub to: Option<Mailbox>,
    pub cc: Option<Mailbox>,
    /// Raw (unfolded) values.
    pub message_id: Option<Vec<u8>>,
    pub references: Option<Vec<u8>>,
    pub in_reply_to: Option<Vec<u8>>,
}

/// Everything precomputed for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precomputed {
    /// Whether the file can go to a POP3 client as it is (RETR by sendfile): no
    /// line starts with `.` and it ends with CRLF (or is empty). `None` for cache
    /// records written before this was computed.
    pub pop3_ready: Option<bool>,
    /// RFC822.SIZE: the stored (CRLF) size.
    pub size: u64,
    /// The ENVELOPE value, parentheses included, ready to send.
    pub envelope: Vec<u8>,
    /// The BODYSTRUCTURE value (with extension data), parentheses included.
    pub bodystructure: Vec<u8>,
    /// The BODY value (no extension data), parentheses included.
    pub body: Vec<u8>,
    pub parts: Vec<Part>,
    pub fields: HeaderFields,
    /// SORT and THREAD keys, as Dovecot computes them.
    pub sort: SortKeys,
    /// The top-level header lines (each with its continuation lines and CRLF, in
    /// message order) of the fields in [`SEARCH_HEADER_FIELDS`], as they are in the
    /// message: SEARCH FROM/TO/CC/BCC/SUBJECT read these instead of the message file.
    /// `None` for records written before they were kept, and for a message whose
    /// lines exceed [`SEARCH_HEADER_BYTES_MAX`].
    pub search_header: Option<Vec<u8>>,
}

/// Header fields whose lines the cache record keeps for SEARCH (lower case): the ones
/// mail clients search by. A field is matched as SEARCH matches it, by the name right
/// at the start of a line followed by `:`, ASCII case-insensitively.
pub const SEARCH_HEADER_FIELDS: &[&str] = &["from", "to", "cc", "bcc", "subject"];

/// The lines of `header` (a top-level header, CRLF) that begin one of
/// [`SEARCH_HEADER_FIELDS`], each with its continuation lines; `None` past
/// [`SEARCH_HEADER_BYTES_MAX`].
pub fn search_header_lines(header: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut keep = false;
    let mut rest = header;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            keep = SEARCH_HEADER_FIELDS.iter().any(|f| {
                line.len() > f.len()
                    && line[f.len()] == b':'
                    && line[..f.len()].eq_ignore_ascii_case(f.as_bytes())
            });
        }
        if keep {
            if out.len() + line.len() > SEARCH_HEADER_BYTES_MAX {
                return None;
            }
            out.extend_from_slice(line);
        }
    }
    Some(out)
}

impl Precomputed {
    /// The part a section path names, resolved the way Dovecot resolves it: `.1` of a
    /// single part is that part, and a number after a message/rfc822 part goes into
    /// the message it holds. `None` for a part that does not exist.
    pub fn find_part(&self, path: &[u32]) -> Option<usize> {
        let mut idx = 0usize;
        for (i, &n) in path.iter().enumerate() {
            let part = self.parts.get(idx)?;
            if part.kind == PartKind::Multipart {
                let mut child = idx + 1;
                let end = idx + part.subtree_len as usize;
                for _ in 1..n {
                    child += self.parts.get(child)?.subtree_len as usize;
                }
                if n == 0 || child >= end {
                    return None;
                }
                idx = child;
            } else if n != 1 {
                return None;
            }
            if self.parts.get(idx)?.kind == PartKind::Message && i + 1 < path.len() {
                idx += 1;
                self.parts.get(idx)?;
            }
        }
        Some(idx)
    }

    /// The byte range that answers BODY[path.text]. A part that does not exist, and
    /// HEADER or TEXT of a part that is not message/rfc822, answer an empty string, as
    /// Dovecot does (`find_part` tells whether the part exists). `None` only for a
    /// table with no parts (a damaged record).
    pub fn section(&self, path: &[u32], text: SectionText) -> Option<ByteRange> {
        if path.is_empty() {
            let root = self.parts.first()?;
            return Some(match text {
                SectionText::Body => ByteRange {
                    start: 0,
                    end: self.size,
                },
                SectionText::Header | SectionText::Mime => root.header,
                SectionText::Text => root.body,
            });
        }
        let Some(idx) = self.find_part(path) else {
            return Some(ByteRange::EMPTY);
        };
        let part = self.parts.get(idx)?;
        Some(match text {
            SectionText::Body => part.body,
            SectionText::Mime => part.header,
            SectionText::Header | SectionText::Text if part.kind == PartKind::Message => {
                let inner = self.parts.get(idx + 1)?;
                if text == SectionText::Header {
                    inner.header
                } else {
                    inner.body
                }
            }
            SectionText::Header | SectionText::Text => ByteRange::EMPTY,
        })
    }
}

/// IMAP part numbers, parents before children (the table is in preorder).
fn paths(nodes: &[Node]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); nodes.len()];
    if let Some(root) = nodes.first()
        && root.kind != Kind::Multipart
    {
        out[0] = vec![1];
    }
    for idx in 0..nodes.len() {
        let node = &nodes[idx];
        for (pos, &child) in node.children.iter().enumerate() {
            let mut v = out[idx].clone();
            if node.kind != Kind::Message {
                v.push(pos as u32 + 1);
            } else if nodes[child].kind != Kind::Multipart {
                v.push(1);
            }
            out[child] = v;
        }
    }
    out
}

/// Subtree sizes, computed bottom-up (children follow their parent in preorder).
fn subtree_lens(nodes: &[Node]) -> Vec<u32> {
    let mut lens = vec![1u32; nodes.len()];
    for idx in (0..nodes.len()).rev() {
        let sum: u32 = nodes[idx].children.iter().map(|&c| lens[c]).sum();
        lens[idx] += sum;
    }
    lens
}

/// Precomputes a message that is already CRLF (see `normalize_crlf`). Any bytes are
/// accepted; malformed MIME gives the structure Dovecot would give it.
pub fn precompute(msg: &[u8]) -> Precomputed {
    let nodes = mime::walk(msg);
    let envelopes: Vec<Option<Envelope>> = nodes
        .iter()
        .map(|n| {
            let keep = n.parent.is_none_or(|p| nodes[p].kind == Kind::Message);
            keep.then(|| envelope_of(&n.fields))
        })
        .collect();
    let writer = Writer::new(msg, &nodes, &envelopes);
    let mut envelope = vec![b'('];
    if let Some(Some(e)) = envelopes.first() {
        write_envelope(&mut envelope, e);
    }
    envelope.push(b')');
    let mut bodystructure = vec![b'('];
    writer.write(&mut bodystructure, 0, true);
    bodystructure.push(b')');
    let mut body = vec![b'('];
    writer.write(&mut body, 0, false);
    body.push(b')');

    let paths = paths(&nodes);
    let lens = subtree_lens(&nodes);
    let parts = nodes
        .iter()
        .zip(paths)
        .zip(lens)
        .map(|((n, path), subtree_len)| Part {
            path,
            kind: match n.kind {
                Kind::Multipart => PartKind::Multipart,
                Kind::Message if !n.children.is_empty() => PartKind::Message,
                _ => PartKind::Single,
            },
            header: ByteRange::new(n.header),
            body: ByteRange::new(n.body),
            encoding: TransferEncoding::from_header(n.data.transfer_encoding.as_deref()),
            subtree_len,
            content_type: match (&n.data.content_type, &n.data.content_subtype) {
                (Some(t), Some(s)) => format!(
                    "{}/{}",
                    String::from_utf8_lossy(t),
                    String::from_utf8_lossy(s)
                )
                .to_ascii_lowercase(),
                _ => "text/plain".to_owned(),
            },
            charset: n
                .data
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
                .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase()),
        })
        .collect();
    let header_end = nodes.first().map_or(0, |n| n.header.1);
    let fields = header_fields(msg.get(..header_end).unwrap_or_default(), nodes.first());
    let sort = nodes
        .first()
        .map(|n| sort_keys(&n.fields))
        .unwrap_or_default();
    let search_header = search_header_lines(msg.get(..header_end).unwrap_or_default());
    Precomputed {
        pop3_ready: Some(pop3_ready(msg)),
        size: msg.len() as u64,
        envelope,
        bodystructure,
        body,
        parts,
        fields,
        sort,
        search_header,
    }
}

/// No line starts with `.` (a line begins the message or follows an LF, as POP3's
/// dot-stuffer counts them) and the message ends with CRLF or is empty.
fn pop3_ready(msg: &[u8]) -> bool {
    let ends_right = msg.is_empty() || msg.ends_with(b"\r\n");
    ends_right && msg.first() != Some(&b'.') && memchr::memmem::find(msg, b"\n.").is_none()
}

fn bounded(v: &[u8]) -> Vec<u8> {
    v[..v.len().min(SORT_FIELD_BYTES_MAX)].to_vec()
}

fn last_field(root: Option<&Node>, name: &[u8]) -> Option<Vec<u8>> {
    root?
        .fields
        .iter()
        .rev()
        .find(|f| f.name.eq_ignore_ascii_case(name))
        .map(|f| bounded(&f.value))
}

fn first_mailbox(a: Option<&MpAddress>) -> Option<Mailbox> {
    let addr = a?.first()?;
    let clip = |s: &str| s.chars().take(SORT_FIELD_BYTES_MAX).collect::<String>();
    Some(Mailbox {
        addr_spec: addr.address.as_deref().map(clip).unwrap_or_default(),
        display_name: addr.name.as_deref().map(clip),
    })
}

/// SEARCH/SORT/THREAD fields. mail-parser does the RFC 2047 and date decoding (it
/// knows the charsets); the raw values come from our own header walk.
fn header_fields(header: &[u8], root: Option<&Node>) -> HeaderFields {
    let mut out = HeaderFields {
        subject_raw: last_field(root, b"Subject"),
        message_id: last_field(root, b"Message-ID"),
        references: last_field(root, b"References"),
        in_reply_to: last_field(root, b"In-Reply-To"),
        ..HeaderFields::default()
    };
    let header = &header[..header.len().min(SORT_HEADER_BYTES_MAX)];
    if let Some(m) = MessageParser::new().parse_headers(header) {
        out.subject = m
            .subject()
            .map(|s| s.chars().take(SORT_FIELD_BYTES_MAX).collect());
        out.from = first_mailbox(m.from());
        out.to = first_mailbox(m.to());
        out.cc = first_mailbox(m.cc());
    }
    // The first Date header read as Dovecot reads it (SEARCH SENT* and SORT agree).
    out.date = root
        .and_then(|n| {
            n.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(b"Date"))
        })
        .and_then(|f| parse_date(&f.value))
        .map(|(unix_seconds, tz_minutes)| HeaderDate {
            unix_seconds,
            tz_minutes,
        });
    out.base_subject = base_subject(out.subject.as_deref().unwrap_or(""));
    out
}

/// RFC 5256 §2.1 base subject. Whitespace runs become one space; `re:`, `fw:`,
/// `fwd:` leaders, `[blob]` prefixes, `(fwd)` trailers and `[fwd: ...]` wrappers go.
pub fn base_subject(subject: &str) -> String {
    let mut s: String = {
        let mut out = String::with_capacity(subject.len());
        let mut ws = false;
        for c in subject.chars() {
            if c.is_whitespace() {
                ws = true;
            } else {
                if ws && !out.is_empty() {
                    out.push(' ');
                }
                ws = false;
                out.push(c);
            }
        }
        out
    };
    loop {
        // (2) trailers
        loop {
            let lower = s.to_ascii_lowercase();
            if lower.ends_with("(fwd)") {
                s.truncate(s.len() - 5);
                s.truncate(s.trim_end().len());
            } else {
                break;
            }
        }
        // (3)-(5) leaders and blobs
        loop {
            let before = s.len();
            s = strip_leader(&s).to_string();
            if let Some(rest) = strip_blob(&s)
                && !rest.is_empty()
            {
                s = rest.to_string();
            }
            if s.len() == before {
                break;
            }
        }
        // (6) [fwd: ...]
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("[fwd:") && s.ends_with(']') && s.len() >= 6 {
            s = s[5..s.len() - 1].trim().to_string();
            continue;
        }
        return s;
    }
}

fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find([']', '['])?;
    if rest.as_bytes()[close] != b']' {
        return None;
    }
    Some(rest[close + 1..].trim_start())
}

/// One subj-leader: `*subj-blob subj-refwd`, or leading whitespace.
fn strip_leader(s: &str) -> &str {
    let t = s.trim_start();
    if t.len() != s.len() {
        return t;
    }
    let mut rest = s;
    while let Some(r) = strip_blob(rest) {
        rest = r;
    }
    let lower = rest.to_ascii_lowercase();
    let word = ["re", "fwd", "fw"]
        .into_iter()
        .find(|w| lower.starts_with(w));
    let Some(word) = word else { return s };
    let mut r = rest[word.len()..].trim_start();
    if let Some(b) = strip_blob(r) {
        r = b;
    }
    match r.strip_prefix(':') {
        Some(after) => after,
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        assert_eq!(base_subject("Re: hello"), "hello");
        assert_eq!(base_subject("RE: [list] Fwd: hello (fwd)"), "hello");
        assert_eq!(base_subject("[fwd: re: x]"), "x");
        assert_eq!(base_subject("  a\t b "), "a b");
        assert_eq!(base_subject("[only]"), "[only]");
        assert_eq!(base_subject("re:"), "");
    }

    #[test]
    fn folded_subject_is_a_literal_as_dovecot_sends_it() {
        let envelope = |msg: &[u8]| String::from_utf8(precompute(msg).envelope).expect("utf-8");
        assert!(
            envelope(b"Subject: folded\r\n subject line\r\n\r\nx\r\n")
                .starts_with("(NIL {19}\r\nfolded subject line NIL")
        );
        assert!(envelope(b"Subject: one line\r\n\r\nx\r\n").starts_with("(NIL \"one line\" NIL"));
    }
}
