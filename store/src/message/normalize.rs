//! Line-ending normalisation at delivery: the store keeps every message with CRLF,
//! exactly the bytes later sent to clients (DESIGN §3).

use std::borrow::Cow;

/// Turns every bare LF into CRLF. Everything else is kept byte for byte: 8-bit bytes,
/// NULs, and a lone CR (one not followed by LF).
///
/// Lone CR is kept as is because that is what Dovecot does: its LF→CRLF input
/// filter (`i_stream_create_crlf`) only inserts a CR before an LF that lacks one, and
/// its message parser treats a lone CR as an ordinary byte inside a line. Turning it
/// into a line break would change the message's structure behind the sender's back.
///
/// Borrows when the input needs no change (the common case for mail from an MTA).
pub fn normalize_crlf(input: &[u8]) -> Cow<'_, [u8]> {
    // memchr finds the line feeds (SIMD); only they are looked at, one by one.
    let bare = |i: &usize| *i == 0 || input[*i - 1] != b'\r';
    let mut bare_lfs = memchr::memchr_iter(b'\n', input).filter(bare).peekable();
    if bare_lfs.peek().is_none() {
        return Cow::Borrowed(input);
    }
    let extra = memchr::memchr_iter(b'\n', input).filter(bare).count();
    let mut out = Vec::with_capacity(input.len() + extra);
    let mut from = 0;
    for lf in bare_lfs {
        out.extend_from_slice(&input[from..lf]);
        out.push(b'\r');
        from = lf;
    }
    out.extend_from_slice(&input[from..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_input_is_borrowed() {
        assert!(matches!(normalize_crlf(b"a\r\nb\r\n"), Cow::Borrowed(_)));
        assert!(matches!(normalize_crlf(b""), Cow::Borrowed(_)));
    }

    /// Every string of up to 7 bytes over `a`, CR, LF against the obvious byte loop.
    #[test]
    fn agrees_with_a_byte_loop() {
        fn naive(input: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for (i, &b) in input.iter().enumerate() {
                if b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
                    out.push(b'\r');
                }
                out.push(b);
            }
            out
        }
        for len in 0..=7u32 {
            for n in 0..3usize.pow(len) {
                let input: Vec<u8> = (0..len)
                    .map(|k| [b'a', b'\r', b'\n'][n / 3usize.pow(k) % 3])
                    .collect();
                assert_eq!(
                    &*normalize_crlf(&input),
                    naive(&input),
                    "{}",
                    input.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn bare_lf_gets_cr() {
        assert_eq!(&*normalize_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(&*normalize_crlf(b"\n\n"), b"\r\n\r\n");
    }

    #[test]
    fn lone_cr_nul_and_8bit_kept() {
        let input = b"a\rb\0\xff\xfe\n\r\r\n";
        assert_eq!(&*normalize_crlf(input), b"a\rb\0\xff\xfe\r\n\r\r\n");
    }
}
