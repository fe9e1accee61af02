//! Message data decoding: `DATA` (dot-unstuffing, RFC 5321 §4.5.2) and `BDAT`
//! chunks (RFC 3030, taken as counted), both streaming: input may be split
//! anywhere and the output is the same.
//!
//! # The line-end rule (bare LF, bare CR, NUL)
//!
//! The store keeps messages in CRLF form, exactly as IMAP/POP3 send them
//! (DESIGN §3), so both decoders write every line end as CRLF:
//!
//! - a **bare LF** is a line end and is written as CRLF (RFC 5321 §2.3.8 forbids
//!   sending it; we repair instead of bouncing mail from a sloppy MTA);
//! - a **bare CR** (not followed by LF) is kept as it is;
//! - a **NUL** byte makes the message unacceptable (RFC 5321 allows no NUL
//!   outside BINARYMIME, which we do not offer, and IMAP cannot send it in a
//!   plain literal): the decoder reports it and the session refuses the message
//!   with `554 5.6.0` for every recipient once the data has ended.
//!
//! `DATA` ends only at `CRLF "." CRLF` with both line ends real CRLFs (or at
//! `"." CRLF` as the very first line). `LF "." LF`, `LF "." CRLF` and
//! `CRLF "." LF` do not end it — treating them as the end is what SMTP
//! smuggling exploits (an upstream MTA that sees one message, a downstream that
//! sees two). A line starting with `"."` after any line end loses that dot.

use memchr::memchr3;

/// Where the `DATA` decoder is inside the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    /// At the start of a line; `crlf` says the previous line ended in a real CRLF.
    LineStart { crlf: bool },
    /// A `"."` at the start of a line (held: stuffing or the terminator).
    Dot { crlf: bool },
    /// `"." CR` at the start of a CRLF-preceded line: one LF from the end.
    DotCr,
    /// Inside a line.
    Middle,
    /// Inside a line, a CR held until we see whether an LF follows.
    Cr,
}

/// The `DATA` state: wire bytes in, message bytes out, until the terminator.
#[derive(Debug, Clone)]
pub struct DotDecoder {
    state: DotState,
    saw_nul: bool,
}

/// The result of one [`DotDecoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used; all of them unless the terminator was found.
    pub consumed: usize,
    /// The terminator was found and consumed; the bytes after it are commands.
    pub ended: bool,
}

impl Default for DotDecoder {
    fn default() -> DotDecoder {
        DotDecoder::new()
    }
}

impl DotDecoder {
    pub fn new() -> DotDecoder {
        DotDecoder {
            state: DotState::LineStart { crlf: true },
            saw_nul: false,
        }
    }

    /// True once a NUL byte was seen (it is not written to the output).
    pub fn saw_nul(&self) -> bool {
        self.saw_nul
    }

    /// Decodes `input`, appending message bytes to `output`.
    pub fn decode(&mut self, input: &[u8], output: &mut Vec<u8>) -> Decoded {
        let mut index = 0;
        while index < input.len() {
            if self.state == DotState::Middle {
                // Fast path: copy the run up to the next byte that matters.
                let rest = &input[index..];
                let run = memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                output.extend_from_slice(&rest[..run]);
                index += run;
                if index == input.len() {
                    break;
                }
            }
            let byte = input[index];
            index += 1;
            if self.step(byte, output) {
                return Decoded {
                    consumed: index,
                    ended: true,
                };
            }
        }
        Decoded {
            consumed: input.len(),
            ended: false,
        }
    }

    /// One byte; true at the end of the data.
    fn step(&mut self, byte: u8, output: &mut Vec<u8>) -> bool {
        match self.state {
            DotState::LineStart { crlf } if byte == b'.' => self.state = DotState::Dot { crlf },
            DotState::LineStart { .. } | DotState::Middle => self.middle(byte, output),
            DotState::Dot { crlf: true } if byte == b'\r' => self.state = DotState::DotCr,
            // The held dot was stuffing: dropped.
            DotState::Dot { .. } => self.middle(byte, output),
            DotState::DotCr if byte == b'\n' => return true,
            DotState::DotCr | DotState::Cr => self.after_cr(byte, output),
        }
        false
    }

    fn middle(&mut self, byte: u8, output: &mut Vec<u8>) {
        self.state = DotState::Middle;
        match byte {
            b'\r' => self.state = DotState::Cr,
            b'\n' => {
                output.extend_from_slice(b"\r\n");
                self.state = DotState::LineStart { crlf: false };
            }
            0 => self.saw_nul = true,
            _ => output.push(byte),
        }
    }

    /// A CR is held; `byte` decides whether it was a line end.
    fn after_cr(&mut self, byte: u8, output: &mut Vec<u8>) {
        match byte {
            b'\n' => {
                output.extend_from_slice(b"\r\n");
                self.state = DotState::LineStart { crlf: true };
            }
            b'\r' => {
                output.push(b'\r');
                self.state = DotState::Cr;
            }
            _ => {
                output.push(b'\r');
                self.middle(byte, output);
            }
        }
    }
}

/// `BDAT` chunks: no stuffing, the same line-end rule as `DATA`.
#[derive(Debug, Clone, Default)]
pub struct ChunkDecoder {
    /// The previous chunk ended with a CR (held).
    cr_held: bool,
    saw_nul: bool,
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder::default()
    }

    /// True once a NUL byte was seen (it is not written to the output).
    pub fn saw_nul(&self) -> bool {
        self.saw_nul
    }

    /// Decodes one piece of chunk data, appending message bytes to `output`.
    pub fn decode(&mut self, input: &[u8], output: &mut Vec<u8>) {
        let mut rest = input;
        while !rest.is_empty() {
            if !self.cr_held {
                let run = memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                output.extend_from_slice(&rest[..run]);
                rest = &rest[run..];
                let Some((&byte, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                match byte {
                    b'\r' => self.cr_held = true,
                    b'\n' => output.extend_from_slice(b"\r\n"),
                    _ => self.saw_nul = true,
                }
                continue;
            }
            // A CR is held: it is written either way, with the LF it needs.
            self.cr_held = false;
            output.push(b'\r');
            if rest[0] == b'\n' {
                output.push(b'\n');
                rest = &rest[1..];
            }
        }
    }

    /// The last chunk ended: writes a held CR.
    pub fn finish(&mut self, output: &mut Vec<u8>) {
        if std::mem::take(&mut self.cr_held) {
            output.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` split at every position; all splits must agree.
    fn dot_decode(input: &[u8]) -> (Vec<u8>, Option<usize>, bool) {
        let mut results = Vec::new();
        for split in 0..=input.len() {
            let mut decoder = DotDecoder::new();
            let mut output = Vec::new();
            let first = decoder.decode(&input[..split], &mut output);
            let end = if first.ended {
                Some(first.consumed)
            } else {
                let second = decoder.decode(&input[split..], &mut output);
                second.ended.then_some(split + second.consumed)
            };
            results.push((output, end, decoder.saw_nul()));
        }
        for result in &results[1..] {
            assert_eq!(
                result,
                &results[0],
                "input {:?}",
                input.escape_ascii().to_string()
            );
        }
        results.swap_remove(0)
    }

    #[test]
    fn unstuffs_and_ends_at_crlf_dot_crlf() {
        let (message, end, nul) = dot_decode(b"a\r\n..b\r\n.\r\nRSET\r\n");
        assert_eq!(message, b"a\r\n.b\r\n");
        assert_eq!(end, Some(11));
        assert!(!nul);
        assert_eq!(dot_decode(b".\r\n"), (Vec::new(), Some(3), false));
    }

    #[test]
    fn bare_lf_is_repaired_and_never_ends_data() {
        let (message, end, _) = dot_decode(b"a\n.\nb\n.\r\nc\r\n.\nd\r\n.\r\n");
        assert_eq!(message, b"a\r\n\r\nb\r\n\r\nc\r\n\r\nd\r\n");
        assert_eq!(end, Some(20));
    }

    #[test]
    fn bare_cr_is_kept_and_nul_is_reported() {
        let (message, end, nul) = dot_decode(b"a\rb\r\r\n.\r.\r\n\0\r\n.\r\n");
        assert_eq!(message, b"a\rb\r\r\n\r.\r\n\r\n");
        assert_eq!(end, Some(17));
        assert!(nul);
    }

    #[test]
    fn chunks_repair_lf_across_splits() {
        let input = b"a\nb\r\nc\r\rd\0\r";
        for split in 0..=input.len() {
            let mut decoder = ChunkDecoder::new();
            let mut output = Vec::new();
            decoder.decode(&input[..split], &mut output);
            decoder.decode(&input[split..], &mut output);
            decoder.finish(&mut output);
            assert_eq!(output, b"a\r\nb\r\nc\r\rd\r");
            assert!(decoder.saw_nul());
        }
    }
}
