//! IMAP response framing and classification for a client (RFC 3501 / 9051).
//!
//! Framing comes first: a response is a line, and when that line ends in a literal announcement
//! `{n}` the next `n` bytes are taken verbatim and the line continues after them. Only a
//! complete response is classified (tagged, untagged, continuation). Lines and literals are
//! capped (`limits.rs`), so a broken server costs an error, never unbounded memory.

use super::{InBuf, ProtocolError, excerpt, find_crlf};
use crate::limits::{LINE_BYTES_MAX, LITERAL_BYTES_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    PreAuth,
    Bye,
}

impl Status {
    fn parse(word: &[u8]) -> Option<Status> {
        match word.to_ascii_uppercase().as_slice() {
            b"OK" => Some(Status::Ok),
            b"NO" => Some(Status::No),
            b"BAD" => Some(Status::Bad),
            b"PREAUTH" => Some(Status::PreAuth),
            b"BYE" => Some(Status::Bye),
            _ => None,
        }
    }
}

/// One complete server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `* ...`: `text` is the response without `* ` and CRLF; literal announcements `{n}` stay in
    /// it and their contents are in `literals`, in order.
    Untagged {
        text: Vec<u8>,
        literals: Vec<Vec<u8>>,
    },
    /// `TAG OK|NO|BAD text`.
    Tagged {
        tag: String,
        status: Status,
        text: String,
    },
    /// `+ text`: the server waits for a literal or a continuation (IDLE).
    Continuation { text: String },
}

impl Response {
    /// `* N EXISTS` / `* N EXPUNGE` / `* N RECENT` ...: the number and the keyword.
    pub fn untagged_number(&self) -> Option<(u32, String)> {
        let Response::Untagged { text, .. } = self else {
            return None;
        };
        let mut words = text.splitn(3, |b| *b == b' ');
        let n = std::str::from_utf8(words.next()?).ok()?.parse().ok()?;
        let kw = std::str::from_utf8(words.next()?)
            .ok()?
            .to_ascii_uppercase();
        Some((n, kw))
    }

    /// `* OK|NO|BAD|BYE|PREAUTH ...`: the status of an untagged status response.
    pub fn untagged_status(&self) -> Option<Status> {
        let Response::Untagged { text, .. } = self else {
            return None;
        };
        Status::parse(text.split(|b| *b == b' ').next()?)
    }
}

#[derive(Debug, Default)]
struct Partial {
    text: Vec<u8>,
    literals: Vec<Vec<u8>>,
    /// Bytes still owed to the literal being read (`Some` while inside a literal).
    literal_remaining: Option<usize>,
}

/// Client-side response reader: `feed` bytes as they arrive, then call `next_response` until it
/// returns `Ok(None)` (needs more bytes).
#[derive(Debug, Default)]
pub struct ImapReader {
    buf: InBuf,
    partial: Partial,
}

impl ImapReader {
    pub fn new() -> ImapReader {
        ImapReader::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.feed(bytes);
    }

    /// True when no bytes of a next response have been received.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.partial.text.is_empty()
    }

    pub fn next_response(&mut self) -> Result<Option<Response>, ProtocolError> {
        loop {
            if let Some(remaining) = self.partial.literal_remaining {
                let pending = self.buf.pending();
                let take = remaining.min(pending.len());
                let lit =
                    self.partial.literals.last_mut().ok_or_else(|| {
                        ProtocolError("literal state without a literal".to_string())
                    })?;
                lit.extend_from_slice(&pending[..take]);
                self.buf.consume(take);
                if take < remaining {
                    self.partial.literal_remaining = Some(remaining - take);
                    return Ok(None);
                }
                self.partial.literal_remaining = None;
            }
            let pending = self.buf.pending();
            let Some(end) = find_crlf(pending, 0) else {
                if self.partial.text.len() + pending.len() > LINE_BYTES_MAX {
                    return Err(ProtocolError(format!(
                        "response line longer than {LINE_BYTES_MAX} bytes"
                    )));
                }
                return Ok(None);
            };
            if self.partial.text.len() + end > LINE_BYTES_MAX {
                return Err(ProtocolError(format!(
                    "response line longer than {LINE_BYTES_MAX} bytes"
                )));
            }
            self.partial.text.extend_from_slice(&pending[..end]);
            self.buf.consume(end + 2);
            match literal_announcement(&self.partial.text)? {
                Some(n) => {
                    if n > LITERAL_BYTES_MAX {
                        return Err(ProtocolError(format!(
                            "literal of {n} bytes exceeds the {LITERAL_BYTES_MAX} byte cap"
                        )));
                    }
                    self.partial.literals.push(Vec::with_capacity(n));
                    self.partial.literal_remaining = Some(n);
                }
                None => {
                    let done = std::mem::take(&mut self.partial);
                    return classify(done.text, done.literals).map(Some);
                }
            }
        }
    }
}

/// `{n}` or `{n+}` at the end of a line announces a literal of `n` bytes.
fn literal_announcement(line: &[u8]) -> Result<Option<usize>, ProtocolError> {
    if line.last() != Some(&b'}') {
        return Ok(None);
    }
    let Some(open) = line.iter().rposition(|b| *b == b'{') else {
        return Ok(None);
    };
    let inner = &line[open + 1..line.len() - 1];
    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| ProtocolError(format!("bad literal length in {}", excerpt(line))))
}

fn classify(text: Vec<u8>, literals: Vec<Vec<u8>>) -> Result<Response, ProtocolError> {
    if let Some(rest) = text.strip_prefix(b"* ") {
        return Ok(Response::Untagged {
            text: rest.to_vec(),
            literals,
        });
    }
    if text == b"+" || text.starts_with(b"+ ") {
        return Ok(Response::Continuation {
            text: String::from_utf8_lossy(text.get(2..).unwrap_or_default()).into_owned(),
        });
    }
    let garbage = || ProtocolError(format!("garbage response: {}", excerpt(&text)));
    let mut parts = text.splitn(3, |b| *b == b' ');
    let tag = parts.next().ok_or_else(garbage)?;
    let status = parts.next().and_then(Status::parse).ok_or_else(garbage)?;
    let valid_tag = !tag.is_empty()
        && tag
            .iter()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(b));
    if !valid_tag
        || !matches!(status, Status::Ok | Status::No | Status::Bad)
        || !literals.is_empty()
    {
        return Err(garbage());
    }
    Ok(Response::Tagged {
        tag: String::from_utf8_lossy(tag).into_owned(),
        status,
        text: String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned(),
    })
}

/// The value of `RFC822.SIZE n` inside a FETCH response text, if present.
pub fn fetch_rfc822_size(text: &[u8]) -> Option<u64> {
    let upper = text.to_ascii_uppercase();
    let key = b"RFC822.SIZE ";
    let at = upper.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = text[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut ImapReader) -> Vec<Response> {
        let mut out = Vec::new();
        while let Some(r) = reader.next_response().expect("valid transcript") {
            out.push(r);
        }
        out
    }

    /// Feeds a transcript of `S:` lines (CRLF added) in one piece.
    fn transcript(lines: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for l in lines {
            let l = l.strip_prefix("S: ").expect("S: line");
            v.extend_from_slice(l.as_bytes());
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn greeting_untagged_and_tagged() {
        let mut r = ImapReader::new();
        r.feed(&transcript(&[
            "S: * OK [CAPABILITY IMAP4rev1] ready",
            "S: * 12 EXISTS",
            "S: * 0 RECENT",
            "S: a1 OK [READ-WRITE] Select completed",
        ]));
        let got = read_all(&mut r);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].untagged_status(), Some(Status::Ok));
        assert_eq!(got[1].untagged_number(), Some((12, "EXISTS".to_string())));
        assert_eq!(got[2].untagged_number(), Some((0, "RECENT".to_string())));
        assert_eq!(
            got[3],
            Response::Tagged {
                tag: "a1".into(),
                status: Status::Ok,
                text: "[READ-WRITE] Select completed".into()
            }
        );
        assert!(r.is_idle());
    }

    #[test]
    fn fetch_literal_and_size() {
        let body = "Subject: x\r\n\r\nhello\r\n";
        let wire = format!(
            "* 3 FETCH (RFC822.SIZE {} BODY[] {{{}}}\r\n{})\r\na7 OK Fetch completed.\r\n",
            body.len(),
            body.len(),
            body
        );
        let mut r = ImapReader::new();
        r.feed(wire.as_bytes());
        let got = read_all(&mut r);
        let Response::Untagged { text, literals } = &got[0] else {
            panic!("untagged expected: {got:?}");
        };
        assert_eq!(literals, &vec![body.as_bytes().to_vec()]);
        assert_eq!(fetch_rfc822_size(text), Some(body.len() as u64));
        assert!(text.ends_with(b")"));
        assert!(matches!(&got[1], Response::Tagged { tag, .. } if tag == "a7"));
    }

    #[test]
    fn split_reads_byte_by_byte() {
        let wire = b"* 1 FETCH (BODY[] {5}\r\nab\r\nc FLAGS (\\Seen))\r\n+ idling\r\nt2 NO [TRYCREATE] no\r\n";
        let mut r = ImapReader::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            r.feed(std::slice::from_ref(b));
            while let Some(resp) = r.next_response().expect("valid") {
                got.push(resp);
            }
        }
        assert_eq!(got.len(), 3);
        assert!(
            matches!(&got[0], Response::Untagged { literals, text } if literals[0] == b"ab\r\nc" && text.ends_with(b"FLAGS (\\Seen))"))
        );
        assert_eq!(
            got[1],
            Response::Continuation {
                text: "idling".into()
            }
        );
        assert!(matches!(
            &got[2],
            Response::Tagged {
                status: Status::No,
                ..
            }
        ));
    }

    #[test]
    fn two_literals_in_one_response() {
        let wire = b"* 2 FETCH (BODY[HEADER] {3}\r\nabc BODY[TEXT] {0}\r\n)\r\n";
        let mut r = ImapReader::new();
        r.feed(wire);
        let got = read_all(&mut r);
        assert!(
            matches!(&got[0], Response::Untagged { literals, .. } if literals.len() == 2 && literals[0] == b"abc" && literals[1].is_empty())
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for wire in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"\x00\x01\x02\r\n",
            b"a1 MAYBE\r\n",
        ] {
            let mut r = ImapReader::new();
            r.feed(wire);
            let err = r.next_response().expect_err("garbage");
            assert!(err.0.starts_with("garbage response"), "{err}");
        }
    }

    #[test]
    fn overlong_line_and_literal_are_capped() {
        let mut r = ImapReader::new();
        r.feed(&vec![b'x'; LINE_BYTES_MAX + 1]);
        assert!(r.next_response().is_err());

        let mut r = ImapReader::new();
        r.feed(format!("* 1 FETCH (BODY[] {{{}}}\r\n", LITERAL_BYTES_MAX + 1).as_bytes());
        assert!(r.next_response().is_err());
    }

    #[test]
    fn incomplete_response_waits() {
        let mut r = ImapReader::new();
        r.feed(b"* 1 FETCH (BODY[] {10}\r\nabc");
        assert_eq!(r.next_response(), Ok(None));
        assert!(!r.is_idle());
        r.feed(b"defghij)\r\n");
        assert!(r.next_response().expect("ok").is_some());
    }
}
