//! POP3 reply reader (RFC 1939): a status line, and for multi-line replies the lines up to the
//! terminating `.` with dot-unstuffing. The caller says which kind it expects, since POP3
//! replies do not say so themselves.

use super::{InBuf, ProtocolError, excerpt, find_crlf};
use crate::limits::{LINE_BYTES_MAX, LITERAL_BYTES_MAX};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Reply {
    pub ok: bool,
    /// The status line after `+OK `/`-ERR `.
    pub text: String,
    /// For a successful multi-line reply: the unstuffed lines, each ending in CRLF.
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Pop3Reader {
    buf: InBuf,
    /// Status line of a multi-line reply whose body is still arriving.
    status: Option<(bool, String)>,
    body: Vec<u8>,
}

impl Pop3Reader {
    pub fn new() -> Pop3Reader {
        Pop3Reader::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.feed(bytes);
    }

    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.status.is_none()
    }

    /// The next reply; `multiline` says whether a `+OK` is followed by a body.
    pub fn next_reply(&mut self, multiline: bool) -> Result<Option<Pop3Reply>, ProtocolError> {
        if self.status.is_none() {
            let Some(line) = self.take_line()? else {
                return Ok(None);
            };
            let (ok, text) = if let Some(rest) = line.strip_prefix(b"+OK") {
                (true, rest)
            } else if let Some(rest) = line.strip_prefix(b"-ERR") {
                (false, rest)
            } else {
                return Err(ProtocolError(format!("garbage reply: {}", excerpt(&line))));
            };
            let text =
                String::from_utf8_lossy(text.strip_prefix(b" ").unwrap_or(text)).into_owned();
            if !(ok && multiline) {
                return Ok(Some(Pop3Reply {
                    ok,
                    text,
                    body: None,
                }));
            }
            self.status = Some((ok, text));
        }
        while let Some(line) = self.take_line()? {
            if line == b"." {
                let (ok, text) = self.status.take().unwrap_or((true, String::new()));
                return Ok(Some(Pop3Reply {
                    ok,
                    text,
                    body: Some(std::mem::take(&mut self.body)),
                }));
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            if self.body.len() + unstuffed.len() + 2 > LITERAL_BYTES_MAX {
                return Err(ProtocolError(format!(
                    "multi-line reply exceeds the {LITERAL_BYTES_MAX} byte cap"
                )));
            }
            self.body.extend_from_slice(unstuffed);
            self.body.extend_from_slice(b"\r\n");
        }
        Ok(None)
    }

    fn take_line(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        let pending = self.buf.pending();
        match find_crlf(pending, 0) {
            Some(end) if end <= LINE_BYTES_MAX => {
                let line = pending[..end].to_vec();
                self.buf.consume(end + 2);
                Ok(Some(line))
            }
            None if pending.len() <= LINE_BYTES_MAX => Ok(None),
            _ => Err(ProtocolError(format!(
                "reply line longer than {LINE_BYTES_MAX} bytes"
            ))),
        }
    }
}

/// Parses `+OK n size` (STAT) or one `n size` line of LIST.
pub fn parse_two_numbers(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split_ascii_whitespace();
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_replies() {
        let mut r = Pop3Reader::new();
        r.feed(b"+OK Dovecot ready.\r\n-ERR [AUTH] Authentication failed.\r\n+OK 3 1200\r\n");
        let a = r.next_reply(false).expect("ok").expect("reply");
        assert!(a.ok);
        assert_eq!(a.text, "Dovecot ready.");
        let b = r.next_reply(false).expect("ok").expect("reply");
        assert!(!b.ok);
        let c = r.next_reply(false).expect("ok").expect("reply");
        assert_eq!(parse_two_numbers(&c.text), Some((3, 1200)));
        assert_eq!(r.next_reply(false), Ok(None));
    }

    #[test]
    fn multiline_with_dot_unstuffing_split_reads() {
        let wire = b"+OK 25 octets\r\nSubject: a\r\n\r\n..dot\r\nend\r\n.\r\n";
        let mut r = Pop3Reader::new();
        let mut got = None;
        for chunk in wire.chunks(3) {
            r.feed(chunk);
            if let Some(reply) = r.next_reply(true).expect("valid") {
                got = Some(reply);
            }
        }
        let reply = got.expect("complete");
        assert!(reply.ok);
        let body = reply.body.expect("body");
        assert_eq!(body, b"Subject: a\r\n\r\n.dot\r\nend\r\n");
        assert_eq!(body.len(), 25);
        assert!(r.is_idle());
    }

    #[test]
    fn multiline_error_has_no_body() {
        let mut r = Pop3Reader::new();
        r.feed(b"-ERR no such message\r\n+OK\r\n1 10\r\n2 20\r\n.\r\n");
        let e = r.next_reply(true).expect("ok").expect("reply");
        assert!(!e.ok && e.body.is_none());
        let list = r.next_reply(true).expect("ok").expect("reply");
        assert_eq!(list.body.as_deref(), Some(&b"1 10\r\n2 20\r\n"[..]));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut r = Pop3Reader::new();
        r.feed(b"* OK IMAP4rev1\r\n");
        assert!(r.next_reply(false).is_err());
    }
}
