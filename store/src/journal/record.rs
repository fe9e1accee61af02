//! The payload of a journal record: one mutation of one user's tree, encoded
//! little-endian, strings as a length then UTF-8 bytes.
//!
//! ```text
//! 0   kind u8: 1 deliver, 2 copy, 3 flags, 4 expunge, 5 mailbox list, 6 deliver file
//! 1   user: u8 length + canonical address
//!     deliver   mailbox u32, uid u32, modseq u64, system flags u8, keywords,
//!               internaldate i64, tz minutes i16, message u32 length + bytes (CRLF)
//!     copy      source mailbox u32, target mailbox u32, modseq u64,
//!               count u32 + (source uid u32, target uid u32)…
//!     flags     mailbox u32, modseq u64, mode u8 (0 add, 1 remove, 2 replace),
//!               system flags u8, keywords, count u32 + uid u32…
//!     expunge   mailbox u32, modseq u64, count u32 + uid u32…
//!     list      the new `mailboxes` file, u32 length + bytes,
//!               removed mailboxes: count u32 + id u32…
//!     deliver file  as deliver up to tz minutes, then size u64 and the staged file's
//!               name in the user's `staging` folder (u32 length + bytes): a large
//!               APPEND, written and made durable before the record, linked into the
//!               mailbox when applied
//! keywords = count u8 + (u8 length + name)…
//! ```
//!
//! Every record says what the tree must look like afterwards (UIDs and modseqs are
//! assigned before the record is written), which is what makes applying it twice harmless.

use std::sync::Arc;

use crate::address::Address;
use crate::error::{Result, StoreError};
use crate::limits::{JOURNAL_RECORD_BYTES_MAX, KEYWORDS_PER_MAILBOX_MAX, UIDS_PER_RECORD_MAX};

/// How a flag record changes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagMode {
    Add,
    Remove,
    Replace,
}

/// One mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Deliver {
        user: Address,
        mailbox: u32,
        uid: u32,
        modseq: u64,
        flags: u8,
        keywords: Vec<String>,
        internaldate: i64,
        tz_minutes: i16,
        /// Shared, not copied, with the helper thread that writes the message file.
        message: Arc<Vec<u8>>,
    },
    Copy {
        user: Address,
        source: u32,
        target: u32,
        modseq: u64,
        uids: Vec<(u32, u32)>,
    },
    Flags {
        user: Address,
        mailbox: u32,
        modseq: u64,
        mode: FlagMode,
        flags: u8,
        keywords: Vec<String>,
        uids: Vec<u32>,
    },
    Expunge {
        user: Address,
        mailbox: u32,
        modseq: u64,
        uids: Vec<u32>,
    },
    Mailboxes {
        user: Address,
        list: Vec<u8>,
        removed: Vec<u32>,
    },
    /// A delivery whose bytes are in a staged file (CRLF, durable before the record is
    /// written) instead of the record: a large message never sits in memory.
    DeliverFile {
        user: Address,
        mailbox: u32,
        uid: u32,
        modseq: u64,
        flags: u8,
        keywords: Vec<String>,
        internaldate: i64,
        tz_minutes: i16,
        size: u64,
        /// File name in the user's staging folder (`delivery::STAGING_DIR`): relative,
        /// so the record stays right when the store's roots move.
        name: String,
    },
}

impl Op {
    pub fn user(&self) -> &Address {
        match self {
            Op::Deliver { user, .. }
            | Op::Copy { user, .. }
            | Op::Flags { user, .. }
            | Op::Expunge { user, .. }
            | Op::Mailboxes { user, .. }
            | Op::DeliverFile { user, .. } => user,
        }
    }

    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        self.encode_into(&mut b);
        b
    }

    /// Appends the payload to `out` (the journal encodes straight into its frame).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer(std::mem::take(out));
        self.encode_to(&mut w);
        *out = w.0;
    }

    /// Appends the payload to `out`, except for a delivery's message bytes, which it
    /// returns instead: the payload is `out`'s new bytes followed by them. The journal
    /// writes both with one `pwritev`, so a message is not copied into its record.
    pub fn encode_split_into(&self, out: &mut Vec<u8>) -> &[u8] {
        let mut w = Writer(std::mem::take(out));
        let tail = self.encode_to_split(&mut w, true);
        *out = w.0;
        tail
    }

    fn encode_to(&self, w: &mut Writer) {
        self.encode_to_split(w, false);
    }

    /// Encodes into `w`; with `split`, a delivery's message bytes are left out (their
    /// length is written) and returned.
    fn encode_to_split(&self, w: &mut Writer, split: bool) -> &[u8] {
        match self {
            Op::Deliver {
                user,
                mailbox,
                uid,
                modseq,
                flags,
                keywords,
                internaldate,
                tz_minutes,
                message,
            } => {
                if !split {
                    w.0.reserve(message.len());
                }
                w.u8(1);
                w.user(user);
                w.u32(*mailbox);
                w.u32(*uid);
                w.u64(*modseq);
                w.u8(*flags);
                w.keywords(keywords);
                w.u64(*internaldate as u64);
                w.0.extend_from_slice(&tz_minutes.to_le_bytes());
                if split {
                    w.u32(message.len() as u32);
                    return message;
                }
                w.bytes(message);
            }
            Op::Copy {
                user,
                source,
                target,
                modseq,
                uids,
            } => {
                w.u8(2);
                w.user(user);
                w.u32(*source);
                w.u32(*target);
                w.u64(*modseq);
                w.u32(uids.len() as u32);
                for (s, t) in uids {
                    w.u32(*s);
                    w.u32(*t);
                }
            }
            Op::Flags {
                user,
                mailbox,
                modseq,
                mode,
                flags,
                keywords,
                uids,
            } => {
                w.u8(3);
                w.user(user);
                w.u32(*mailbox);
                w.u64(*modseq);
                w.u8(match mode {
                    FlagMode::Add => 0,
                    FlagMode::Remove => 1,
                    FlagMode::Replace => 2,
                });
                w.u8(*flags);
                w.keywords(keywords);
                w.uids(uids);
            }
            Op::Expunge {
                user,
                mailbox,
                modseq,
                uids,
            } => {
                w.u8(4);
                w.user(user);
                w.u32(*mailbox);
                w.u64(*modseq);
                w.uids(uids);
            }
            Op::Mailboxes {
                user,
                list,
                removed,
            } => {
                w.u8(5);
                w.user(user);
                w.bytes(list);
                w.uids(removed);
            }
            Op::DeliverFile {
                user,
                mailbox,
                uid,
                modseq,
                flags,
                keywords,
                internaldate,
                tz_minutes,
                size,
                name,
            } => {
                w.u8(6);
                w.user(user);
                w.u32(*mailbox);
                w.u32(*uid);
                w.u64(*modseq);
                w.u8(*flags);
                w.keywords(keywords);
                w.u64(*internaldate as u64);
                w.0.extend_from_slice(&tz_minutes.to_le_bytes());
                w.u64(*size);
                w.bytes(name.as_bytes());
            }
        }
        &[]
    }

    /// Parses a payload; anything malformed is `Corrupt` (the frame CRC passed, so this
    /// is a bug or a foreign file, never a torn write).
    pub fn decode(bytes: &[u8]) -> Result<Op> {
        let mut r = Reader { b: bytes, at: 0 };
        let op = match r.u8()? {
            1 => Op::Deliver {
                user: r.user()?,
                mailbox: r.u32()?,
                uid: r.u32()?,
                modseq: r.u64()?,
                flags: r.u8()?,
                keywords: r.keywords()?,
                internaldate: r.u64()? as i64,
                tz_minutes: i16::from_le_bytes(r.array()?),
                message: Arc::new(r.bytes()?.to_vec()),
            },
            2 => {
                let user = r.user()?;
                let (source, target, modseq) = (r.u32()?, r.u32()?, r.u64()?);
                let n = r.count()?;
                let mut uids = Vec::with_capacity(n);
                for _ in 0..n {
                    uids.push((r.u32()?, r.u32()?));
                }
                Op::Copy {
                    user,
                    source,
                    target,
                    modseq,
                    uids,
                }
            }
            3 => Op::Flags {
                user: r.user()?,
                mailbox: r.u32()?,
                modseq: r.u64()?,
                mode: match r.u8()? {
                    0 => FlagMode::Add,
                    1 => FlagMode::Remove,
                    2 => FlagMode::Replace,
                    _ => return Err(bad("flag mode")),
                },
                flags: r.u8()?,
                keywords: r.keywords()?,
                uids: r.uids()?,
            },
            4 => Op::Expunge {
                user: r.user()?,
                mailbox: r.u32()?,
                modseq: r.u64()?,
                uids: r.uids()?,
            },
            5 => Op::Mailboxes {
                user: r.user()?,
                list: r.bytes()?.to_vec(),
                removed: r.uids()?,
            },
            6 => Op::DeliverFile {
                user: r.user()?,
                mailbox: r.u32()?,
                uid: r.u32()?,
                modseq: r.u64()?,
                flags: r.u8()?,
                keywords: r.keywords()?,
                internaldate: r.u64()? as i64,
                tz_minutes: i16::from_le_bytes(r.array()?),
                size: r.u64()?,
                name: {
                    let name = std::str::from_utf8(r.bytes()?).map_err(|_| bad("utf-8"))?;
                    if name.is_empty() || name.contains('/') || name.starts_with('.') {
                        return Err(bad("staged file name"));
                    }
                    name.to_owned()
                },
            },
            _ => return Err(bad("record kind")),
        };
        if r.at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(op)
    }
}

fn bad(what: &str) -> StoreError {
    StoreError::corrupt("journal", format!("malformed record: {what}"))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn user(&mut self, a: &Address) {
        self.u8(a.as_str().len() as u8);
        self.0.extend_from_slice(a.as_str().as_bytes());
    }
    fn keywords(&mut self, k: &[String]) {
        self.u8(k.len() as u8);
        for name in k {
            self.u8(name.len() as u8);
            self.0.extend_from_slice(name.as_bytes());
        }
    }
    fn uids(&mut self, uids: &[u32]) {
        self.u32(uids.len() as u32);
        for u in uids {
            self.u32(*u);
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| bad("short"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn count(&mut self) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > UIDS_PER_RECORD_MAX {
            return Err(bad("count"));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > JOURNAL_RECORD_BYTES_MAX {
            return Err(bad("length"));
        }
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str> {
        let n = usize::from(self.u8()?);
        std::str::from_utf8(self.take(n)?).map_err(|_| bad("utf-8"))
    }
    fn user(&mut self) -> Result<Address> {
        let s = self.str()?;
        Address::parse(s)
            .ok()
            .filter(|a| a.as_str() == s)
            .ok_or_else(|| bad("address"))
    }
    fn keywords(&mut self) -> Result<Vec<String>> {
        let n = usize::from(self.u8()?);
        if n > KEYWORDS_PER_MAILBOX_MAX {
            return Err(bad("keyword count"));
        }
        (0..n).map(|_| self.str().map(str::to_owned)).collect()
    }
    fn uids(&mut self) -> Result<Vec<u32>> {
        let n = self.count()?;
        (0..n).map(|_| self.u32()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Address {
        Address::parse("a@b.c").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn deliver_known_answer() -> Result<()> {
        let op = Op::Deliver {
            user: user(),
            mailbox: 1,
            uid: 2,
            modseq: 3,
            flags: 1,
            keywords: vec!["$X".into()],
            internaldate: -1,
            tz_minutes: 60,
            message: Arc::new(b"M\r\n".to_vec()),
        };
        let b = op.encode();
        assert_eq!(
            b,
            [
                &[1u8, 5][..],
                b"a@b.c",
                &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2],
                b"$X",
                &[0xff; 8],
                &[60, 0, 3, 0, 0, 0],
                b"M\r\n",
            ]
            .concat()
        );
        assert_eq!(Op::decode(&b)?, op);
        for len in 0..b.len() {
            assert!(Op::decode(&b[..len]).is_err());
        }
        Ok(())
    }

    #[test]
    fn every_kind_round_trips() -> Result<()> {
        let ops = [
            Op::Copy {
                user: user(),
                source: 1,
                target: 2,
                modseq: 9,
                uids: vec![(1, 7), (3, 8)],
            },
            Op::Flags {
                user: user(),
                mailbox: 4,
                modseq: 5,
                mode: FlagMode::Replace,
                flags: 31,
                keywords: vec![],
                uids: vec![1, 2, 3],
            },
            Op::Expunge {
                user: user(),
                mailbox: 4,
                modseq: 6,
                uids: vec![2],
            },
            Op::Mailboxes {
                user: user(),
                list: b"list".to_vec(),
                removed: vec![5],
            },
            Op::DeliverFile {
                user: user(),
                mailbox: 1,
                uid: 2,
                modseq: 3,
                flags: 1,
                keywords: vec!["$X".into()],
                internaldate: 7,
                tz_minutes: -60,
                size: 1 << 40,
                name: "123.456.7".into(),
            },
        ];
        for op in ops {
            assert_eq!(Op::decode(&op.encode())?, op);
        }
        assert!(Op::decode(&[9]).is_err());
        Ok(())
    }
}
