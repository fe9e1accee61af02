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
    let bare_lf = |(i, &b): (usize, &u8)| b == b'\n' && (i == 0 || input[i - 1] != b'\r');
    let Some(first) = input.iter().enumerate().position(bare_lf) else {
        return Cow::Borrowed(input);
    };
    let extra = input[first..]
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (first + i == 0 || input[first + i - 1] != b'\r'))
        .count();
    let mut out = Vec::with_capacity(input.len() + extra);
    out.extend_from_slice(&input[..first]);
    for (i, &b) in input.iter().enumerate().skip(first) {
        if b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
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
