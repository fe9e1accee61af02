//! The line format shared by the store's small text files (`format`, `profile`):
//!
//! ```text
//! <magic> <version>\n
//! <key> <value>\n        (zero or more; key is [a-z0-9_]+, value runs to the line end)
//! crc32 <8 lower-case hex digits>\n
//! ```
//!
//! The checksum is CRC-32 (IEEE, as `crc32fast` and zlib compute it) of every byte before
//! the `crc32` line. Values may hold spaces but no control characters, so a value can
//! never start a new line. Text because an operator reads these with `cat`; checked so a
//! torn or hand-edited file is caught instead of half-read.

use std::path::Path;

use crate::error::{Result, StoreError};

const CRC_KEY: &str = "crc32";

/// Writes a file body: magic line, fields, checksum line. A value with a control
/// character is a caller bug that validation should have caught: it is rejected here too.
pub(crate) fn encode(magic: &str, version: u32, fields: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut text = format!("{magic} {version}\n");
    for (key, value) in fields {
        debug_assert!(is_key(key), "bad key {key:?}");
        if value.chars().any(char::is_control) {
            return Err(StoreError::InvalidValue {
                field: "value",
                reason: format!("{key} holds a control character"),
            });
        }
        text.push_str(key);
        text.push(' ');
        text.push_str(value);
        text.push('\n');
    }
    let crc = crc32fast::hash(text.as_bytes());
    text.push_str(&format!("{CRC_KEY} {crc:08x}\n"));
    Ok(text.into_bytes())
}

/// Checks magic, version and checksum and returns the `(key, value)` lines in order.
/// Keys are not interpreted here; a key given twice is rejected.
pub(crate) fn decode<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: &str,
    version: u32,
) -> Result<Vec<(&'a str, &'a str)>> {
    let corrupt = |reason: String| StoreError::corrupt(path, reason);
    let Some(body_with_crc) = bytes.strip_suffix(b"\n") else {
        return Err(corrupt(
            "file does not end with a newline (truncated?)".into(),
        ));
    };
    let crc_start = body_with_crc
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let (body, crc_line) = bytes.split_at(crc_start);
    let crc_line = &crc_line[..crc_line.len() - 1];
    let stored = crc_line
        .strip_prefix(b"crc32 ")
        .filter(|hex| hex.len() == 8 && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| corrupt("last line is not a crc32 checksum (truncated?)".into()))?;
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(corrupt(format!(
            "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| corrupt("not UTF-8".into()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let (found_magic, found_version) = header.split_once(' ').unwrap_or((header, ""));
    if found_magic != magic {
        return Err(corrupt(format!("not a {magic} file")));
    }
    if found_version != version.to_string() {
        return Err(corrupt(format!(
            "unsupported {magic} version {found_version:?} (this build reads {version})"
        )));
    }
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for line in lines {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if !is_key(key) || !line.contains(' ') {
            return Err(corrupt(format!("malformed line {line:?}")));
        }
        if value.chars().any(char::is_control) {
            return Err(corrupt(format!("control character in {key}")));
        }
        if fields.iter().any(|(k, _)| *k == key) {
            return Err(corrupt(format!("duplicate key {key}")));
        }
        fields.push((key, value));
    }
    Ok(fields)
}

/// Takes the value of a required key out of decoded fields.
pub(crate) fn take<'a>(
    path: &Path,
    fields: &mut Vec<(&str, &'a str)>,
    key: &str,
) -> Result<&'a str> {
    match fields.iter().position(|(k, _)| *k == key) {
        Some(i) => Ok(fields.remove(i).1),
        None => Err(StoreError::corrupt(path, format!("missing key {key}"))),
    }
}

/// Rejects keys left over after the reader took every key it knows.
pub(crate) fn no_unknown_keys(path: &Path, fields: &[(&str, &str)]) -> Result<()> {
    match fields.first() {
        Some((key, _)) => Err(StoreError::corrupt(path, format!("unknown key {key}"))),
        None => Ok(()),
    }
}

/// Parses a decimal number field.
pub(crate) fn number<T: std::str::FromStr>(path: &Path, key: &str, value: &str) -> Result<T> {
    // `FromStr` for integers accepts a leading '+': only plain digits are ours.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::corrupt(
            path,
            format!("{key} is not a number: {value:?}"),
        ));
    }
    value
        .parse()
        .map_err(|_| StoreError::corrupt(path, format!("{key} is out of range: {value}")))
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("f")
    }

    #[test]
    fn round_trip() -> Result<()> {
        let bytes = encode("m", 3, &[("a", "x y "), ("b", "")])?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.starts_with("m 3\na x y \nb \ncrc32 "), "{text}");
        let fields = decode(p(), &bytes, "m", 3)?;
        assert_eq!(fields, [("a", "x y "), ("b", "")]);
        Ok(())
    }

    #[test]
    fn rejects_damage() -> Result<()> {
        let bytes = encode("m", 1, &[("a", "1")])?;
        let corrupt = |b: &[u8], magic: &str, version: u32| {
            matches!(
                decode(p(), b, magic, version),
                Err(StoreError::Corrupt { .. })
            )
        };
        assert!(corrupt(&bytes, "other", 1));
        assert!(corrupt(&bytes, "m", 2));
        for len in 0..bytes.len() {
            assert!(corrupt(&bytes[..len], "m", 1), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            assert!(corrupt(&flipped, "m", 1), "flipped byte {i}");
        }
        assert!(corrupt(&encode("m", 1, &[("a", "1"), ("a", "2")])?, "m", 1));
        assert!(encode("m", 1, &[("a", "x\ny")]).is_err());
        Ok(())
    }

    #[test]
    fn numbers_are_plain_digits() {
        assert_eq!(number::<u8>(p(), "k", "7").ok(), Some(7));
        assert!(number::<u8>(p(), "k", "+7").is_err());
        assert!(number::<u8>(p(), "k", "256").is_err());
        assert!(number::<u8>(p(), "k", "").is_err());
    }
}
