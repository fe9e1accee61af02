//! SORT (RFC 5256, RFC 5957) and THREAD keys of a message, computed once at delivery
//! the way Dovecot 2.3 computes them, so that a SORT or THREAD compares ready strings
//! and never parses a message, and answers as Dovecot does for the same messages
//! (tests/tests/imap_sort.rs against answers recorded from Dovecot).
//!
//! Where Dovecot differs from the RFCs we follow Dovecot, and say so:
//! - strings compare as UTF-8 bytes after Dovecot's "decomposed titlecase"
//!   (`uni_utf8_to_decomposed_titlecase`: each character to its simple titlecase, then
//!   fully decomposed: `é` sorts as `E` + U+0301), except the text of an encoded word
//!   in a charset Dovecot does not know, which it leaves as it is (not titlecased);
//! - the sent date is kept in 32 bits (Dovecot's `mail_sent_date.time`), so a date
//!   before 1970 wraps, and a date that is exactly the epoch counts as missing;
//! - a message-id is what `message_id_get_next` finds: the text inside `<...>` with an
//!   `@`, whitespace removed; In-Reply-To counts only when References has no valid id.

use super::address::parse_address_list;
use super::limits::{SORT_FIELD_BYTES_MAX, THREAD_REFERENCES_MAX};
use super::mime::Field;
use super::rfc822::Rfc822;

/// What SORT and THREAD need of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortKeys {
    /// The Date header in UTC seconds, truncated to 32 bits as Dovecot keeps it;
    /// 0 when missing or invalid (SORT then uses the internal date).
    pub sent_date: u32,
    /// RFC 5256 base subject, decoded and titlecased (Dovecot's sort string).
    pub subject: String,
    /// The subject had a `Re:`/`Fwd:` leader, `(fwd)` trailer or `[fwd: ]` wrapper.
    pub reply_or_forward: bool,
    /// addr-mailbox (local part) of the first address, titlecased.
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957 display name of the first address (or `mailbox@domain`), titlecased.
    pub display_from: String,
    pub display_to: String,
    /// The first valid Message-ID, normalised.
    pub message_id: Option<String>,
    /// References' valid ids in order, or else In-Reply-To's first.
    pub references: Vec<String>,
}

fn first_field<'a>(fields: &'a [Field], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| &f.value[..f.value.len().min(SORT_FIELD_BYTES_MAX * 4)])
}

/// Computes the keys from the top-level header fields (unfolded values).
pub fn sort_keys(fields: &[Field]) -> SortKeys {
    let (subject, reply_or_forward) = match first_field(fields, "Subject") {
        Some(v) => base_subject_cased(v),
        None => (String::new(), false),
    };
    let references = {
        let mut refs = first_field(fields, "References")
            .map(|v| message_ids(v, THREAD_REFERENCES_MAX))
            .unwrap_or_default();
        if refs.is_empty()
            && let Some(v) = first_field(fields, "In-Reply-To")
        {
            refs = message_ids(v, 1);
        }
        refs
    };
    SortKeys {
        sent_date: first_field(fields, "Date")
            .and_then(parse_date)
            .map_or(0, |(t, _)| t as u32),
        subject: clip(subject),
        reply_or_forward,
        from: clip(titlecase(&first_mailbox(fields, "From"))),
        to: clip(titlecase(&first_mailbox(fields, "To"))),
        cc: clip(titlecase(&first_mailbox(fields, "Cc"))),
        display_from: clip(titlecase(&display_name(fields, "From"))),
        display_to: clip(titlecase(&display_name(fields, "To"))),
        message_id: first_field(fields, "Message-ID").and_then(|v| message_ids(v, 1).pop()),
        references,
    }
}

fn clip(mut s: String) -> String {
    if s.len() > SORT_FIELD_BYTES_MAX {
        let mut end = SORT_FIELD_BYTES_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

// ---- RFC 2047 (Dovecot's message_header_decode_utf8) ----

/// Appends decoded text, titlecased when the caller normalises (Dovecot's
/// `normalizer` callback).
fn push_text(out: &mut String, text: &str, normalize: bool) {
    if normalize {
        out.push_str(&titlecase(text));
    } else {
        out.push_str(text);
    }
}

/// Appends `data` as UTF-8, each invalid sequence replaced by one U+FFFD (Dovecot
/// does not repeat the replacement for consecutive bad bytes).
fn push_valid(out: &mut String, data: &[u8]) {
    for chunk in data.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() && !out.ends_with('\u{fffd}') {
            out.push('\u{fffd}');
        }
    }
}

fn push_charset(out: &mut String, charset: Option<&[u8]>, data: &[u8], normalize: bool) {
    let lower = charset.map(<[u8]>::to_ascii_lowercase);
    let mut valid = String::new();
    match lower.as_deref() {
        None | Some(b"utf-8" | b"utf8") => {
            push_valid(&mut valid, data);
            push_text(out, &valid, normalize);
        }
        Some(_) => match charset.and_then(mail_parser::decoders::charsets::map::charset_decoder) {
            Some(decode) => push_text(out, &decode(data), normalize),
            // Dovecot appends the valid UTF-8 of an unknown charset as it is, without
            // its normaliser: such text is not titlecased.
            None => push_valid(out, data),
        },
    }
}

fn q_decode(src: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'_' => out.push(b' '),
            b'=' => {
                if i + 2 >= src.len() {
                    out.extend_from_slice(&src[i..]);
                    break;
                }
                match (hex(src[i + 1]), hex(src[i + 2])) {
                    (Some(a), Some(b)) => {
                        out.push(a << 4 | b);
                        i += 2;
                    }
                    // Not hex: kept as it is, as Dovecot shows it.
                    _ => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn b_decode(src: &[u8]) -> Vec<u8> {
    let val = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in src {
        let Some(v) = val(b) else { break };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// One encoded word after its `=?`: `(charset, decoded bytes, bytes consumed)`.
fn encoded_word(data: &[u8]) -> Option<(&[u8], Vec<u8>, usize)> {
    let mut qs = [0usize; 3];
    let mut n = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'?' {
            qs[n] = i;
            n += 1;
            if n == 3 {
                break;
            }
        }
        i += 1;
    }
    if n < 3 || data.get(i + 1) != Some(&b'=') {
        return None;
    }
    let text = &data[qs[1] + 1..qs[2]];
    let decoded = match data.get(qs[0] + 1)? {
        b'q' | b'Q' => q_decode(text),
        b'b' | b'B' => b_decode(text),
        _ => return None,
    };
    Some((&data[..qs[0]], decoded, qs[2] + 2))
}

/// Decodes RFC 2047 encoded words to UTF-8 as Dovecot does: whitespace between two
/// encoded words goes, other text is kept (invalid UTF-8 replaced); with `normalize`
/// each piece is titlecased as it is appended.
pub(crate) fn decode_header(data: &[u8], normalize: bool) -> String {
    let mut out = String::with_capacity(data.len());
    let mut start = 0;
    let mut pos = 0;
    while pos + 1 < data.len() {
        if data[pos] != b'=' || data[pos + 1] != b'?' {
            pos += 1;
            continue;
        }
        let between = &data[start..pos];
        let lwsp_only = between
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        // Dovecot sends the text before `=?` first, and drops it when it is only
        // whitespace, even when what follows turns out not to be an encoded word.
        if pos != start && !lwsp_only {
            push_charset(&mut out, None, between, normalize);
        }
        match encoded_word(&data[pos + 2..]) {
            None => {
                // Not an encoded word: it stays text (sent with what follows).
                start = pos;
                pos += 2;
                continue;
            }
            Some((charset, decoded, used)) => {
                if !decoded.is_empty() {
                    push_charset(&mut out, Some(charset), &decoded, normalize);
                }
                pos += 2 + used;
                start = pos;
            }
        }
    }
    if start < data.len() {
        push_charset(&mut out, None, &data[start..], normalize);
    }
    out
}

// ---- decomposed titlecase (Dovecot's uni_utf8_to_decomposed_titlecase) ----

/// Simple titlecase mapping (UnicodeData field 14). Rust gives the uppercase
/// mapping, which equals it but for the digraphs, and is multi-character only where
/// the simple mapping is the character itself.
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

/// Dovecot 2.3 decomposes the titlecased character fully (compatibility and
/// canonical: `É` sorts as `E` + U+0301, `ﬁ` as `fi`), character by character, with no
/// reordering of combining marks across characters. `unicode-normalization` has the
/// Unicode tables; writing them out here would be thousands of lines of data.
fn push_decomposed(out: &mut String, c: char) {
    unicode_normalization::char::decompose_compatible(c, |d| out.push(d));
}

/// Dovecot's sort normalisation of a UTF-8 string.
pub fn titlecase(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_decomposed(&mut out, titlecase_char(c));
    }
    out
}

// ---- base subject (Dovecot's imap_get_base_subject_cased) ----

fn pack_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_lwsp = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if !last_lwsp {
                out.push(' ');
                last_lwsp = true;
            }
        } else {
            out.push(c);
            last_lwsp = false;
        }
    }
    out
}

/// A subj-blob at `s[pos..]`: the position after `]` and one optional space.
fn skip_blob(s: &[u8], pos: usize) -> Option<usize> {
    if s.get(pos) != Some(&b'[') {
        return None;
    }
    let mut i = pos + 1;
    while i < s.len() && s[i] != b'[' && s[i] != b']' {
        i += 1;
    }
    if s.get(i) != Some(&b']') {
        return None;
    }
    i += 1;
    if s.get(i) == Some(&b' ') {
        i += 1;
    }
    Some(i)
}

/// Steps (3): one subj-leader at `start`; returns whether something was removed.
fn remove_leader(s: &[u8], start: &mut usize, refwd: &mut bool) -> bool {
    let mut removed = false;
    if s.get(*start) == Some(&b' ') {
        *start += 1;
        removed = true;
    }
    let mut p = *start;
    while s.get(p) == Some(&b'[') {
        match skip_blob(s, p) {
            Some(next) => p = next,
            None => return removed,
        }
    }
    let rest = &s[p.min(s.len())..];
    if rest.starts_with(b"RE") {
        p += 2;
    } else if rest.starts_with(b"FWD") {
        p += 3;
    } else if rest.starts_with(b"FW") {
        p += 2;
    } else {
        return removed;
    }
    if s.get(p) == Some(&b' ') {
        p += 1;
    }
    if s.get(p) == Some(&b'[') {
        match skip_blob(s, p) {
            Some(next) => p = next,
            None => return removed,
        }
    }
    if s.get(p) != Some(&b':') {
        return removed;
    }
    *start = p + 1;
    *refwd = true;
    true
}

/// RFC 5256 §2.1 base subject of a raw Subject value, titlecased, and whether it was
/// a reply or forward. Dovecot decodes and titlecases first, then strips, so the
/// leaders are matched in upper case.
pub fn base_subject_cased(raw: &[u8]) -> (String, bool) {
    let decoded = decode_header(raw, true);
    let mut s = pack_whitespace(&decoded).into_bytes();
    let mut start = 0usize;
    let mut refwd = false;
    loop {
        // (2) trailers: "(FWD)" and spaces.
        let mut end = s.len();
        while end > start {
            if s[end - 1] == b' ' {
                end -= 1;
            } else if end >= 5 && &s[end - 5..end] == b"(FWD)" {
                refwd = true;
                end -= 5;
            } else {
                break;
            }
        }
        s.truncate(end);
        // (3)-(5) leaders and blobs.
        loop {
            let mut found = remove_leader(&s, &mut start, &mut refwd);
            if let Some(next) = skip_blob(&s, start)
                && next < s.len()
            {
                start = next;
                found = true;
            }
            if !found {
                break;
            }
        }
        // (6) "[FWD:" ... "]".
        if s.len() >= start + 5 && &s[start..start + 5] == b"[FWD:" && s.last() == Some(&b']') {
            refwd = true;
            s.pop();
            start += 5;
            continue;
        }
        break;
    }
    let start = start.min(s.len());
    // Only ASCII bytes were cut, so both ends are on character boundaries.
    let base = String::from_utf8_lossy(&s[start..]).into_owned();
    (base, refwd)
}

// ---- addresses ----

fn first_address(fields: &[Field], name: &str) -> Option<super::address::Address> {
    let decoded = decode_header(first_field(fields, name)?, false);
    parse_address_list(decoded.as_bytes())?.into_iter().next()
}

fn first_mailbox(fields: &[Field], name: &str) -> String {
    first_address(fields, name)
        .and_then(|a| a.mailbox)
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .unwrap_or_default()
}

fn display_name(fields: &[Field], name: &str) -> String {
    let Some(a) = first_address(fields, name) else {
        return String::new();
    };
    if let Some(n) = &a.name {
        let decoded = decode_header(n, false);
        if !decoded.is_empty() {
            return decoded;
        }
    }
    let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
    match (&a.mailbox, &a.domain) {
        (Some(m), Some(d)) => format!("{}@{}", text(m), text(d)),
        (Some(m), None) => text(m),
        _ => String::new(),
    }
}

// ---- message ids (Dovecot's message_id_get_next) ----

fn strip_lwsp(s: &[u8]) -> Vec<u8> {
    s.iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .collect()
}

/// The slow path for ids with quotes or comments: `local@domain>` tokenised.
fn untokenized_id(data: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let mut p = Rfc822::new(data);
    p.skip_lwsp();
    let ret = if p.cur() == b'"' {
        p.parse_quoted_string(out)
    } else {
        p.parse_dot_atom(out)
    };
    if ret <= 0 || p.cur() != b'@' {
        return None;
    }
    out.push(b'@');
    p.pos += 1;
    p.skip_lwsp();
    if p.parse_dot_atom(out) <= 0 || p.cur() != b'>' {
        return None;
    }
    Some(p.pos + 1)
}

/// Up to `max` valid message ids of a header value, in order.
pub fn message_ids(value: &[u8], max: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut pos = 0usize;
    // Dovecot reuses one buffer for the slow path without clearing it.
    let mut slow = Vec::new();
    while ids.len() < max {
        let Some(lt) = value[pos.min(value.len())..]
            .iter()
            .position(|&b| b == b'<')
        else {
            break;
        };
        let id_start = pos + lt + 1;
        let mut p = id_start;
        let mut found_at = false;
        let stop = loop {
            match value.get(p) {
                None | Some(0) => break None,
                Some(&b) if b >= b'A' => {}
                Some(&b'@') => found_at = true,
                Some(&b) if matches!(b, b'>' | b'"' | b'(') => break Some(b),
                Some(_) => {}
            }
            p += 1;
        };
        match stop {
            None => break,
            Some(b'>') => {
                pos = p + 1;
                if found_at {
                    ids.push(
                        String::from_utf8_lossy(&strip_lwsp(&value[id_start..p])).into_owned(),
                    );
                }
            }
            Some(_) => {
                pos = id_start;
                if let Some(used) = untokenized_id(&value[id_start..], &mut slow) {
                    pos = id_start + used;
                    ids.push(String::from_utf8_lossy(&slow).into_owned());
                }
            }
        }
    }
    ids
}

// ---- Date (Dovecot's message_date_parse) ----

fn next_token(p: &mut Rfc822<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    if p.at_end() {
        return Some(out);
    }
    if p.parse_atom(&mut out) < 0 {
        return None;
    }
    Some(out)
}

fn timezone(z: &[u8]) -> i64 {
    let digit = |b: u8| i64::from(b - b'0');
    match z {
        [sign @ (b'+' | b'-'), a, b, c, d] => {
            if ![a, b, c, d].iter().all(|x| x.is_ascii_digit()) {
                return 0;
            }
            let off = (digit(*a) * 10 + digit(*b)) * 60 + digit(*c) * 10 + digit(*d);
            if *sign == b'+' { off } else { -off }
        }
        [c] => {
            let up = c.to_ascii_uppercase();
            let raw = i64::from(*c);
            if up < b'J' {
                (raw - i64::from(b'A') + 1) * 60
            } else if up == b'J' {
                0
            } else if up <= b'M' {
                (raw - i64::from(b'A')) * 60
            } else if up < b'Z' {
                (i64::from(b'M') - raw) * 60
            } else {
                0
            }
        }
        [a, b, c] if *c == b'T' => {
            let base = match a.to_ascii_uppercase() {
                b'E' => -5 * 60,
                b'C' => -6 * 60,
                b'M' => -7 * 60,
                b'P' => -8 * 60,
                _ => return 0,
            };
            match b.to_ascii_uppercase() {
                b'D' => base + 60,
                b'S' => base,
                _ => 0,
            }
        }
        _ => 0,
    }
}

fn two_digits(v: &[u8]) -> Option<u32> {
    match v {
        [a] if a.is_ascii_digit() => Some(u32::from(a - b'0')),
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// `[weekday ","] dd month [yy]yy hh:mm[:ss] [zone]` to (UTC seconds, zone minutes).
/// Invalid zones count as +0000; impossible dates (31 Feb) are refused.
pub fn parse_date(value: &[u8]) -> Option<(i64, i16)> {
    let mut p = Rfc822::new(value);
    p.skip_lwsp();
    let mut tok = next_token(&mut p).filter(|t| !t.is_empty())?;
    if tok.len() == 3 {
        if p.cur() != b',' {
            return None;
        }
        p.pos += 1;
        p.skip_lwsp();
        tok = next_token(&mut p).filter(|t| !t.is_empty())?;
    }
    let day = two_digits(&tok).filter(|_| tok[0].is_ascii_digit())?;
    let month_tok = next_token(&mut p).filter(|t| t.len() >= 3)?;
    const MONTHS: [&[u8]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let month = MONTHS
        .iter()
        .position(|m| month_tok[..3].eq_ignore_ascii_case(m))? as u32
        + 1;
    let year_tok = next_token(&mut p).filter(|t| t.len() == 2 || t.len() == 4)?;
    if !year_tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut year: i64 = year_tok.iter().fold(0, |a, b| a * 10 + i64::from(b - b'0'));
    if year_tok.len() == 2 {
        year += if year < 70 { 2000 } else { 1900 };
    } else if year < 1900 {
        return None;
    }
    let hour = two_digits(&next_token(&mut p)?)?;
    let is_sep = |b: u8| b == b':' || b == b'.';
    if !is_sep(p.cur()) || p.at_end() {
        return None;
    }
    p.pos += 1;
    p.skip_lwsp();
    let min_tok = next_token(&mut p)?;
    let min = two_digits(&min_tok).filter(|_| min_tok.len() == 2)?;
    let mut sec = 0;
    if !p.at_end() && is_sep(p.cur()) {
        p.pos += 1;
        p.skip_lwsp();
        let sec_tok = next_token(&mut p)?;
        sec = two_digits(&sec_tok).filter(|_| sec_tok.len() == 2)?;
    }
    let zone = next_token(&mut p)?;
    let tz = if zone.is_empty() { 0 } else { timezone(&zone) };
    // utc_mktime refuses what timegm would normalise (leap second 60 allowed).
    let days_in_month = match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > days_in_month || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let t = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec.min(59))
        - tz * 60;
    Some((t, tz as i16))
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects_as_dovecot() {
        let b = |s: &str| base_subject_cased(s.as_bytes());
        assert_eq!(b("Re: hello"), ("HELLO".into(), true));
        assert_eq!(b("RE: [list] Fwd: hello (fwd)"), ("HELLO".into(), true));
        assert_eq!(b("[fwd: re: x]"), ("X".into(), true));
        assert_eq!(b("  a\t b "), ("A B".into(), false));
        assert_eq!(b("[only]"), ("[ONLY]".into(), false));
        assert_eq!(b("re:"), ("".into(), true));
        assert_eq!(
            b("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?="),
            ("CAFE\u{301} AU LAIT".into(), false)
        );
        assert_eq!(b("=?x-unknown?q?Re:_x?="), ("Re: x".into(), false));
    }

    #[test]
    fn message_ids_as_dovecot() {
        assert_eq!(message_ids(b"<a@b> junk <c@d>", 5), ["a@b", "c@d"]);
        assert_eq!(message_ids(b"<nope> <x @ y>", 5), ["x@y"]);
        assert_eq!(message_ids(b"<\"q s\"@h>", 5), ["q s@h"]);
        assert!(message_ids(b"<unterminated@x", 5).is_empty());
    }

    #[test]
    fn dates_as_dovecot() {
        assert_eq!(
            parse_date(b"Thu, 1 Jan 1970 00:00:01 +0100"),
            Some((-3599, 60))
        );
        assert_eq!(
            parse_date(b"1 Jan 2000 00:00 EST"),
            Some((946_702_800, -300))
        );
        assert_eq!(parse_date(b"Thu 1 Jan 2000 00:00 EST"), None);
        assert_eq!(parse_date(b"31 Feb 2000 00:00 +0000"), None);
        assert_eq!(parse_date(b"1 Jan 99 10:00:00 XYZ"), Some((915_184_800, 0)));
    }
}
