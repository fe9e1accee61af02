//! Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3) for IMAP4rev1 clients,
//! UTF-8 after `ENABLE UTF8=ACCEPT` or `IMAP4rev2` (RFC 9051 §5.1). Inside the server a
//! name is UTF-8 with `/` as separator and `INBOX` upper-cased.

use base64::Engine as _;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The hierarchy separator.
pub const SEPARATOR: char = '/';

const MUTF7: GeneralPurpose = GeneralPurpose::new(
    &IMAP_MUTF7,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Why a name from the client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Not valid modified UTF-7 / UTF-8.
    Encoding,
    /// A NUL or other control character.
    Control,
}

/// Decodes modified UTF-7. Strict: printable ASCII outside `&…-`, every `&…-` holds
/// UTF-16 that is not plain printable ASCII, no two shifts back to back.
pub fn decode_mutf7(bytes: &[u8]) -> Result<String, NameError> {
    let mut out = String::new();
    let mut i = 0;
    let mut after_shift = false;
    while let Some(&b) = bytes.get(i) {
        if !(0x20..=0x7e).contains(&b) {
            return Err(NameError::Encoding);
        }
        if b != b'&' {
            out.push(char::from(b));
            i += 1;
            after_shift = false;
            continue;
        }
        let end = bytes[i + 1..]
            .iter()
            .position(|&c| c == b'-')
            .ok_or(NameError::Encoding)?
            + i
            + 1;
        let encoded = &bytes[i + 1..end];
        i = end + 1;
        if encoded.is_empty() {
            out.push('&');
            after_shift = false;
            continue;
        }
        if after_shift {
            return Err(NameError::Encoding);
        }
        let raw = MUTF7.decode(encoded).map_err(|_| NameError::Encoding)?;
        if raw.len() % 2 != 0 {
            return Err(NameError::Encoding);
        }
        let units = raw
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]));
        let mut decoded = String::new();
        for ch in char::decode_utf16(units) {
            let ch = ch.map_err(|_| NameError::Encoding)?;
            if (' '..='~').contains(&ch) {
                return Err(NameError::Encoding);
            }
            decoded.push(ch);
        }
        out.push_str(&decoded);
        after_shift = true;
    }
    Ok(out)
}

/// Encodes to modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&MUTF7.encode(bytes));
        out.push('-');
        pending.clear();
    };
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A name from the client, in the server's form.
pub fn from_wire(bytes: &[u8], utf8: bool) -> Result<String, NameError> {
    let name = if utf8 {
        String::from_utf8(bytes.to_vec()).map_err(|_| NameError::Encoding)?
    } else {
        decode_mutf7(bytes)?
    };
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(canonical_inbox(&name))
}

/// `inbox` in any case as the first component becomes `INBOX`.
pub fn canonical_inbox(name: &str) -> String {
    match name.split_once(SEPARATOR) {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX/{rest}"),
        None if name.eq_ignore_ascii_case("INBOX") => "INBOX".into(),
        _ => name.to_owned(),
    }
}

/// A name as the client sees it: a quoted string (or a literal when it must be).
pub fn to_wire(name: &str, utf8: bool) -> String {
    let text = if utf8 {
        name.to_owned()
    } else {
        encode_mutf7(name)
    };
    quote(&text)
}

/// A quoted string; a literal for text a quoted string cannot hold (CR, LF).
pub fn quote(text: &str) -> String {
    if text.contains(['\r', '\n']) {
        return format!("{{{}}}\r\n{text}", text.len());
    }
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7_round_trips() {
        for name in [
            "INBOX",
            "Entwürfe",
            "~peter/mail/台北/日本語",
            "a&b",
            "Gesendete Objekte",
            "😀",
        ] {
            let encoded = encode_mutf7(name);
            assert!(encoded.is_ascii());
            assert_eq!(decode_mutf7(encoded.as_bytes()).as_deref(), Ok(name));
        }
        assert_eq!(encode_mutf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(
            encode_mutf7("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
    }

    #[test]
    fn invalid_modified_utf7_is_refused() {
        for bad in [
            &b"&"[..],
            b"&Jjo",
            b"&AGE-",
            b"&U,BTFw-&ZeVnLIqe-",
            b"\xc3\xbc",
            b"&Jj-",
        ] {
            assert_eq!(decode_mutf7(bad), Err(NameError::Encoding), "{bad:?}");
        }
        assert_eq!(from_wire(b"inbox/Sub", false).as_deref(), Ok("INBOX/Sub"));
        assert_eq!(from_wire(b"a\x01", true), Err(NameError::Control));
    }
}
