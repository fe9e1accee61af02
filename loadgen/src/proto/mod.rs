//! Sans-IO response readers: bytes go in through `feed`, whole responses come out of `next_*`.
//! They never touch a socket or a clock, so the tests drive them from byte transcripts.

pub mod imap;
pub mod lmtp;
pub mod pop3;

use std::fmt;

/// A server broke the protocol; the reason is short and printable, for the error report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// A bounded, printable prefix of server bytes for an error reason.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(40)];
    let mut s: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    if bytes.len() > cut.len() {
        s.push('…');
    }
    s
}

/// Position of the first CRLF at or after `from`, if any.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// A growable input buffer that drops consumed bytes lazily (one memmove per refill at most).
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
}

impl InBuf {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.data.len() {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(self.start + n <= self.data.len());
        self.start += n;
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.data.len()
    }
}
