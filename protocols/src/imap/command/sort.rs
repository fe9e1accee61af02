//! SORT and UID SORT (RFC 5256) with the RFC 5957 DISPLAYFROM/DISPLAYTO keys; plain
//! `* SORT` answers (no ESORT). The search part is SEARCH's; the keys come
//! precomputed from the backend ([`SortKeys`]), so a SORT compares strings and numbers
//! only. Results equal Dovecot 2.3's for the same messages (tests/tests/imap_sort.rs):
//! strings compare as bytes of Dovecot's titlecased form, a missing or invalid Date
//! sorts by the internal date, and ties keep mailbox order whatever REVERSE says.

use std::cmp::Ordering;

use crate::imap::backend::{ImapBackend, SortKeys};
use crate::imap::command::search::{SearchKey, parse_keys, uses_modseq_key};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{Core, Status};
use crate::imap::types::Tag;

/// One sort criterion (RFC 5256 §3, RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortCriterion {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

impl SortCriterion {
    fn from_name(name: &str) -> Option<SortCriterion> {
        Some(match name {
            "ARRIVAL" => SortCriterion::Arrival,
            "CC" => SortCriterion::Cc,
            "DATE" => SortCriterion::Date,
            "FROM" => SortCriterion::From,
            "SIZE" => SortCriterion::Size,
            "SUBJECT" => SortCriterion::Subject,
            "TO" => SortCriterion::To,
            "DISPLAYFROM" => SortCriterion::DisplayFrom,
            "DISPLAYTO" => SortCriterion::DisplayTo,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortArgs {
    pub uid: bool,
    /// Criteria in order, each with its REVERSE.
    pub program: Vec<(SortCriterion, bool)>,
    /// Upper-cased; checked by the command (an unknown one is `NO [BADCHARSET]`).
    pub charset: String,
    pub key: SearchKey,
}

/// `SP "(" sort-criterion *(SP sort-criterion) ")" SP charset 1*(SP search-key)`.
/// As Dovecot: REVERSE toggles, a repeated criterion is skipped, a list ending in
/// REVERSE is refused.
pub fn parse(input: &mut Cursor<'_>, uid: bool) -> Result<SortArgs, ParseErrorKind> {
    input.sp()?;
    input.expect(b'(')?;
    let mut program: Vec<(SortCriterion, bool)> = Vec::new();
    let mut reverse = false;
    let last_reverse = loop {
        let word = input.atom()?.to_ascii_uppercase();
        let last_reverse = word.as_str() == "REVERSE";
        if last_reverse {
            reverse = !reverse;
        } else {
            let c =
                SortCriterion::from_name(word.as_str()).ok_or(ParseErrorKind::InvalidArgument)?;
            // Dovecot skips a repeated key but keeps a REVERSE before it pending.
            if !program.iter().any(|(p, _)| *p == c) {
                program.push((c, reverse));
                reverse = false;
            }
        }
        if input.peek() == Some(b')') {
            break last_reverse;
        }
        input.sp()?;
    };
    input.expect(b')')?;
    if last_reverse {
        return Err(ParseErrorKind::InvalidArgument);
    }
    input.sp()?;
    let charset = String::from_utf8_lossy(input.astring()?.as_bytes()).to_ascii_uppercase();
    let key = parse_keys(input)?;
    Ok(SortArgs {
        uid,
        program,
        charset,
        key,
    })
}

/// The charsets SEARCH, SORT and THREAD take.
pub(crate) fn charset_known(charset: &str) -> bool {
    charset == "UTF-8" || charset == "US-ASCII"
}

/// One message as SORT and THREAD see it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub seq: u32,
    pub uid: u32,
    pub modseq: u64,
    pub internaldate: i64,
    pub size: u64,
    pub keys: SortKeys,
}

impl Item {
    /// The sent date, or the internal date when the message has none (RFC 5256).
    pub fn date(&self) -> i64 {
        if self.keys.sent_date != 0 {
            i64::from(self.keys.sent_date)
        } else {
            self.internaldate
        }
    }
}

fn compare(a: &Item, b: &Item, program: &[(SortCriterion, bool)]) -> Ordering {
    for &(c, reverse) in program {
        let order = match c {
            SortCriterion::Arrival => a.internaldate.cmp(&b.internaldate),
            SortCriterion::Date => a.date().cmp(&b.date()),
            SortCriterion::Size => a.size.cmp(&b.size),
            SortCriterion::Subject => a.keys.subject.cmp(&b.keys.subject),
            SortCriterion::From => a.keys.from.cmp(&b.keys.from),
            SortCriterion::To => a.keys.to.cmp(&b.keys.to),
            SortCriterion::Cc => a.keys.cc.cmp(&b.keys.cc),
            SortCriterion::DisplayFrom => a.keys.display_from.cmp(&b.keys.display_from),
            SortCriterion::DisplayTo => a.keys.display_to.cmp(&b.keys.display_to),
        };
        if order != Ordering::Equal {
            return if reverse { order.reverse() } else { order };
        }
    }
    a.seq.cmp(&b.seq)
}

/// Sorts messages by a program; ties in mailbox order.
pub(crate) fn sort_items(items: &mut [Item], program: &[(SortCriterion, bool)]) {
    items.sort_by(|a, b| compare(a, b, program));
}

impl Core {
    /// The matching messages of the selected mailbox with their sort keys.
    pub(crate) fn sort_items(
        &mut self,
        key: &SearchKey,
        backend: &mut dyn ImapBackend,
    ) -> Result<Vec<Item>, String> {
        self.refresh(backend, false);
        let found = self.matching(key, backend);
        let Some(selected) = &self.selected else {
            return Ok(Vec::new());
        };
        let uids: Vec<u32> = found.iter().map(|f| f.1).collect();
        let keys = backend
            .sort_keys(&selected.name, &uids)
            .map_err(|e| e.response())?;
        Ok(found
            .iter()
            .zip(keys)
            .filter_map(|(&(seq, uid, modseq), keys)| {
                let meta = selected.messages.get(seq as usize - 1)?;
                Some(Item {
                    seq,
                    uid,
                    modseq,
                    internaldate: meta.internaldate.unix_secs,
                    size: meta.size,
                    keys,
                })
            })
            .collect())
    }

    pub(crate) fn sort(&mut self, tag: &Tag, args: SortArgs, backend: &mut dyn ImapBackend) {
        if !charset_known(&args.charset) {
            return self.respond(
                Some(tag),
                Status::No,
                "[BADCHARSET (US-ASCII UTF-8)] Unknown charset",
            );
        }
        let modseq = uses_modseq_key(&args.key);
        if modseq {
            self.enabled.condstore = true;
        }
        let mut items = match self.sort_items(&args.key, backend) {
            Ok(items) => items,
            Err(text) => return self.respond(Some(tag), Status::No, &text),
        };
        sort_items(&mut items, &args.program);
        let mut line = String::from("SORT");
        for item in &items {
            let n = if args.uid { item.uid } else { item.seq };
            line.push_str(&format!(" {n}"));
        }
        if let (true, Some(h)) = (modseq, items.iter().map(|i| i.modseq).max()) {
            line.push_str(&format!(" (MODSEQ {h})"));
        }
        self.untagged(&line);
        self.respond(Some(tag), Status::Ok, "SORT completed");
    }
}
