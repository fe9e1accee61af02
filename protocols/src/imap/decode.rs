//! Content-transfer decoding for BINARY (RFC 3516) and SEARCH: lenient, as mail is.

/// Base64, skipping anything outside the alphabet (line breaks, garbage) and stopping
/// at padding.
pub fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX`, soft line breaks; a bad escape is kept.
pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        if b == b' ' || b == b'\t' {
            // Whitespace ending a line was added in transport: RFC 2045 6.7 (3) says
            // to delete it, and Dovecot does.
            let run = data[i..]
                .iter()
                .take_while(|&&c| c == b' ' || c == b'\t')
                .count();
            let rest = &data[i + run..];
            if !(rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n")) {
                out.extend_from_slice(&data[i..i + run]);
            }
            i += run;
            continue;
        }
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        // `=` then trailing whitespace is still a soft line break.
        let run = data[i + 1..]
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if run > 0 {
            let rest = &data[i + 1 + run..];
            if rest.starts_with(b"\r\n") {
                i += 3 + run;
                continue;
            }
            if rest.starts_with(b"\n") || rest.is_empty() {
                i += 2 + run;
                continue;
            }
        }
        match (data.get(i + 1), data.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(hex(h).unwrap_or(0) << 4 | hex(l).unwrap_or(0));
                i += 3;
            }
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(
            quoted_printable(b"caf=C3=A9=\r\n!=ZZ"),
            "café!=ZZ".as_bytes()
        );
        assert_eq!(
            quoted_printable(b"a b \t\r\nc  \nd=20 \r\ne= \r\nf \t"),
            b"a b\r\nc\nd \r\nef"
        );
    }
}
