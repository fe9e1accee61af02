//! SMTP/LMTP reply reader (RFC 5321 section 4.2): `ddd-text` continuation lines, then
//! `ddd text`. Every line of a reply must carry the same code.

use super::{InBuf, ProtocolError, excerpt, find_crlf};
use crate::limits::{LINE_BYTES_MAX, REPLY_LINES_MAX};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// First line for an error reason.
    pub fn summary(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.lines.first().map(String::as_str).unwrap_or("")
        )
    }
}

#[derive(Debug, Default)]
pub struct LmtpReader {
    buf: InBuf,
    lines: Vec<String>,
    code: Option<u16>,
}

impl LmtpReader {
    pub fn new() -> LmtpReader {
        LmtpReader::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.feed(bytes);
    }

    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.lines.is_empty()
    }

    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtocolError> {
        loop {
            let pending = self.buf.pending();
            let Some(end) = find_crlf(pending, 0) else {
                if pending.len() > LINE_BYTES_MAX {
                    return Err(ProtocolError("reply line too long".into()));
                }
                return Ok(None);
            };
            let line = pending[..end].to_vec();
            self.buf.consume(end + 2);
            let garbage = || ProtocolError(format!("garbage reply: {}", excerpt(&line)));
            if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
                return Err(garbage());
            }
            let code: u16 = std::str::from_utf8(&line[..3])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(garbage)?;
            if !(200..600).contains(&code) || self.code.is_some_and(|c| c != code) {
                return Err(garbage());
            }
            let last = match line.get(3) {
                None | Some(b' ') => true,
                Some(b'-') => false,
                Some(_) => return Err(garbage()),
            };
            self.code = Some(code);
            self.lines
                .push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
            if self.lines.len() > REPLY_LINES_MAX {
                return Err(ProtocolError("reply has too many lines".into()));
            }
            if last {
                self.code = None;
                return Ok(Some(Reply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                }));
            }
        }
    }
}

/// Dot-stuffs a message for DATA and appends the terminating `.` line. The message must use
/// CRLF line ends; a missing final CRLF is added.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    // Only the spots where a line begins with a dot are looked at (memmem, SIMD), the rest
    // copied in runs: byte by byte this was a third of the client's CPU per delivery.
    if message.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut from = 0;
    for at in memchr::memmem::find_iter(message, b"\n.") {
        out.extend_from_slice(&message[from..=at]);
        out.push(b'.');
        from = at + 1;
    }
    out.extend_from_slice(&message[from..]);
    if !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_lhlo_reply() {
        let mut r = LmtpReader::new();
        r.feed(b"220 mx LMTP ready\r\n250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
        assert_eq!(r.next_reply().expect("ok").expect("reply").code, 220);
        let lhlo = r.next_reply().expect("ok").expect("reply");
        assert_eq!(lhlo.code, 250);
        assert_eq!(lhlo.lines, vec!["mx", "PIPELINING", "ENHANCEDSTATUSCODES"]);
        assert!(r.is_idle());
    }

    #[test]
    fn split_reads_and_per_recipient_replies() {
        let wire = b"250 2.0.0 <a@x> Saved\r\n452 4.2.2 <b@x> Mailbox full\r\n";
        let mut r = LmtpReader::new();
        let mut got = Vec::new();
        for b in wire {
            r.feed(&[*b]);
            while let Some(reply) = r.next_reply().expect("valid") {
                got.push(reply);
            }
        }
        assert_eq!(got.len(), 2);
        assert!(got[0].is_positive());
        assert!(!got[1].is_positive());
        assert_eq!(got[1].summary(), "452 4.2.2 <b@x> Mailbox full");
    }

    #[test]
    fn garbage_and_mixed_codes_are_errors() {
        for wire in [
            &b"hello there\r\n"[..],
            b"250-a\r\n354 b\r\n",
            b"25\r\n",
            b"999 x\r\n",
        ] {
            let mut r = LmtpReader::new();
            r.feed(wire);
            assert!(
                r.next_reply().is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    /// Every message of up to 6 bytes over `.`, CR, LF and `a` against the byte loop.
    #[test]
    fn dot_stuffing_agrees_with_a_byte_loop() {
        fn naive(message: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut at_line_start = true;
            for &b in message {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = b == b'\n';
            }
            if !message.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            out
        }
        let alphabet = [b'.', b'\r', b'\n', b'a'];
        let mut checked = 0;
        for len in 0..=6u32 {
            for mut n in 0..4usize.pow(len) {
                let mut message = Vec::new();
                for _ in 0..len {
                    message.push(alphabet[n % 4]);
                    n /= 4;
                }
                assert_eq!(dot_stuff(&message), naive(&message), "{message:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 5461);
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            dot_stuff(b".a\r\nb\r\n..c\r\n"),
            b"..a\r\nb\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
        assert_eq!(dot_stuff(b"x.\r\n.\r\n"), b"x.\r\n..\r\n.\r\n");
    }
}
