//! The MIME part tree, walked the way Dovecot's `lib-mail/message-parser.c` walks it.
//!
//! Hand-written rather than taken from mail-parser: IMAP clients see the exact byte
//! ranges (BODY[1.2.MIME], the sizes and line counts in BODYSTRUCTURE), and
//! mail-parser's part offsets differ from Dovecot's where it matters for parity — the
//! CRLF before a boundary, boundaries matched by prefix and by any enclosing
//! multipart, a part header cut short by a boundary, multipart/digest defaults,
//! RFC 822 messages without MIME-Version. The walk is a single linear pass over the
//! message; every limit is in `limits.rs`.

use super::limits::{BOUNDARY_BYTES_MAX, NESTING_DEPTH_MAX, PARTS_MAX};
use super::rfc822::Rfc822;

/// One header field: its name and its unfolded value (CRLFs removed, the leading
/// whitespace of continuation lines kept), as Dovecot's `full_value`.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
    /// The field had continuation lines (Dovecot's `full_value` keeps their newlines).
    pub folded: bool,
}

/// A parameter list: `(name, value)` pairs in header order.
pub(crate) type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// Content-* data of a part (Dovecot's `message_part_data`).
#[derive(Debug, Clone, Default)]
pub(crate) struct MimeData {
    pub content_type: Option<Vec<u8>>,
    pub content_subtype: Option<Vec<u8>>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub transfer_encoding: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<(Vec<u8>, Params)>,
    pub language: Option<Vec<Vec<u8>>>,
    pub location: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Kind {
    Multipart,
    Message,
    Text,
    #[default]
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub header: (usize, usize),
    pub body: (usize, usize),
    pub kind: Kind,
    pub digest: bool,
    pub data: MimeData,
    /// Header fields, kept for the root and for messages inside message/rfc822 parts
    /// (their envelope); empty for other parts.
    pub fields: Vec<Field>,
    pub children: Vec<usize>,
    pub parent: Option<usize>,
}

struct Boundary {
    text: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    idx: usize,
    /// Where the delimiter starts, including the CRLF (or LF) before it.
    delim_start: usize,
    /// After the delimiter line's LF; `None` when the line runs to the end.
    after: Option<usize>,
    close: bool,
    /// For a delimiter found right after a header's blank line: where that line ends.
    blank_end: Option<usize>,
}

struct Walker<'a> {
    msg: &'a [u8],
    nodes: Vec<Node>,
    boundaries: Vec<Boundary>,
}

fn memchr_lf(data: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'\n', data.get(from..)?).map(|i| from + i)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_lwsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Truncates at the first NUL, as a C string copy would.
fn cstr(v: &[u8]) -> Vec<u8> {
    v.split(|&b| b == 0).next().unwrap_or_default().to_vec()
}

impl Walker<'_> {
    /// Whether a boundary delimiter starts at `ls` (a line start).
    fn boundary_at(&self, ls: usize) -> Option<Hit> {
        if self.boundaries.is_empty() || self.nodes.len() >= PARTS_MAX {
            return None;
        }
        let rest = self.msg.get(ls..)?;
        let data = rest.strip_prefix(b"--")?;
        let line_len = data.iter().position(|&b| b == b'\n');
        let line = match line_len {
            Some(n) => strip_cr(&data[..n]),
            None => data,
        };
        let mut best: Option<usize> = None;
        for (i, b) in self.boundaries.iter().enumerate().rev() {
            let len = b.text.len();
            if len <= line.len()
                && line[..len] == b.text[..]
                && best.is_none_or(|j| self.boundaries[j].text.len() < len)
            {
                best = Some(i);
                if len == line.len() {
                    break;
                }
            }
        }
        let idx = best?;
        let len = self.boundaries[idx].text.len();
        Some(Hit {
            idx,
            delim_start: ls,
            after: line_len.map(|n| ls + 2 + n + 1),
            close: data.get(len..len + 2) == Some(b"--"),
            blank_end: None,
        })
    }

    /// Whether the delimiter line at `ls` matches `own` at least as well as the
    /// enclosing boundary `idx` it was taken for.
    fn own_delimiter_at(&self, ls: usize, own: &[u8], idx: usize) -> bool {
        let other = self.boundaries.get(idx).map_or(0, |b| b.text.len());
        let line = self.msg.get(ls + 2..).unwrap_or_default();
        own.len() >= other && line.starts_with(own)
    }

    /// The first delimiter of any open multipart in the body starting at `from`.
    fn scan(&self, from: usize) -> Option<Hit> {
        if self.boundaries.is_empty() {
            return None;
        }
        if let Some(h) = self.boundary_at(from) {
            return Some(h);
        }
        // Only a line feed followed by "--" can start a delimiter: one SIMD search for
        // those instead of a stop at every line (a base64 attachment has thousands).
        let rest = self.msg.get(from..)?;
        for at in memchr::memmem::find_iter(rest, b"\n--") {
            let lf = from + at;
            if let Some(mut h) = self.boundary_at(lf + 1) {
                h.delim_start = if lf > from && self.msg[lf - 1] == b'\r' {
                    lf - 1
                } else {
                    lf
                };
                return Some(h);
            }
        }
        None
    }

    /// Forget the boundaries a delimiter closes (Dovecot's `boundary_remove_until`).
    fn take(&mut self, hit: Option<Hit>) -> Option<Hit> {
        if let Some(h) = hit {
            self.boundaries
                .truncate(if h.close { h.idx } else { h.idx + 1 });
        }
        hit
    }

    /// Reads a header from `start`: its fields, where it ends, and the delimiter that
    /// cut it short, if one did.
    fn read_header(&self, start: usize) -> (Vec<Field>, usize, Option<Hit>) {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = start;
        loop {
            if pos >= self.msg.len() {
                return (fields, self.msg.len(), None);
            }
            if let Some(h) = self.boundary_at(pos) {
                // Dovecot quirk, kept for parity: the header loses the CRLF ending
                // its last line, yet that CRLF is not part of the delimiter either
                // (it is counted in the enclosing part's body).
                let mut header_end = pos;
                if pos > start {
                    header_end = if pos - 1 > start && self.msg[pos - 2] == b'\r' {
                        pos - 2
                    } else {
                        pos - 1
                    };
                }
                return (fields, header_end, Some(h));
            }
            let lf = memchr_lf(self.msg, pos);
            let next = lf.map_or(self.msg.len(), |i| i + 1);
            let line = strip_cr(&self.msg[pos..lf.unwrap_or(self.msg.len())]);
            if line.is_empty() && lf.is_some() {
                // A delimiter right after the blank line takes the blank line's CRLF
                // as its own (RFC 2046): the part then has a header and no body.
                // (Unless it is the part's own first delimiter: `parse_part` checks.)
                if let Some(mut h) = self.boundary_at(next) {
                    h.delim_start = pos;
                    h.blank_end = Some(next);
                    return (fields, pos, Some(h));
                }
                return (fields, next, None);
            }
            if line.first().is_some_and(|&b| is_lwsp(b)) {
                if let Some(f) = fields.last_mut() {
                    f.value.extend_from_slice(line);
                    f.folded = true;
                }
            } else if let Some(colon) = line.iter().position(|&b| b == b':') {
                let mut name = &line[..colon];
                while let Some((&last, rest)) = name.split_last() {
                    if !is_lwsp(last) {
                        break;
                    }
                    name = rest;
                }
                let after = &line[colon + 1..];
                let skip = after.iter().take_while(|&&b| is_lwsp(b)).count();
                let value = if skip == after.len() {
                    &after[skip.min(1)..]
                } else {
                    &after[skip..]
                };
                fields.push(Field {
                    name: name.to_vec(),
                    value: value.to_vec(),
                    folded: false,
                });
            }
            pos = next;
        }
    }

    fn parse_part(
        &mut self,
        start: usize,
        parent: Option<usize>,
        in_multipart: bool,
        depth: usize,
    ) -> Option<Hit> {
        let idx = self.nodes.len();
        let (fields, mut header_end, mut cut) = self.read_header(start);
        let parent_digest = parent.is_some_and(|p| self.nodes[p].digest);
        let parent_message = parent.is_some_and(|p| self.nodes[p].kind == Kind::Message);
        let mut info = content_info(&fields);
        let is_mime = in_multipart || info.is_mime;
        if !is_mime {
            info = ContentInfo::default();
        }
        let deep = depth >= NESTING_DEPTH_MAX;
        let mut kind = info.kind;
        if kind == Kind::Multipart && deep {
            kind = Kind::Other;
        }
        if kind == Kind::Message && deep {
            kind = Kind::Other;
        }
        if !info.seen_content_type {
            kind = if parent_digest && !deep {
                Kind::Message
            } else {
                Kind::Text
            };
        }
        let data = if is_mime {
            mime_data(&fields)
        } else {
            MimeData::default()
        };
        if let (Some(h), Some(own)) = (cut, &info.boundary)
            && let Some(blank_end) = h.blank_end
            && kind == Kind::Multipart
            && self.own_delimiter_at(blank_end, own, h.idx)
        {
            // The multipart's body starts with its own delimiter (one that happens to
            // match an enclosing boundary too): the blank line stays in the header.
            header_end = blank_end;
            cut = None;
        }
        let keep_fields = parent.is_none() || parent_message;
        self.nodes.push(Node {
            header: (start, header_end),
            body: (header_end, header_end),
            kind,
            digest: info.digest && kind == Kind::Multipart,
            data,
            fields: if keep_fields { fields } else { Vec::new() },
            children: Vec::new(),
            parent,
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(idx);
        }
        if cut.is_some() {
            if kind == Kind::Message {
                self.nodes[idx].kind = Kind::Other;
            }
            self.nodes[idx].body = (header_end, header_end);
            return self.take(cut);
        }
        let end = match kind {
            Kind::Multipart => match info.boundary {
                Some(boundary) => self.multipart_body(idx, header_end, boundary, depth),
                // No boundary: a multipart without parts; its body runs to an
                // enclosing delimiter.
                None => {
                    let hit = self.scan(header_end);
                    self.take(hit)
                }
            },
            Kind::Message => self.parse_part(header_end, Some(idx), false, depth + 1),
            Kind::Text | Kind::Other => {
                let hit = self.scan(header_end);
                self.take(hit)
            }
        };
        self.nodes[idx].body.1 = end.map_or(self.msg.len(), |h| h.delim_start);
        end
    }

    fn multipart_body(
        &mut self,
        idx: usize,
        body_start: usize,
        boundary: Vec<u8>,
        depth: usize,
    ) -> Option<Hit> {
        let own = self.boundaries.len();
        self.boundaries.push(Boundary { text: boundary });
        let first = self.scan(body_start);
        let mut hit = self.take(first);
        loop {
            let h = hit?;
            if h.idx < own {
                return Some(h);
            }
            let Some(after) = h.after else {
                // The delimiter line runs to the end of the message: nothing follows.
                self.boundaries.truncate(own);
                return None;
            };
            if h.close {
                let next = self.scan(after);
                hit = self.take(next);
            } else {
                hit = self.parse_part(after, Some(idx), true, depth + 1);
            }
        }
    }
}

#[derive(Default)]
struct ContentInfo {
    kind: Kind,
    digest: bool,
    boundary: Option<Vec<u8>>,
    seen_content_type: bool,
    is_mime: bool,
}

/// What the message parser itself takes from the header: MIME or not, the part's
/// kind, and the boundary of a multipart (first Content-Type only, as Dovecot).
fn content_info(fields: &[Field]) -> ContentInfo {
    let mut info = ContentInfo::default();
    for f in fields {
        if f.name.eq_ignore_ascii_case(b"MIME-Version") {
            info.is_mime = true;
        } else if f.name.eq_ignore_ascii_case(b"Content-Type") {
            info.is_mime = true;
            if info.seen_content_type {
                continue;
            }
            info.seen_content_type = true;
            let mut p = Rfc822::new(&f.value);
            p.skip_lwsp();
            let mut ct = Vec::new();
            let ret = p.parse_content_type(&mut ct);
            let lower = ct.to_ascii_lowercase();
            if lower == b"message/rfc822" {
                info.kind = Kind::Message;
            } else if lower.starts_with(b"text") && (lower.len() == 4 || lower[4] == b'/') {
                info.kind = Kind::Text;
            } else if lower.starts_with(b"multipart/") {
                info.kind = Kind::Multipart;
                info.digest = &lower[10..] == b"digest";
            }
            if ret < 0 || info.kind != Kind::Multipart {
                continue;
            }
            for (k, v) in p.parse_params() {
                if k.eq_ignore_ascii_case(b"boundary") {
                    let v = cstr(&v);
                    info.boundary = Some(v[..v.len().min(BOUNDARY_BYTES_MAX)].to_vec());
                    break;
                }
            }
        }
    }
    if info.kind != Kind::Multipart {
        info.digest = false;
    }
    info
}

fn cstr_params(params: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    params
        .into_iter()
        .map(|(k, v)| (cstr(&k), cstr(&v)))
        .collect()
}

/// Content-* headers, first of each kind (Dovecot's `message-part-data.c`).
fn mime_data(fields: &[Field]) -> MimeData {
    let mut d = MimeData::default();
    for f in fields {
        let Some(name) = f.name.get(..8) else {
            continue;
        };
        if !name.eq_ignore_ascii_case(b"Content-") {
            continue;
        }
        let sub = f.name[8..].to_ascii_lowercase();
        let v = &f.value;
        match &sub[..] {
            b"id" if d.id.is_none() => d.id = Some(cstr(v)),
            b"md5" if d.md5.is_none() => d.md5 = Some(cstr(v)),
            b"type" if d.content_type.is_none() => parse_data_content_type(&mut d, v),
            b"transfer-encoding" if d.transfer_encoding.is_none() => {
                let mut p = Rfc822::new(v);
                p.skip_lwsp();
                let mut s = Vec::new();
                if p.parse_mime_token(&mut s) >= 0 && p.skip_lwsp() == 0 && !s.is_empty() {
                    d.transfer_encoding = Some(cstr(&s));
                }
            }
            b"language" if d.language.is_none() => {
                let mut p = Rfc822::new(v);
                p.skip_lwsp();
                let mut langs = Vec::new();
                loop {
                    let mut s = Vec::new();
                    if p.parse_atom(&mut s) < 0 {
                        break;
                    }
                    langs.push(cstr(&s));
                    if p.at_end() || p.cur() != b',' {
                        break;
                    }
                    p.pos += 1;
                    p.skip_lwsp();
                }
                if !langs.is_empty() {
                    d.language = Some(langs);
                }
            }
            b"location" if d.location.is_none() => d.location = Some(cstr(v)),
            b"description" if d.description.is_none() => d.description = Some(cstr(v)),
            b"disposition" if d.disposition.is_none() => {
                let mut p = Rfc822::new(v);
                p.skip_lwsp();
                let mut s = Vec::new();
                if p.parse_mime_token(&mut s) >= 0 {
                    let params = cstr_params(p.parse_params());
                    d.disposition = Some((cstr(&s), params));
                }
            }
            _ => {}
        }
    }
    d
}

fn parse_data_content_type(d: &mut MimeData, v: &[u8]) {
    let mut p = Rfc822::new(v);
    p.skip_lwsp();
    let mut s = Vec::new();
    let ret = p.parse_content_type(&mut s);
    if ret < 0 {
        // Dovecot keeps a broken Content-Type as an empty type and subtype.
        d.content_type = Some(Vec::new());
        d.content_subtype = Some(Vec::new());
        return;
    }
    let s = cstr(&s);
    match s.iter().position(|&b| b == b'/') {
        Some(i) => {
            d.content_type = Some(s[..i].to_vec());
            d.content_subtype = Some(s[i + 1..].to_vec());
        }
        None => {
            d.content_type = Some(s);
            d.content_subtype = Some(Vec::new());
        }
    }
    d.params = cstr_params(p.parse_params());
}

/// Walks `msg` (CRLF) into a preorder part tree; `nodes[0]` is the message itself.
pub(crate) fn walk(msg: &[u8]) -> Vec<Node> {
    let mut w = Walker {
        msg,
        nodes: Vec::new(),
        boundaries: Vec::new(),
    };
    let _ = w.parse_part(0, None, false, 0);
    w.nodes
}
