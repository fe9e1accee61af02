//! `mail/<id>/index`: one fixed-size record per message, little-endian throughout.
//!
//! ```text
//! offset  size  header (512 bytes, one disk sector: written whole, in place)
//!      0     8  magic "MSTOREIX"
//!      8     4  version (1)
//!     12     4  header_bytes (512)
//!     16     4  keyword_slots (64)
//!     20     4  keyword_slot_bytes (64)
//!     24     4  record_bytes (64)
//!     28     4  mailbox id
//!     32     4  UIDVALIDITY
//!     36     4  reserved, 0
//!     40     8  HIGHESTMODSEQ
//!     48   460  reserved, 0
//!    508     4  CRC-32 (IEEE) of bytes 0..508
//!
//!    512  4096  keyword table: 64 slots of 64 bytes; slot i names keyword bit i
//!               0 name length u8 (0 = free slot: the whole slot is then zero)
//!               1 name, 59 bytes, zero padded
//!              60 CRC-32 of bytes 0..60
//!
//!   4608  64·n  records, UIDs strictly increasing
//!      0     4  UID
//!      4     1  system flags: 1 \Seen, 2 \Answered, 4 \Flagged, 8 \Deleted, 16 \Draft
//!      5     1  state: 0 live, 1 expunged (a tombstone: kept so UIDNEXT survives)
//!      6     2  internal date's zone, minutes east of UTC (i16)
//!      8     8  keyword bitmask (bit i = keyword slot i)
//!     16     8  modseq
//!     24     8  internal date, seconds since the Unix epoch (i64)
//!     32     8  size in bytes of the message file (RFC822.SIZE)
//!     40     8  offset of the message's record in `cache`
//!     48     4  length of that cache record
//!     52     4  CRC-32 of that cache record
//!     56     4  reserved, 0
//!     60     4  CRC-32 of bytes 0..60
//! ```
//!
//! UIDNEXT is the last record's UID + 1 (1 when empty): expunged records stay as
//! tombstones, so it never goes back. Invariants, asserted on write and checked on read:
//! UIDs strictly increase; no record's modseq is above HIGHESTMODSEQ; every CRC matches; the
//! file is the header, the keyword table and whole records. A reader that finds otherwise
//! returns `Corrupt` and the mailbox goes to reconstruct.
//!
//! Crash behaviour: the header, each slot and each record are written with one `pwrite` at
//! an offset that is a multiple of their size, inside one 512-byte sector, so after a crash
//! each is either its old or its new version (the sector-atomicity every database assumes),
//! except a record appended after the last checkpoint, which may be missing or garbage.
//! `Index::open_recover` (used by journal replay) drops such a torn tail and lifts
//! HIGHESTMODSEQ to the records; replay then re-applies every change since the checkpoint.
//!
//! Version policy: any change of layout bumps the version; a reader rejects other versions.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{Result, StoreError};
use crate::limits::{KEYWORD_BYTES_MAX, KEYWORDS_PER_MAILBOX_MAX};

/// File name inside `mail/<id>/`.
pub const INDEX_FILE: &str = "index";
/// First eight bytes.
pub const INDEX_MAGIC: &[u8; 8] = b"MSTOREIX";
/// The only version this build reads and writes.
pub const INDEX_VERSION: u32 = 1;
/// Header size: one sector.
pub const HEADER_BYTES: usize = 512;
/// One keyword slot.
pub const KEYWORD_SLOT_BYTES: usize = 64;
/// One record.
pub const RECORD_BYTES: usize = 64;
/// Where records start.
pub const RECORDS_OFFSET: usize = HEADER_BYTES + KEYWORDS_PER_MAILBOX_MAX * KEYWORD_SLOT_BYTES;
/// HIGHESTMODSEQ of a new mailbox (RFC 7162 mod-sequences are positive).
pub const MODSEQ_INITIAL: u64 = 1;

/// IMAP system flags as a bitmask (`\Recent` is per session and not stored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SystemFlags(pub u8);

impl SystemFlags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    /// Every defined bit.
    pub const ALL: u8 = 31;
    /// Names in bit order.
    pub const NAMES: [(&'static str, u8); 5] = [
        ("\\Seen", Self::SEEN),
        ("\\Answered", Self::ANSWERED),
        ("\\Flagged", Self::FLAGGED),
        ("\\Deleted", Self::DELETED),
        ("\\Draft", Self::DRAFT),
    ];

    /// The bit of an IMAP system flag name (case-insensitive), if it is one.
    pub fn bit_of(name: &str) -> Option<u8> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, b)| *b)
    }

    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// One message's record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    pub flags: SystemFlags,
    pub expunged: bool,
    pub tz_minutes: i16,
    pub keywords: u64,
    pub modseq: u64,
    pub internaldate: i64,
    pub size: u64,
    pub cache_offset: u64,
    pub cache_len: u32,
    pub cache_crc: u32,
}

impl Record {
    /// The 64 on-disk bytes.
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        b[0..4].copy_from_slice(&self.uid.to_le_bytes());
        b[4] = self.flags.0;
        b[5] = u8::from(self.expunged);
        b[6..8].copy_from_slice(&self.tz_minutes.to_le_bytes());
        b[8..16].copy_from_slice(&self.keywords.to_le_bytes());
        b[16..24].copy_from_slice(&self.modseq.to_le_bytes());
        b[24..32].copy_from_slice(&self.internaldate.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.cache_offset.to_le_bytes());
        b[48..52].copy_from_slice(&self.cache_len.to_le_bytes());
        b[52..56].copy_from_slice(&self.cache_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses 64 bytes; `None` when the checksum or a field is wrong.
    pub fn decode(b: &[u8]) -> Option<Record> {
        if b.len() != RECORD_BYTES || crc32fast::hash(&b[..60]) != le_u32(&b[60..64]) {
            return None;
        }
        if b[4] & !SystemFlags::ALL != 0 || b[5] > 1 || le_u32(&b[56..60]) != 0 {
            return None;
        }
        let rec = Record {
            uid: le_u32(&b[0..4]),
            flags: SystemFlags(b[4]),
            expunged: b[5] == 1,
            tz_minutes: i16::from_le_bytes([b[6], b[7]]),
            keywords: le_u64(&b[8..16]),
            modseq: le_u64(&b[16..24]),
            internaldate: le_u64(&b[24..32]) as i64,
            size: le_u64(&b[32..40]),
            cache_offset: le_u64(&b[40..48]),
            cache_len: le_u32(&b[48..52]),
            cache_crc: le_u32(&b[52..56]),
        };
        (rec.uid != 0).then_some(rec)
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The header fields that are not constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub mailbox_id: u32,
    pub uidvalidity: u32,
    pub highest_modseq: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(INDEX_MAGIC);
        b[8..12].copy_from_slice(&INDEX_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        b[16..20].copy_from_slice(&(KEYWORDS_PER_MAILBOX_MAX as u32).to_le_bytes());
        b[20..24].copy_from_slice(&(KEYWORD_SLOT_BYTES as u32).to_le_bytes());
        b[24..28].copy_from_slice(&(RECORD_BYTES as u32).to_le_bytes());
        b[28..32].copy_from_slice(&self.mailbox_id.to_le_bytes());
        b[32..36].copy_from_slice(&self.uidvalidity.to_le_bytes());
        b[40..48].copy_from_slice(&self.highest_modseq.to_le_bytes());
        let crc = crc32fast::hash(&b[..508]);
        b[508..512].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> std::result::Result<Header, &'static str> {
        if b.len() < HEADER_BYTES {
            return Err("short header");
        }
        if &b[0..8] != INDEX_MAGIC {
            return Err("wrong magic");
        }
        if crc32fast::hash(&b[..508]) != le_u32(&b[508..512]) {
            return Err("header checksum mismatch");
        }
        if le_u32(&b[8..12]) != INDEX_VERSION {
            return Err("unsupported index version");
        }
        let layout = [
            HEADER_BYTES,
            KEYWORDS_PER_MAILBOX_MAX,
            KEYWORD_SLOT_BYTES,
            RECORD_BYTES,
        ];
        for (i, want) in layout.iter().enumerate() {
            if le_u32(&b[12 + 4 * i..16 + 4 * i]) as usize != *want {
                return Err("unexpected layout sizes");
            }
        }
        Ok(Header {
            mailbox_id: le_u32(&b[28..32]),
            uidvalidity: le_u32(&b[32..36]),
            highest_modseq: le_u64(&b[40..48]),
        })
    }
}

/// Encodes a keyword slot.
pub fn encode_slot(name: &str) -> [u8; KEYWORD_SLOT_BYTES] {
    let mut b = [0u8; KEYWORD_SLOT_BYTES];
    let n = name.len().min(KEYWORD_BYTES_MAX);
    b[0] = n as u8;
    b[1..1 + n].copy_from_slice(&name.as_bytes()[..n]);
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a slot: `Ok(None)` free, `Ok(Some)` a name, `Err` damaged.
pub fn decode_slot(b: &[u8]) -> std::result::Result<Option<String>, &'static str> {
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if crc32fast::hash(&b[..60]) != le_u32(&b[60..64]) {
        return Err("keyword slot checksum mismatch");
    }
    let n = usize::from(b[0]);
    if n == 0 || n > KEYWORD_BYTES_MAX || b[1 + n..60].iter().any(|&x| x != 0) {
        return Err("keyword slot length");
    }
    let name = std::str::from_utf8(&b[1..1 + n]).map_err(|_| "keyword slot not UTF-8")?;
    Ok(Some(name.to_owned()))
}

/// An open index: the file and every record, loaded.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    file: File,
    header: Header,
    keywords: Vec<Option<String>>,
    /// Shared with views handed out; copied on write only while a view holds it.
    records: Rc<Vec<Record>>,
}

/// How `Index::load` treats damage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Any damage is `Corrupt`.
    Strict,
    /// A torn tail (after a crash) is cut off; damaged keyword slots are freed.
    Recover,
}

impl Index {
    /// Creates a new, empty index (replacing nothing: the file must not exist).
    pub fn create(path: &Path, mailbox_id: u32, uidvalidity: u32) -> Result<Index> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let header = Header {
            mailbox_id,
            uidvalidity,
            highest_modseq: MODSEQ_INITIAL,
        };
        let mut bytes = vec![0u8; RECORDS_OFFSET];
        bytes[..HEADER_BYTES].copy_from_slice(&header.encode());
        file.write_all_at(&bytes, 0)
            .map_err(|e| StoreError::io(path, e))?;
        Ok(Index {
            path: path.to_owned(),
            file,
            header,
            keywords: vec![None; KEYWORDS_PER_MAILBOX_MAX],
            records: Rc::new(Vec::new()),
        })
    }

    /// Opens and checks an index; any damage is `Corrupt`.
    pub fn open(path: &Path) -> Result<Index> {
        Self::load(path, Mode::Strict)
    }

    /// Opens an index after a crash: cuts a torn tail of records, frees damaged keyword
    /// slots and lifts HIGHESTMODSEQ to the records. A damaged header is still `Corrupt`.
    pub fn open_recover(path: &Path) -> Result<Index> {
        Self::load(path, Mode::Recover)
    }

    fn load(path: &Path, mode: Mode) -> Result<Index> {
        let corrupt = |reason: String| StoreError::corrupt(path, reason);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        if bytes.len() < RECORDS_OFFSET {
            return Err(corrupt("shorter than header and keyword table".into()));
        }
        let mut header = Header::decode(&bytes).map_err(|r| corrupt(r.into()))?;
        let mut keywords = Vec::with_capacity(KEYWORDS_PER_MAILBOX_MAX);
        for slot in bytes[HEADER_BYTES..RECORDS_OFFSET].chunks_exact(KEYWORD_SLOT_BYTES) {
            match decode_slot(slot) {
                Ok(k) => keywords.push(k),
                Err(_) if mode == Mode::Recover => keywords.push(None),
                Err(r) => return Err(corrupt(r.into())),
            }
        }
        let body = &bytes[RECORDS_OFFSET..];
        if mode == Mode::Strict && body.len() % RECORD_BYTES != 0 {
            return Err(corrupt("partial record at the end".into()));
        }
        let mut records: Vec<Record> = Vec::with_capacity(body.len() / RECORD_BYTES);
        let mut torn = false;
        for (i, chunk) in body.chunks_exact(RECORD_BYTES).enumerate() {
            let rec = Record::decode(chunk)
                .filter(|r| records.last().is_none_or(|last| last.uid < r.uid));
            match rec {
                Some(r) => records.push(r),
                None if mode == Mode::Recover => {
                    torn = true;
                    break;
                }
                None => return Err(corrupt(format!("bad record {i}"))),
            }
        }
        let max_modseq = records.iter().map(|r| r.modseq).max().unwrap_or(0);
        if max_modseq > header.highest_modseq {
            if mode == Mode::Strict {
                return Err(corrupt(format!(
                    "record modseq {max_modseq} above HIGHESTMODSEQ {}",
                    header.highest_modseq
                )));
            }
            header.highest_modseq = max_modseq;
        }
        let len = RECORDS_OFFSET + records.len() * RECORD_BYTES;
        let index = Index {
            path: path.to_owned(),
            file,
            header,
            keywords,
            records: Rc::new(records),
        };
        if mode == Mode::Recover {
            if torn || len != bytes.len() {
                index
                    .file
                    .set_len(len as u64)
                    .map_err(|e| StoreError::io(path, e))?;
            }
            index.write_header()?;
        }
        Ok(index)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> Header {
        self.header
    }

    /// Every record, expunged ones included, in UID order.
    pub fn records(&self) -> &Rc<Vec<Record>> {
        &self.records
    }

    /// UIDNEXT: last UID + 1, or 1.
    pub fn uidnext(&self) -> u32 {
        self.records.last().map_or(1, |r| r.uid.saturating_add(1))
    }

    /// Keyword names by slot (`None` = free slot).
    pub fn keywords(&self) -> &[Option<String>] {
        &self.keywords
    }

    /// Position of a UID's record.
    pub fn find(&self, uid: u32) -> Option<usize> {
        self.records.binary_search_by_key(&uid, |r| r.uid).ok()
    }

    /// The slot of a keyword, allocating the first free slot when it is new (written at
    /// once). `None` when all slots are taken.
    pub fn keyword_slot(&mut self, name: &str) -> Result<Option<usize>> {
        if let Some(i) = self
            .keywords
            .iter()
            .position(|k| k.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(name)))
        {
            return Ok(Some(i));
        }
        let Some(free) = self.keywords.iter().position(Option::is_none) else {
            return Ok(None);
        };
        let offset = HEADER_BYTES + free * KEYWORD_SLOT_BYTES;
        self.file
            .write_all_at(&encode_slot(name), offset as u64)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.keywords[free] = Some(name.to_owned());
        Ok(Some(free))
    }

    /// Appends a record; its UID must be above every other and its modseq is raised into
    /// HIGHESTMODSEQ.
    pub fn append(&mut self, rec: Record) -> Result<()> {
        assert!(
            rec.uid >= self.uidnext() && rec.uid != 0,
            "index append of UID {} below UIDNEXT {}",
            rec.uid,
            self.uidnext()
        );
        let offset = RECORDS_OFFSET + self.records.len() * RECORD_BYTES;
        self.file
            .write_all_at(&rec.encode(), offset as u64)
            .map_err(|e| StoreError::io(&self.path, e))?;
        Rc::make_mut(&mut self.records).push(rec);
        self.raise_modseq(rec.modseq)
    }

    /// Rewrites the record at `pos` in place (same UID).
    pub fn update(&mut self, pos: usize, rec: Record) -> Result<()> {
        assert_eq!(
            self.records[pos].uid, rec.uid,
            "index update changes the UID"
        );
        let offset = RECORDS_OFFSET + pos * RECORD_BYTES;
        self.file
            .write_all_at(&rec.encode(), offset as u64)
            .map_err(|e| StoreError::io(&self.path, e))?;
        Rc::make_mut(&mut self.records)[pos] = rec;
        self.raise_modseq(rec.modseq)
    }

    /// Raises HIGHESTMODSEQ (never lowers it) and writes the header when it changed.
    pub fn raise_modseq(&mut self, modseq: u64) -> Result<()> {
        if modseq > self.header.highest_modseq {
            self.header.highest_modseq = modseq;
            self.write_header()?;
        }
        Ok(())
    }

    fn write_header(&self) -> Result<()> {
        self.file
            .write_all_at(&self.header.encode(), 0)
            .map_err(|e| StoreError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uid: u32, modseq: u64) -> Record {
        Record {
            uid,
            flags: SystemFlags(SystemFlags::SEEN | SystemFlags::DRAFT),
            expunged: false,
            tz_minutes: -300,
            keywords: 0b101,
            modseq,
            internaldate: 1_700_000_000,
            size: 1234,
            cache_offset: 4096,
            cache_len: 200,
            cache_crc: 0xdead_beef,
        }
    }

    #[test]
    fn record_known_answer() {
        let b = rec(7, 9).encode();
        let hex: String = b[..60].iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "07000000",
                "11",
                "00",
                "d4fe",
                "0500000000000000",
                "0900000000000000",
                "00f1536500000000",
                "d204000000000000",
                "0010000000000000",
                "c8000000",
                "efbeadde",
                "00000000"
            )
        );
        assert_eq!(&b[60..], &crc32fast::hash(&b[..60]).to_le_bytes());
        assert_eq!(Record::decode(&b), Some(rec(7, 9)));
    }

    #[test]
    fn header_known_answer() {
        let h = Header {
            mailbox_id: 3,
            uidvalidity: 0x0102_0304,
            highest_modseq: 42,
        };
        let b = h.encode();
        assert_eq!(&b[..8], b"MSTOREIX");
        assert_eq!(
            &b[8..48],
            &[
                1, 0, 0, 0, 0, 2, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 3, 0, 0, 0, 4, 3, 2,
                1, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        assert!(b[48..508].iter().all(|&x| x == 0));
        assert_eq!(Header::decode(&b), Ok(h));
        let slot = encode_slot("$Forwarded");
        assert_eq!(slot[0], 10);
        assert_eq!(decode_slot(&slot), Ok(Some("$Forwarded".into())));
        assert_eq!(decode_slot(&[0u8; 64]), Ok(None));
    }

    #[test]
    fn write_read_and_damage() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("index");
        let mut ix = Index::create(&path, 1, 99)?;
        assert_eq!(ix.uidnext(), 1);
        assert_eq!(ix.keyword_slot("$Junk")?, Some(0));
        assert_eq!(ix.keyword_slot("$junk")?, Some(0));
        for uid in 1..=5 {
            ix.append(rec(uid, u64::from(uid) + 1))?;
        }
        let mut r = rec(3, 10);
        r.expunged = true;
        ix.update(2, r)?;
        drop(ix);
        let ix = Index::open(&path)?;
        assert_eq!(ix.uidnext(), 6);
        assert_eq!(ix.header().highest_modseq, 10);
        assert_eq!(ix.records()[2], r);
        assert_eq!(ix.keywords()[0].as_deref(), Some("$Junk"));
        let good = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        // Every single-byte flip is caught by the strict reader, never a panic.
        for i in (0..good.len()).step_by(7) {
            let mut b = good.clone();
            b[i] ^= 0x40;
            std::fs::write(&path, &b).map_err(|e| StoreError::io(&path, e))?;
            assert!(Index::open(&path).is_err(), "flip at {i} not detected");
        }
        // A torn tail: strict refuses, recover cuts it and keeps the whole records.
        let mut b = good.clone();
        b.truncate(good.len() - 10);
        std::fs::write(&path, &b).map_err(|e| StoreError::io(&path, e))?;
        assert!(Index::open(&path).is_err());
        let ix = Index::open_recover(&path)?;
        assert_eq!(ix.uidnext(), 5);
        drop(ix);
        assert_eq!(Index::open(&path)?.records().len(), 4);
        Ok(())
    }
}
