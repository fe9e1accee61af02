//! Text as SEARCH compares it, the way Dovecot 2.3 does (`i;unicode-casemap`, RFC
//! 5051): header values with RFC 2047 words decoded, bodies converted from their
//! charset, then every character titlecased and decomposed (`é` becomes `E` + U+0301),
//! and the key normalised alike, so `cafe` finds `Café`. The store computes its SORT
//! strings the same way at delivery (`store::message::titlecase`); this copy is here
//! because SEARCH reads the message text at search time and the protocols crate does
//! not depend on the store.

use encoding_rs::Encoding;

/// Simple titlecase (UnicodeData field 14): the uppercase mapping but for the
/// digraphs; a character whose uppercase is several characters stays itself.
fn titlecase_char(c: char) -> char {
    match c {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        _ => {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        }
    }
}

/// Dovecot's `uni_utf8_to_decomposed_titlecase`; line breaks become spaces so that
/// an unfolded header and a key with spaces compare alike.
pub fn casemap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // ASCII (most of any header) titlecases to its uppercase and has no
        // decomposition: skip the Unicode tables for it.
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            unicode_normalization::char::decompose_compatible(titlecase_char(c), |d| out.push(d));
        }
    }
    out
}

/// Bytes in a charset to UTF-8 (unknown charsets and invalid bytes replaced, as
/// lenient as mail needs).
pub fn to_utf8(charset: Option<&str>, data: &[u8]) -> String {
    match charset
        .filter(|c| !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("us-ascii"))
        .and_then(|c| Encoding::for_label(c.as_bytes()))
    {
        Some(enc) => enc.decode_without_bom_handling(data).0.into_owned(),
        None => String::from_utf8_lossy(data).into_owned(),
    }
}

fn q_decode(src: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < src.len() => match (hex(src[i + 1]), hex(src[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a << 4 | b);
                    i += 2;
                }
                _ => out.push(b'='),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// One encoded word after `=?`: (charset, decoded bytes, bytes used).
fn encoded_word(data: &[u8]) -> Option<(&[u8], Vec<u8>, usize)> {
    let mut marks = data
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'?')
        .map(|(i, _)| i);
    let (a, b, c) = (marks.next()?, marks.next()?, marks.next()?);
    if data.get(c + 1) != Some(&b'=') {
        return None;
    }
    let text = &data[b + 1..c];
    let decoded = match data.get(a + 1)? {
        b'q' | b'Q' => q_decode(text),
        b'b' | b'B' => crate::imap::decode::base64(text),
        _ => return None,
    };
    Some((&data[..a], decoded, c + 2))
}

/// A header value with its RFC 2047 words decoded (whitespace between two words
/// dropped), as UTF-8.
pub fn decode_header(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    let (mut start, mut pos) = (0usize, 0usize);
    while pos + 1 < data.len() {
        if data[pos] != b'=' || data[pos + 1] != b'?' {
            pos += 1;
            continue;
        }
        let between = &data[start..pos];
        if !between
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            out.push_str(&String::from_utf8_lossy(between));
        }
        match encoded_word(&data[pos + 2..]) {
            None => {
                start = pos;
                pos += 2;
            }
            Some((charset, decoded, used)) => {
                let charset = String::from_utf8_lossy(charset);
                out.push_str(&to_utf8(Some(charset.as_ref()), &decoded));
                pos += 2 + used;
                start = pos;
            }
        }
    }
    if start < data.len() {
        out.push_str(&String::from_utf8_lossy(&data[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casemap_and_decode() {
        assert_eq!(casemap("Café"), "CAFE\u{301}");
        assert!(casemap("Café Noir").contains(&casemap("cafe")));
        assert!(!casemap("Résumé").contains(&casemap("resume")));
        assert_eq!(
            decode_header(b"=?utf-8?q?caf=C3=A9?= =?iso-8859-1?q?_cr=E8me?= ok"),
            "café crème ok"
        );
        assert_eq!(to_utf8(Some("iso-8859-1"), b"na\xefve"), "naïve");
    }
}
