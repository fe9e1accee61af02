//! Dot-stuffing of a message streamed to a POP3 client (RFC 1939 §3), in
//! chunks of any size, so `RETR` never holds a large message whole.
//!
//! A line is what ends at an LF (a bare LF too: a client that splits lines at
//! LF would otherwise see a `"."` line inside the message and stop early). A
//! line starting with `"."` gets one more `"."`. [`DotStuffer::finish`] ends
//! the message with CRLF when it does not already end so, then `"." CRLF`.
//! For `TOP n m`, [`DotStuffer::top`] passes the header, the blank line and the
//! first `m` body lines, and drops the rest.

use memchr::memchr;

/// What `TOP` still lets through.
#[derive(Debug, Clone, Copy)]
struct Top {
    in_header: bool,
    body_lines_left: u32,
}

/// Stateful dot-stuffer; see the module documentation.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    /// Bytes of the current line so far (LF excluded) and whether all are CR:
    /// a header line of `""` or `"\r"` ends the header.
    line_bytes: u64,
    line_is_cr: bool,
    /// The last two message bytes written, for the final CRLF.
    last_two: [u8; 2],
    written_any: bool,
    top: Option<Top>,
    done: bool,
}

impl Default for DotStuffer {
    fn default() -> DotStuffer {
        DotStuffer::new()
    }
}

impl DotStuffer {
    /// For `RETR`: the whole message.
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            line_bytes: 0,
            line_is_cr: true,
            last_two: [0; 2],
            written_any: false,
            top: None,
            done: false,
        }
    }

    /// For `TOP n body_lines`: the header, the blank line, `body_lines` lines.
    pub fn top(body_lines: u32) -> DotStuffer {
        DotStuffer {
            top: Some(Top {
                in_header: true,
                body_lines_left: body_lines,
            }),
            ..DotStuffer::new()
        }
    }

    /// True once `TOP` has passed every line it wants: the engine may stop
    /// reading the message (further pushes are ignored). Never for `RETR`.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Stuffs the next piece of the message, appending to `output`.
    pub fn push(&mut self, chunk: &[u8], output: &mut Vec<u8>) {
        let mut rest = chunk;
        while !rest.is_empty() && !self.done {
            if self.at_line_start && rest[0] == b'.' {
                output.push(b'.');
            }
            let (line, ended) = match memchr(b'\n', rest) {
                Some(lf) => (&rest[..=lf], true),
                None => (rest, false),
            };
            output.extend_from_slice(line);
            self.remember(line);
            rest = &rest[line.len()..];
            self.at_line_start = ended;
            if ended {
                self.line_ended();
            }
        }
    }

    /// Ends the message: a CRLF if it did not end with one, then `"." CRLF`.
    pub fn finish(self, output: &mut Vec<u8>) {
        if self.written_any && self.last_two != *b"\r\n" {
            output.extend_from_slice(b"\r\n");
        }
        output.extend_from_slice(b".\r\n");
    }

    fn remember(&mut self, written: &[u8]) {
        let content = written.strip_suffix(b"\n").unwrap_or(written);
        self.line_bytes += content.len() as u64;
        self.line_is_cr &= content.iter().all(|&b| b == b'\r');
        match written {
            [] => {}
            [only] => self.last_two = [self.last_two[1], *only],
            [.., a, b] => self.last_two = [*a, *b],
        }
        self.written_any |= !written.is_empty();
    }

    fn line_ended(&mut self) {
        let blank = self.line_bytes <= 1 && self.line_is_cr;
        self.line_bytes = 0;
        self.line_is_cr = true;
        let Some(top) = self.top.as_mut() else {
            return;
        };
        if top.in_header {
            top.in_header = !blank;
            self.done = blank && top.body_lines_left == 0;
        } else {
            top.body_lines_left = top.body_lines_left.saturating_sub(1);
            self.done = top.body_lines_left == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::lmtp::data::DotDecoder;

    fn stuff(pieces: &[&[u8]], mut stuffer: DotStuffer) -> Vec<u8> {
        let mut output = Vec::new();
        for piece in pieces {
            stuffer.push(piece, &mut output);
        }
        stuffer.finish(&mut output);
        output
    }

    /// The client side: lines end at LF, `"." CRLF` ends, a leading dot goes.
    fn unstuff(stuffed: &[u8]) -> Option<Vec<u8>> {
        let mut message = Vec::new();
        let mut rest = stuffed;
        loop {
            let end = memchr(b'\n', rest)? + 1;
            let line = &rest[..end];
            rest = &rest[end..];
            if line == b".\r\n" {
                return rest.is_empty().then_some(message);
            }
            message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
    }

    fn crlf_terminated(input: &[u8]) -> Vec<u8> {
        let mut expected = input.to_vec();
        if !input.is_empty() && !input.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        expected
    }

    #[test]
    fn stuffs_dots_after_any_line_end() {
        assert_eq!(
            stuff(&[b".a\r\n", b"b\n.", b"c\r", b"\n..d"], DotStuffer::new()),
            b"..a\r\nb\n..c\r\n...d\r\n.\r\n"
        );
        assert_eq!(stuff(&[], DotStuffer::new()), b".\r\n");
        assert_eq!(stuff(&[b"x\r"], DotStuffer::new()), b"x\r\r\n.\r\n");
    }

    #[test]
    fn top_passes_header_and_body_lines() {
        let message: &[u8] = b"A: 1\r\nB: 2\r\n\r\n.one\r\ntwo\r\nthree\r\n";
        for split in 0..=message.len() {
            let (first, second) = message.split_at(split);
            assert_eq!(
                stuff(&[first, second], DotStuffer::top(0)),
                b"A: 1\r\nB: 2\r\n\r\n.\r\n"
            );
            assert_eq!(
                stuff(&[first, second], DotStuffer::top(2)),
                b"A: 1\r\nB: 2\r\n\r\n..one\r\ntwo\r\n.\r\n"
            );
            assert_eq!(
                stuff(&[first, second], DotStuffer::top(99)),
                b"A: 1\r\nB: 2\r\n\r\n..one\r\ntwo\r\nthree\r\n.\r\n"
            );
        }
        let mut stuffer = DotStuffer::top(1);
        let mut output = Vec::new();
        stuffer.push(b"A: 1\n\nbody\nmore\n", &mut output);
        assert!(stuffer.is_done());
        assert_eq!(output, b"A: 1\n\nbody\n");
        // No blank line: all of it is header.
        assert_eq!(
            stuff(&[b"A: 1\r\nB"], DotStuffer::top(0)),
            b"A: 1\r\nB\r\n.\r\n"
        );
    }

    fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => proptest::sample::select(&b".\r\nab"[..]),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..300)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn stuffing_round_trips_at_any_split(
            input in message_bytes(),
            splits in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&input[start..cut]);
                start = cut;
            }
            pieces.push(&input[start..]);
            let stuffed = stuff(&pieces, DotStuffer::new());
            prop_assert_eq!(unstuff(&stuffed), Some(crlf_terminated(&input)));
        }

        #[test]
        fn lmtp_data_decoder_inverts_stuffing_of_crlf_text(
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&b".ab \t\x80"[..]), 0..12),
                0..20,
            ),
        ) {
            let text: Vec<u8> = lines.iter().flat_map(|l| [l.as_slice(), b"\r\n"].concat()).collect();
            let stuffed = stuff(&[&text], DotStuffer::new());
            let mut decoder = DotDecoder::new();
            let mut decoded = Vec::new();
            let result = decoder.decode(&stuffed, &mut decoded);
            prop_assert!(result.ended);
            prop_assert_eq!(result.consumed, stuffed.len());
            prop_assert_eq!(decoded, text);
        }
    }
}
