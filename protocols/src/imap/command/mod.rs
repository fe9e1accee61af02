//! The commands of the authenticated and selected states, one file each: the grammar of
//! its arguments (`parse`) and what the session does with it (an `impl Core` block).
//! Shared argument grammar lives here: sequence sets, flags, mailbox names, dates.

pub mod append;
pub mod authenticate;
pub mod compress;
pub mod copy;
pub mod create;
pub mod delete;
pub mod enable;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod namespace;
pub mod quota;
pub mod rename;
pub mod search;
pub mod select;
pub mod sort;
pub mod status;
pub mod store;
pub mod subscribe;
pub mod thread;

use crate::imap::backend::{Flags, SystemFlags};
use crate::imap::framing::parse_number;
use crate::imap::limits::{IMAP_FLAGS_MAX, IMAP_SEQUENCE_RANGES_MAX};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::types::{AString, is_atom_char};

/// One end of a sequence range: a number or `*` (the largest in the mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    Value(u32),
    Largest,
}

/// `sequence-set` (RFC 9051 §9) or `$` (RFC 5182, the saved search result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    /// Ranges as sent (either end may be the larger).
    Ranges(Vec<(SeqNumber, SeqNumber)>),
    Saved,
}

impl SequenceSet {
    /// The numbers the set names among `values` (sorted ascending), where `*` is
    /// `largest`. Returned sorted and without duplicates.
    pub fn resolve(&self, values: &[u32], largest: u32, saved: Option<&[u32]>) -> Vec<u32> {
        let ranges = match self {
            SequenceSet::Saved => return saved.map(<[u32]>::to_vec).unwrap_or_default(),
            SequenceSet::Ranges(ranges) => ranges,
        };
        let value = |n: SeqNumber| match n {
            SeqNumber::Value(v) => v,
            SeqNumber::Largest => largest,
        };
        let mut bounds: Vec<(u32, u32)> = ranges
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (value(a), value(b));
                (a.min(b), a.max(b))
            })
            .collect();
        bounds.sort_unstable();
        let mut out = Vec::new();
        for (low, high) in merge(bounds) {
            let start = values.partition_point(|&v| v < low);
            let end = values.partition_point(|&v| v <= high);
            out.extend_from_slice(values.get(start..end).unwrap_or_default());
        }
        out
    }

    /// Whether every number is at most `max` (sequence numbers must exist).
    pub fn within(&self, max: u32) -> bool {
        match self {
            SequenceSet::Saved => true,
            SequenceSet::Ranges(ranges) => ranges.iter().all(|&(a, b)| {
                [a, b].iter().all(|n| match n {
                    SeqNumber::Value(v) => *v <= max,
                    SeqNumber::Largest => max > 0,
                })
            }),
        }
    }
}

fn merge(sorted: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(sorted.len());
    for (low, high) in sorted {
        match out.last_mut() {
            Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
            _ => out.push((low, high)),
        }
    }
    out
}

/// Writes sorted numbers as a compact set: `1:3,7,9:10`.
pub fn format_set(values: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = values.get(i) {
        let mut end = start;
        while values.get(i + 1) == Some(&end.wrapping_add(1)) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// `nz-number`: 1..=u32::MAX.
pub fn nz_number(input: &mut Cursor<'_>) -> Result<u32, ParseErrorKind> {
    let n = number(input)?;
    if n == 0 {
        return Err(ParseErrorKind::InvalidArgument);
    }
    Ok(n)
}

/// `number`: a u32.
pub fn number(input: &mut Cursor<'_>) -> Result<u32, ParseErrorKind> {
    let n = number64(input)?;
    u32::try_from(n).map_err(|_| ParseErrorKind::InvalidArgument)
}

/// `number64`.
pub fn number64(input: &mut Cursor<'_>) -> Result<u64, ParseErrorKind> {
    if input.at_eol() {
        return Err(ParseErrorKind::MissingArgument);
    }
    parse_number(input.take_while(|b| b.is_ascii_digit())).ok_or(ParseErrorKind::InvalidArgument)
}

fn seq_number(input: &mut Cursor<'_>) -> Result<SeqNumber, ParseErrorKind> {
    if input.peek() == Some(b'*') {
        input.take(1)?;
        return Ok(SeqNumber::Largest);
    }
    nz_number(input).map(SeqNumber::Value)
}

/// `sequence-set / "$"`.
pub fn sequence_set(input: &mut Cursor<'_>) -> Result<SequenceSet, ParseErrorKind> {
    if input.peek() == Some(b'$') {
        input.take(1)?;
        return Ok(SequenceSet::Saved);
    }
    let mut ranges = Vec::new();
    loop {
        let first = seq_number(input)?;
        let second = if input.peek() == Some(b':') {
            input.take(1)?;
            seq_number(input)?
        } else {
            first
        };
        if ranges.len() == IMAP_SEQUENCE_RANGES_MAX {
            return Err(ParseErrorKind::InvalidArgument);
        }
        ranges.push((first, second));
        if input.peek() != Some(b',') {
            return Ok(SequenceSet::Ranges(ranges));
        }
        input.take(1)?;
    }
}

/// A flag as sent: `\Seen` (system), `\*`, or a keyword atom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    System(u8),
    /// `\Recent` or an unknown `\Name`: refused in STORE/APPEND.
    OtherSystem(String),
    Keyword(String),
}

/// One flag.
pub fn flag(input: &mut Cursor<'_>) -> Result<Flag, ParseErrorKind> {
    if input.peek() == Some(b'\\') {
        input.take(1)?;
        let name = input.take_while(is_atom_char);
        if name.is_empty() {
            return Err(ParseErrorKind::InvalidArgument);
        }
        let name = format!("\\{}", String::from_utf8_lossy(name));
        return Ok(match SystemFlags::from_name(&name) {
            Some(bit) => Flag::System(bit),
            None => Flag::OtherSystem(name),
        });
    }
    Ok(Flag::Keyword(input.atom()?.as_str().to_owned()))
}

/// `"(" [flag *(SP flag)] ")"`, or (when `bare` is allowed, for STORE) flags without
/// parentheses.
pub fn flag_list(input: &mut Cursor<'_>, bare: bool) -> Result<Vec<Flag>, ParseErrorKind> {
    let parenthesised = input.peek() == Some(b'(');
    if !parenthesised && !bare {
        return Err(ParseErrorKind::InvalidArgument);
    }
    if parenthesised {
        input.take(1)?;
    }
    let mut flags = Vec::new();
    if !(parenthesised && input.peek() == Some(b')')) {
        loop {
            if flags.len() == IMAP_FLAGS_MAX {
                return Err(ParseErrorKind::InvalidArgument);
            }
            flags.push(flag(input)?);
            if input.peek() != Some(b' ') {
                break;
            }
            input.sp()?;
        }
    }
    if parenthesised {
        input.expect(b')')?;
    }
    Ok(flags)
}

/// Flags to store: system bits and keywords; `\Recent` and unknown `\Names` refused.
pub fn to_flags(list: &[Flag]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    for f in list {
        match f {
            Flag::System(bit) => flags.system.0 |= bit,
            Flag::OtherSystem(name) => return Err(format!("Invalid system flag {name}")),
            Flag::Keyword(k) => {
                if !flags.has_keyword(k) {
                    flags.keywords.push(k.clone());
                }
            }
        }
    }
    Ok(flags)
}

/// `mailbox`: an astring (decoded later, by the session, from modified UTF-7 or UTF-8).
pub fn mailbox(input: &mut Cursor<'_>) -> Result<AString, ParseErrorKind> {
    input.astring()
}

/// Skips a parenthesised list of anything (extension parameters we do not use).
pub fn skip_list(input: &mut Cursor<'_>) -> Result<(), ParseErrorKind> {
    input.value().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &[u8]) -> SequenceSet {
        let mut input = Cursor::new(text);
        sequence_set(&mut input).expect("valid set")
    }

    #[test]
    fn sequence_sets_resolve_reversed_ranges_and_star() {
        let values = [1, 2, 3, 5, 8, 13];
        assert_eq!(set(b"3:1,8").resolve(&values, 13, None), [1, 2, 3, 8]);
        assert_eq!(set(b"*:6").resolve(&values, 13, None), [8, 13]);
        assert_eq!(set(b"1:*").resolve(&values, 13, None), values);
        assert_eq!(set(b"4,4,4").resolve(&values, 13, None), Vec::<u32>::new());
        assert_eq!(set(b"$").resolve(&values, 13, Some(&[5])), [5]);
        assert!(!set(b"7").within(6));
        assert_eq!(format_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        let mut bad = Cursor::new(b"0");
        assert!(sequence_set(&mut bad).is_err());
    }
}
