//! The input buffer shared by the line-based protocols (LMTP, POP3, poppassd):
//! bytes are pushed in as read, taken out as CRLF lines (a bare LF ends a line
//! too) or as raw byte runs (message data), with a bound on what is held.
//!
//! A line longer than the caller's limit is reported once as
//! [`Line::TooLong`]; the rest of it is then skipped up to its LF without being
//! buffered, so a flood of one endless line costs no memory and the connection
//! stays usable. Whether input comes in one read or byte by byte never changes
//! what is reported.

use memchr::memchr;

/// The client sent more than a session may hold unparsed: it keeps sending while
/// the session waits for the engine (an engine that reads at most
/// `input_room()` bytes never sees this). The session has queued its goodbye
/// and a close event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input buffer full ({buffered_bytes} bytes held, {offered_bytes} more offered)")]
pub struct InputError {
    pub buffered_bytes: usize,
    pub offered_bytes: usize,
}

/// What [`LineBuffer::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// No complete line is buffered yet.
    NeedMore,
    /// A complete line, without its CRLF (or LF).
    Complete(Vec<u8>),
    /// The current line passes the limit; its remaining bytes are skipped.
    TooLong,
}

#[derive(Debug)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes before `start` are consumed.
    start: usize,
    /// `buf[start..start + scanned]` holds no LF (saves rescans on small reads).
    scanned: usize,
    /// Skipping the rest of a too-long line.
    skipping: bool,
    bytes_max: usize,
}

impl LineBuffer {
    pub(crate) fn new(bytes_max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skipping: false,
            bytes_max,
        }
    }

    /// Unconsumed bytes held.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How many more bytes [`LineBuffer::push`] may take.
    pub(crate) fn room(&self) -> usize {
        self.bytes_max.saturating_sub(self.len())
    }

    /// Appends input; the caller keeps it within [`LineBuffer::room`].
    pub(crate) fn push(&mut self, data: &[u8]) {
        debug_assert!(data.len() <= self.room(), "push past the buffer limit");
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next line of at most `line_bytes_max` bytes counting its line end.
    pub(crate) fn next_line(&mut self, line_bytes_max: usize) -> Line {
        if self.skipping {
            match memchr(b'\n', &self.buf[self.start..]) {
                Some(lf) => {
                    self.consume(lf + 1);
                    self.skipping = false;
                }
                None => {
                    self.consume(self.len());
                    return Line::NeedMore;
                }
            }
        }
        let pending = &self.buf[self.start..];
        match memchr(b'\n', &pending[self.scanned..]) {
            Some(offset) => {
                let lf = self.scanned + offset;
                if lf + 1 > line_bytes_max {
                    self.consume(lf + 1);
                    return Line::TooLong;
                }
                let end = if lf > 0 && pending[lf - 1] == b'\r' {
                    lf - 1
                } else {
                    lf
                };
                let line = pending[..end].to_vec();
                self.consume(lf + 1);
                Line::Complete(line)
            }
            None if pending.len() >= line_bytes_max => {
                // The LF still to come makes the line longer than allowed.
                self.consume(self.len());
                self.skipping = true;
                Line::TooLong
            }
            None => {
                self.scanned = pending.len();
                Line::NeedMore
            }
        }
    }

    /// Marks `len` bytes of the unconsumed input as consumed.
    pub(crate) fn consume(&mut self, len: usize) {
        debug_assert!(len <= self.len());
        self.start += len.min(self.len());
        self.scanned = 0;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// All unconsumed input, left in place (message data is decoded from it,
    /// then [`LineBuffer::consume`]d).
    pub(crate) fn peek(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Throws away everything buffered (after STARTTLS: injection defence).
    pub(crate) fn discard_all(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]], max: usize) -> Vec<Line> {
        let mut buffer = LineBuffer::new(1024);
        let mut found = Vec::new();
        for piece in input {
            buffer.push(piece);
            loop {
                match buffer.next_line(max) {
                    Line::NeedMore => break,
                    line => found.push(line),
                }
            }
        }
        found
    }

    #[test]
    fn crlf_and_bare_lf_end_lines() {
        assert_eq!(
            lines(&[b"a\r\nb\nc\r", b"\n"], 10),
            vec![
                Line::Complete(b"a".to_vec()),
                Line::Complete(b"b".to_vec()),
                Line::Complete(b"c".to_vec())
            ]
        );
    }

    #[test]
    fn too_long_is_the_same_whole_or_bytewise() {
        let input = b"12345678\r\nabcdefgh\r\nok\r\n1234567\r\n";
        let whole = lines(&[input], 9);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(whole, lines(&bytes, 9));
        assert_eq!(
            whole,
            vec![
                Line::TooLong,
                Line::TooLong,
                Line::Complete(b"ok".to_vec()),
                Line::Complete(b"1234567".to_vec())
            ]
        );
    }
}
