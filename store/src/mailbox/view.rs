//! What a session sees of an open mailbox: a snapshot of the index, cheap to take (the
//! record vector is shared, copied only if the mailbox changes while the view lives).

use std::fs::File;
use std::path::PathBuf;
use std::rc::Rc;

use crate::error::{Result, StoreError};
use crate::mailbox::cache::{CacheRef, read_entries, read_entry};
use crate::mailbox::index::{Record, SystemFlags};
use crate::notify::{Change, ChangeKind};

/// STATUS items (RFC 3501 §6.3.10, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub unseen: u32,
    pub highest_modseq: u64,
    pub size: u64,
}

impl Status {
    /// Counts over the live records.
    pub fn of(records: &[Record], uidvalidity: u32, uidnext: u32, highest_modseq: u64) -> Status {
        let mut s = Status {
            uidnext,
            uidvalidity,
            highest_modseq,
            ..Status::default()
        };
        for r in records.iter().filter(|r| !r.expunged) {
            s.messages += 1;
            s.size += r.size;
            if !r.flags.contains(SystemFlags::SEEN) {
                s.unseen += 1;
            }
        }
        s
    }
}

/// What changed in a mailbox since a modseq ([`MailboxView::changes_since`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewChanges {
    /// New messages and messages whose flags changed, as they are now, in UID order.
    pub updated: Vec<MessageInfo>,
    /// Messages expunged since (sorted; some may be unknown to the caller).
    pub expunged: Vec<u32>,
    /// Set when there was no change log to go by: every live UID.
    pub live: Option<Vec<u32>>,
}

/// One live message as a session sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: u32,
    pub flags: SystemFlags,
    pub keywords: Vec<String>,
    pub modseq: u64,
    pub internaldate: i64,
    pub tz_minutes: i16,
    pub size: u64,
}

/// A snapshot of one mailbox.
#[derive(Clone, Debug)]
pub struct MailboxView {
    pub(crate) name: String,
    pub(crate) id: u32,
    pub(crate) dir: PathBuf,
    pub(crate) records: Rc<Vec<Record>>,
    pub(crate) keywords: Rc<Vec<Option<String>>>,
    pub(crate) uidvalidity: u32,
    pub(crate) uidnext: u32,
    pub(crate) highest_modseq: u64,
    pub(crate) cache: Option<Rc<File>>,
}

impl MailboxView {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mailbox id (its folder `mail/<id>`).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }

    pub fn uidnext(&self) -> u32 {
        self.uidnext
    }

    pub fn highest_modseq(&self) -> u64 {
        self.highest_modseq
    }

    /// Live records in UID order (message sequence order).
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| !r.expunged)
    }

    /// UIDs of the live messages, in order.
    pub fn uids(&self) -> Vec<u32> {
        self.records().map(|r| r.uid).collect()
    }

    /// The live record of a UID.
    pub fn get(&self, uid: u32) -> Option<&Record> {
        let pos = self.records.binary_search_by_key(&uid, |r| r.uid).ok()?;
        self.records.get(pos).filter(|r| !r.expunged)
    }

    /// Keyword names of a record's bitmask.
    pub fn keyword_names(&self, rec: &Record) -> Vec<String> {
        // Called for every message when a session's list is built (SELECT): only the set
        // bits are visited, and most messages have none (no allocation then).
        let mut bits = rec.keywords;
        let mut names = Vec::with_capacity(bits.count_ones() as usize);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(Some(name)) = self.keywords.get(bit) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Every keyword defined in the mailbox (for FLAGS / PERMANENTFLAGS).
    pub fn defined_keywords(&self) -> Vec<String> {
        self.keywords.iter().flatten().cloned().collect()
    }

    /// The session-facing form of a live message.
    pub fn info(&self, uid: u32) -> Option<MessageInfo> {
        let r = self.get(uid)?;
        Some(MessageInfo {
            uid: r.uid,
            flags: r.flags,
            keywords: self.keyword_names(r),
            modseq: r.modseq,
            internaldate: r.internaldate,
            tz_minutes: r.tz_minutes,
            size: r.size,
        })
    }

    /// The mailbox's folder, where its message files are (`message_path`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The message file (CRLF, the bytes to send for BODY[] / RETR).
    pub fn message_path(&self, uid: u32) -> PathBuf {
        self.dir.join(uid.to_string())
    }

    /// The precomputed cache record of a message, checked.
    pub fn cache_record(&self, uid: u32) -> Result<Vec<u8>> {
        let rec = self.get(uid).ok_or_else(|| StoreError::InvalidValue {
            field: "uid",
            reason: format!("no message with UID {uid}"),
        })?;
        let path = self.dir.join(crate::mailbox::cache::CACHE_FILE);
        let Some(file) = &self.cache else {
            return Err(StoreError::corrupt(path, "cache file missing"));
        };
        read_entry(
            file,
            &path,
            CacheRef {
                offset: rec.cache_offset,
                len: rec.cache_len,
                crc: rec.cache_crc,
            },
        )
    }

    /// The cache records of several messages, read in as few reads as their places in
    /// the file allow ([`read_entries`]): FETCH and SEARCH over a range of messages.
    /// `f` gets `(index into uids, record)` once per UID, in file order; a record is
    /// borrowed and checked against the index's CRC.
    pub fn cache_records(&self, uids: &[u32], mut f: impl FnMut(usize, Result<&[u8]>)) {
        let path = self.dir.join(crate::mailbox::cache::CACHE_FILE);
        let mut known: Vec<CacheRef> = Vec::with_capacity(uids.len());
        let mut known_at: Vec<usize> = Vec::with_capacity(uids.len());
        for (i, &uid) in uids.iter().enumerate() {
            match (self.get(uid), &self.cache) {
                (None, _) => f(
                    i,
                    Err(StoreError::InvalidValue {
                        field: "uid",
                        reason: format!("no message with UID {uid}"),
                    }),
                ),
                (Some(_), None) => f(i, Err(StoreError::corrupt(&path, "cache file missing"))),
                (Some(rec), Some(_)) => {
                    known.push(CacheRef {
                        offset: rec.cache_offset,
                        len: rec.cache_len,
                        crc: rec.cache_crc,
                    });
                    known_at.push(i);
                }
            }
        }
        if let Some(file) = &self.cache {
            read_entries(file, &path, &known, |k, record| f(known_at[k], record));
        }
    }

    /// What changed above modseq `since`, from the shard's change log
    /// ([`crate::notify::Notifier::changes_since`]) when it reaches back that far: then
    /// O(changes · log n). Without a log, a walk of every record, and `live` lists every
    /// live UID so the caller can tell what vanished.
    pub fn changes_since(&self, log: Option<Vec<Change>>, since: u64) -> ViewChanges {
        let Some(log) = log else {
            let live = self.uids();
            let updated = live
                .iter()
                .filter_map(|&uid| self.info(uid))
                .filter(|i| i.modseq > since)
                .collect();
            return ViewChanges {
                updated,
                expunged: Vec::new(),
                live: Some(live),
            };
        };
        let mut touched = Vec::new();
        let mut expunged = Vec::new();
        for c in log {
            match c.kind {
                ChangeKind::Expunged => expunged.push(c.uid),
                ChangeKind::Appended | ChangeKind::Flags => touched.push(c.uid),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        expunged.sort_unstable();
        expunged.dedup();
        // A message expunged since has no current state; the rest go as they are now.
        let updated = touched
            .into_iter()
            .filter_map(|uid| self.info(uid))
            .filter(|i| i.modseq > since)
            .collect();
        ViewChanges {
            updated,
            expunged,
            live: None,
        }
    }

    /// STATUS counts.
    pub fn status(&self) -> Status {
        Status::of(
            &self.records,
            self.uidvalidity,
            self.uidnext,
            self.highest_modseq,
        )
    }
}
