//! Framing: finds complete commands (line + literals) in buffered input before
//! anything is parsed, with limits on line size and buffered bytes.
//!
//! A frame is `line CRLF` where a line may end in a literal announcement —
//! `{n}` (synchronising: the server answers `+` before the client sends the
//! data), `{n+}` (LITERAL+, the data follows at once) or `~{n}` / `~{n+}`
//! (literal8, BINARY) — in which case `n` bytes of data and another line follow.
//! A bare LF is accepted as a line end too (lenient, as Dovecot is).
//!
//! The framer never decides about a literal: it reports
//! [`Frame::LiteralAnnounced`] and the session calls [`Framer::accept_literal`]
//! or [`Framer::reject_literal`]. A line over the limit is reported once as
//! [`Frame::TooLong`]; the rest of that command is then skipped without being
//! buffered, so the connection stays usable.

use std::ops::Range;

use memchr::{memchr, memrchr};

use crate::imap::types::Tag;
use crate::limits::IMAP_TAG_BYTES_MAX;

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Every buffered byte is scanned; feed more with [`Framer::push`].
    NeedMore,
    /// A complete command is in [`Framer::frame`] (CRLF and literal data
    /// included); call [`Framer::consume_frame`] when done with it.
    Complete,
    /// The current line ends with a literal announcement. Until the session calls
    /// [`Framer::accept_literal`] or [`Framer::reject_literal`], this is reported again.
    LiteralAnnounced {
        /// The command's tag, if its first bytes form one.
        tag: Option<Tag>,
        literal: Literal,
    },
    /// The command's line parts exceed the line limit; the rest of it is being
    /// skipped. Reported once per command.
    TooLong { tag: Option<Tag> },
    /// Data of a literal accepted with [`Framer::accept_literal_streamed`] is buffered:
    /// take it with [`Framer::take_streamed`] (it is never part of the frame).
    StreamData,
}

/// A literal announcement at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    /// Announced data length in bytes.
    pub len: u64,
    /// `{n}`: the client waits for a `+` continuation before sending the data.
    pub sync: bool,
    /// `~{n}`: literal8, may contain NUL.
    pub binary: bool,
}

/// Input could not be buffered without passing the buffer limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input buffer full ({buffered_bytes} bytes held, {pushed_bytes} more offered)")]
pub struct BufferFull {
    pub buffered_bytes: usize,
    pub pushed_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Scanning a line part for its LF.
    Line,
    /// Inside accepted literal data.
    LiteralData { remaining: u64 },
    /// Inside literal data handed out as it arrives instead of buffered (APPEND).
    Streaming { remaining: u64 },
    /// A literal announcement waits for the session's decision.
    Announced(Literal),
    /// `buf[frame_start..end]` is a complete frame.
    Complete { end: usize },
    /// Skipping the rest of a rejected command: first `literal_remaining` bytes
    /// of literal data, then lines until one ends without a non-synchronising
    /// literal (the client waits after a synchronising one, which we never accept).
    Discard { literal_remaining: u64 },
}

/// Bytes of a line kept while discarding, enough to see `~{<20 digits>+}\r`.
const DISCARD_TAIL_BYTES: usize = 32;

/// Buffers input and splits it into frames. Owns the unparsed bytes, so moving
/// it (e.g. in a session hand-off) moves all of them.
#[derive(Debug, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the current frame (while discarding: of the kept line tail).
    frame_start: usize,
    /// `buf[frame_start..scan]` has been looked at.
    scan: usize,
    /// Line bytes (not literal data) of the current frame so far.
    line_bytes: usize,
    state: State,
    line_bytes_max: usize,
    buffer_bytes_max: usize,
    /// `buffer_bytes_max` outside a command that was allowed more (APPEND).
    default_buffer_bytes_max: usize,
}

impl Framer {
    pub fn new(line_bytes_max: usize, buffer_bytes_max: usize) -> Framer {
        assert!(line_bytes_max > 0 && buffer_bytes_max >= line_bytes_max);
        Framer {
            buf: Vec::new(),
            frame_start: 0,
            scan: 0,
            line_bytes: 0,
            state: State::Line,
            line_bytes_max,
            buffer_bytes_max,
            default_buffer_bytes_max: buffer_bytes_max,
        }
    }

    /// Lets the current command hold up to `bytes` buffered (an APPEND literal the
    /// session accepted); back to the normal limit when the next command starts.
    pub fn raise_buffer_limit(&mut self, bytes: usize) {
        self.buffer_bytes_max = self.buffer_bytes_max.max(bytes);
    }

    /// Whether the current frame is the command `name` (`tag SP name SP …`,
    /// case-insensitive), judged from its first line.
    pub fn frame_is_command(&self, name: &[u8]) -> bool {
        let Some(start) = self.buf.get(self.frame_start..self.scan) else {
            return false;
        };
        let Some(space) = memchr(b' ', start) else {
            return false;
        };
        start
            .get(space + 1..space + 1 + name.len())
            .is_some_and(|word| word.eq_ignore_ascii_case(name))
            && start.get(space + 1 + name.len()) == Some(&b' ')
    }

    /// Unconsumed bytes held (the current frame so far and anything after it).
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.frame_start
    }

    /// How many bytes [`Framer::push`] accepts now.
    pub fn room(&self) -> usize {
        self.buffer_bytes_max.saturating_sub(self.buffered_len())
    }

    /// Bytes of the current frame seen so far (line parts and literal data).
    pub fn frame_len(&self) -> usize {
        self.scan - self.frame_start
    }

    /// Appends input; all or nothing.
    pub fn push(&mut self, data: &[u8]) -> Result<(), BufferFull> {
        if data.len() > self.room() {
            return Err(BufferFull {
                buffered_bytes: self.buffered_len(),
                pushed_bytes: data.len(),
            });
        }
        self.compact();
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Drops consumed bytes from the front. Done on push, not on consume, so a
    /// burst of pipelined commands is framed without moving memory per command.
    fn compact(&mut self) {
        let shift = self.frame_start;
        if shift == 0 {
            return;
        }
        self.buf.drain(..shift);
        self.frame_start = 0;
        self.scan -= shift;
        if let State::Complete { end } = &mut self.state {
            *end -= shift;
        }
        // Do not keep a large allocation for an idle connection.
        if self.buf.is_empty() && self.buf.capacity() > 2 * self.line_bytes_max {
            self.buf = Vec::new();
        }
    }

    /// Looks for the next frame in the buffered bytes.
    pub fn next_frame(&mut self) -> Frame {
        loop {
            debug_assert!(self.frame_start <= self.scan && self.scan <= self.buf.len());
            match self.state {
                State::Complete { .. } => return Frame::Complete,
                State::Announced(literal) => {
                    return Frame::LiteralAnnounced {
                        tag: self.frame_tag(),
                        literal,
                    };
                }
                State::Streaming { remaining: 0 } => self.state = State::Line,
                State::Streaming { .. } if self.scan < self.buf.len() => {
                    return Frame::StreamData;
                }
                State::Streaming { .. } => return Frame::NeedMore,
                State::LiteralData { remaining } => {
                    let taken = self.skip(remaining);
                    self.scan += taken;
                    let remaining = remaining - taken as u64;
                    if remaining > 0 {
                        self.state = State::LiteralData { remaining };
                        return Frame::NeedMore;
                    }
                    self.state = State::Line;
                }
                State::Line => {
                    if let Some(frame) = self.scan_line() {
                        return frame;
                    }
                }
                State::Discard { literal_remaining } => {
                    if let Some(frame) = self.scan_discard(literal_remaining) {
                        return frame;
                    }
                }
            }
        }
    }

    /// How many of `wanted` bytes are buffered beyond `scan`.
    fn skip(&self, wanted: u64) -> usize {
        let available = self.buf.len() - self.scan;
        usize::try_from(wanted).map_or(available, |wanted| wanted.min(available))
    }

    /// One step in state `Line`; `None` means "state changed, go on".
    fn scan_line(&mut self) -> Option<Frame> {
        let piece_scan_start = self.scan;
        let unscanned = &self.buf[self.scan..];
        let Some(lf) = memchr(b'\n', unscanned) else {
            self.line_bytes += unscanned.len();
            self.scan = self.buf.len();
            if self.line_bytes > self.line_bytes_max {
                return Some(self.start_discard(piece_scan_start));
            }
            return Some(Frame::NeedMore);
        };
        self.line_bytes += lf + 1;
        if self.line_bytes > self.line_bytes_max {
            return Some(self.start_discard(piece_scan_start));
        }
        let line_end = self.scan + lf;
        self.scan = line_end + 1;
        match literal_announcement(&self.buf[self.frame_start..line_end]) {
            Some(literal) => self.state = State::Announced(literal),
            None => self.state = State::Complete { end: self.scan },
        }
        None
    }

    /// The line limit was passed: report it once and skip the rest of the command
    /// from `resume_at` (the start of the unscanned part of the current line).
    fn start_discard(&mut self, resume_at: usize) -> Frame {
        let tag = self.frame_tag();
        self.scan = resume_at;
        self.state = State::Discard {
            literal_remaining: 0,
        };
        Frame::TooLong { tag }
    }

    /// One step in state `Discard`; `None` means "state changed, go on".
    fn scan_discard(&mut self, literal_remaining: u64) -> Option<Frame> {
        if literal_remaining > 0 {
            let taken = self.skip(literal_remaining);
            self.scan += taken;
            self.frame_start = self.scan;
            let literal_remaining = literal_remaining - taken as u64;
            self.state = State::Discard { literal_remaining };
            return (literal_remaining > 0).then_some(Frame::NeedMore);
        }
        let Some(lf) = memchr(b'\n', &self.buf[self.scan..]) else {
            self.scan = self.buf.len();
            self.frame_start = self
                .frame_start
                .max(self.scan.saturating_sub(DISCARD_TAIL_BYTES));
            return Some(Frame::NeedMore);
        };
        let line_end = self.scan + lf;
        let literal = literal_announcement(&self.buf[self.frame_start..line_end]);
        self.scan = line_end + 1;
        self.frame_start = self.scan;
        match literal {
            Some(literal) if !literal.sync => {
                self.state = State::Discard {
                    literal_remaining: literal.len,
                };
            }
            _ => self.start_next_frame(),
        }
        None
    }

    fn start_next_frame(&mut self) {
        self.buffer_bytes_max = self.default_buffer_bytes_max;
        self.frame_start = self.scan;
        self.line_bytes = 0;
        self.state = State::Line;
    }

    /// The complete frame after [`Frame::Complete`]; empty otherwise.
    pub fn frame(&self) -> &[u8] {
        match self.state {
            State::Complete { end } => self.buf.get(self.frame_start..end).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Forgets the complete frame so framing moves on to the next one.
    pub fn consume_frame(&mut self) {
        debug_assert!(matches!(self.state, State::Complete { .. }));
        if let State::Complete { end } = self.state {
            self.scan = end;
            self.start_next_frame();
        }
    }

    /// The session sent `+` (or the literal is non-synchronising): take the data.
    pub fn accept_literal(&mut self) {
        debug_assert!(matches!(self.state, State::Announced(_)));
        if let State::Announced(literal) = self.state {
            self.state = State::LiteralData {
                remaining: literal.len,
            };
        }
    }

    /// The session takes the literal's data as it arrives ([`Frame::StreamData`],
    /// [`Framer::take_streamed`]) instead of buffering it in the frame: the frame then
    /// holds the line parts only, so a large literal never sits in memory.
    pub fn accept_literal_streamed(&mut self) {
        debug_assert!(matches!(self.state, State::Announced(_)));
        if let State::Announced(literal) = self.state {
            self.state = State::Streaming {
                remaining: literal.len,
            };
        }
    }

    /// The streamed literal's data buffered so far (removed from the buffer).
    pub fn take_streamed(&mut self) -> Vec<u8> {
        let State::Streaming { remaining } = self.state else {
            return Vec::new();
        };
        let taken = self.skip(remaining);
        let data: Vec<u8> = self.buf.drain(self.scan..self.scan + taken).collect();
        self.state = State::Streaming {
            remaining: remaining - taken as u64,
        };
        data
    }

    /// Bytes of a streamed literal still to come (0 when none is streaming).
    pub fn streamed_remaining(&self) -> u64 {
        match self.state {
            State::Streaming { remaining } => remaining,
            _ => 0,
        }
    }

    /// The current frame's bytes seen so far (its line parts and buffered literals),
    /// for parsing a command whose literal is announced but not yet taken.
    pub fn frame_so_far(&self) -> &[u8] {
        self.buf
            .get(self.frame_start..self.scan)
            .unwrap_or_default()
    }

    /// The session refused the literal and answered the command. A synchronising
    /// literal ends the command here (the client will not send it); the data of a
    /// non-synchronising one is on its way and is skipped with the rest of the command.
    pub fn reject_literal(&mut self) {
        debug_assert!(matches!(self.state, State::Announced(_)));
        if let State::Announced(literal) = self.state {
            if literal.sync {
                self.start_next_frame();
            } else {
                self.frame_start = self.scan;
                self.state = State::Discard {
                    literal_remaining: literal.len,
                };
            }
        }
    }

    /// The tag at the start of the current frame, if there is a valid one.
    fn frame_tag(&self) -> Option<Tag> {
        let start = self.buf.get(self.frame_start..)?;
        let head = start.get(..IMAP_TAG_BYTES_MAX + 1).unwrap_or(start);
        let end = memchr(b' ', head)?;
        Tag::new(head.get(..end)?).ok()
    }

    /// Range of the unconsumed bytes, for tests and diagnostics.
    /// Throws away everything buffered and any frame in progress: used when the
    /// connection's security changes under it (STARTTLS).
    pub fn discard_buffered(&mut self) {
        *self = Framer::new(self.line_bytes_max, self.default_buffer_bytes_max);
    }

    pub fn buffered_range(&self) -> Range<usize> {
        self.frame_start..self.buf.len()
    }
}

/// Parses a literal announcement at the end of `line` (LF excluded, CR optional).
pub fn literal_announcement(line: &[u8]) -> Option<Literal> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let body = line.strip_suffix(b"}")?;
    let open = memrchr(b'{', body)?;
    let inner = body.get(open + 1..)?;
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (inner, true),
    };
    let len = parse_number(digits)?;
    let binary = open
        .checked_sub(1)
        .and_then(|i| body.get(i))
        .is_some_and(|&b| b == b'~');
    Some(Literal { len, sync, binary })
}

/// `number64`: 1*DIGIT fitting in a u64 (RFC 9051 caps it at 2^63-1).
pub fn parse_number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    (value <= i64::MAX as u64).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE_MAX: usize = 64;
    const BUFFER_MAX: usize = 1024;

    /// Feeds `input` in chunks of `chunk` bytes, accepting every literal, and
    /// returns what happened as text.
    fn run(input: &[u8], chunk: usize) -> Vec<String> {
        let mut framer = Framer::new(LINE_MAX, BUFFER_MAX);
        let mut log = Vec::new();
        for piece in input.chunks(chunk) {
            framer.push(piece).expect("fits");
            loop {
                match framer.next_frame() {
                    Frame::NeedMore => break,
                    Frame::Complete => {
                        log.push(format!(
                            "frame {:?}",
                            String::from_utf8_lossy(framer.frame())
                        ));
                        framer.consume_frame();
                    }
                    Frame::LiteralAnnounced { tag, literal } => {
                        log.push(format!("literal {tag:?} {literal:?}"));
                        if literal.len > 10 {
                            framer.reject_literal();
                        } else {
                            framer.accept_literal();
                        }
                    }
                    Frame::TooLong { tag } => log.push(format!("too long {tag:?}")),
                    // `run` never streams a literal.
                    Frame::StreamData => log.push("stream data".into()),
                }
            }
        }
        log
    }

    /// A streamed literal's data is handed out as it arrives and never enters the
    /// frame, whatever the read sizes; the line after it completes the frame.
    #[test]
    fn streamed_literal_stays_out_of_the_frame() {
        let input = b"a APPEND INBOX {2000+}\r\n"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b'x', 2000))
            .chain(b"\r\nb NOOP\r\n".iter().copied())
            .collect::<Vec<u8>>();
        for chunk in [1, 7, 100, 1000] {
            let mut framer = Framer::new(LINE_MAX, BUFFER_MAX);
            let (mut data, mut frames) = (Vec::new(), Vec::new());
            for piece in input.chunks(chunk) {
                framer.push(piece).expect("the data never piles up");
                loop {
                    match framer.next_frame() {
                        Frame::NeedMore => break,
                        Frame::LiteralAnnounced { .. } => {
                            assert_eq!(framer.frame_so_far(), b"a APPEND INBOX {2000+}\r\n");
                            framer.accept_literal_streamed();
                        }
                        Frame::StreamData => data.extend(framer.take_streamed()),
                        Frame::Complete => {
                            frames.push(framer.frame().to_vec());
                            framer.consume_frame();
                        }
                        Frame::TooLong { .. } => panic!("too long"),
                    }
                }
            }
            assert_eq!(data, vec![b'x'; 2000], "chunk {chunk}");
            assert_eq!(framer.streamed_remaining(), 0);
            assert_eq!(
                frames,
                [&b"a APPEND INBOX {2000+}\r\n\r\n"[..], b"b NOOP\r\n"],
                "chunk {chunk}"
            );
        }
    }

    fn same_for_every_chunk_size(input: &[u8]) -> Vec<String> {
        let whole = run(input, input.len().max(1));
        for chunk in 1..input.len() {
            assert_eq!(run(input, chunk), whole, "chunk size {chunk}");
        }
        whole
    }

    #[test]
    fn pipelined_lines_become_separate_frames() {
        let log = same_for_every_chunk_size(b"a NOOP\r\nb CAPABILITY\nc LOGOUT\r\n");
        assert_eq!(
            log,
            [
                r#"frame "a NOOP\r\n""#,
                r#"frame "b CAPABILITY\n""#,
                r#"frame "c LOGOUT\r\n""#
            ]
        );
    }

    #[test]
    fn literals_of_every_kind_are_part_of_the_frame() {
        let log = same_for_every_chunk_size(
            b"a LOGIN {3}\r\nb\nb {2+}\r\n\r\n\r\nc APPEND x ~{1}\r\n\0\r\n",
        );
        assert_eq!(log.len(), 5, "{log:?}");
        assert!(log[0].contains("sync: true"), "{log:?}");
        assert!(log[1].contains("sync: false"), "{log:?}");
        assert_eq!(log[2], r#"frame "a LOGIN {3}\r\nb\nb {2+}\r\n\r\n\r\n""#);
        assert!(log[3].contains("binary: true"), "{log:?}");
        assert_eq!(log[4], r#"frame "c APPEND x ~{1}\r\n\0\r\n""#);
    }

    #[test]
    fn rejected_sync_literal_ends_the_command() {
        let log = same_for_every_chunk_size(b"a LOGIN {99}\r\nb NOOP\r\n");
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[0].starts_with(r#"literal Some(Tag("a"))"#), "{log:?}");
        assert_eq!(log[1], r#"frame "b NOOP\r\n""#);
    }

    #[test]
    fn rejected_non_sync_literal_is_skipped_with_the_rest_of_the_command() {
        let log =
            same_for_every_chunk_size(b"a LOGIN {11+}\r\nb NOOP\r\n\n x {1+}\r\nz\r\nc NOOP\r\n");
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[1], r#"frame "c NOOP\r\n""#);
    }

    #[test]
    fn too_long_line_is_reported_once_and_skipped() {
        let mut input = b"t1 NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300));
        input.extend_from_slice(b" {5+}\r\nab\ncd\r\nt2 NOOP\r\n");
        let log = same_for_every_chunk_size(&input);
        assert_eq!(
            log,
            [r#"too long Some(Tag("t1"))"#, r#"frame "t2 NOOP\r\n""#]
        );
    }

    #[test]
    fn line_limit_counts_line_parts_not_literal_data() {
        let mut input = b"a X {9}\r\n123456789".to_vec();
        input.extend(std::iter::repeat_n(b'y', LINE_MAX - 9 - 2));
        input.extend_from_slice(b"\r\n");
        let log = same_for_every_chunk_size(&input);
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[1].starts_with("frame"), "{log:?}");
    }

    #[test]
    fn buffer_limit_is_all_or_nothing() {
        let mut framer = Framer::new(LINE_MAX, BUFFER_MAX);
        assert!(framer.push(&[b'a'; BUFFER_MAX]).is_ok());
        assert_eq!(framer.room(), 0);
        assert!(framer.push(b"x").is_err());
        assert_eq!(framer.buffered_len(), BUFFER_MAX);
    }

    #[test]
    fn literal_announcements() {
        let lit = |len, sync, binary| Some(Literal { len, sync, binary });
        assert_eq!(literal_announcement(b"a LOGIN {3}\r"), lit(3, true, false));
        assert_eq!(literal_announcement(b"a LOGIN {3+}"), lit(3, false, false));
        assert_eq!(literal_announcement(b"a APPEND ~{0}"), lit(0, true, true));
        assert_eq!(
            literal_announcement(b"{9223372036854775807}"),
            lit(i64::MAX as u64, true, false)
        );
        assert_eq!(literal_announcement(b"{9223372036854775808}"), None);
        assert_eq!(literal_announcement(b"{99999999999999999999}"), None);
        assert_eq!(literal_announcement(b"a {}"), None);
        assert_eq!(literal_announcement(b"a {+}"), None);
        assert_eq!(literal_announcement(b"a {1a}"), None);
        assert_eq!(literal_announcement(b"a }"), None);
    }
}
