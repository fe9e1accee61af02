//! `mail/<id>/index`: one fixed-size record per message, little-endian throughout.
//!
//! ```text
//! offset  size  header (512 bytes, one disk sector: written whole, in place)
//!      0     8  magic "MSTOREIX"
//!      8     4  version (2)
//!     12     4  header_bytes (512)
//!     16     4  keyword_slots (64)
//!     20     4  keyword_slot_bytes (64)
//!     24     4  record_bytes (64)
//!     28     4  mailbox id
//!     32     4  UIDVALIDITY
//!     36     4  UIDNEXT
//!     40     8  HIGHESTMODSEQ
//!     48     4  record count: the file is exactly header, keyword table and this many records
//!     52     4  cache generation g: the records' cache offsets are into `cache` (g = 0) or
//!               `cache.<g>`; compaction writes generation g + 1 whole before this index
//!               names it, so a crash leaves a matching pair either way
//!     56   452  reserved, 0
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
//!      5     1  state: 0 live, 1 expunged (a tombstone until compaction)
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
//! UIDNEXT is kept in the header and is above every record's UID (expunged records may be
//! compacted away, so it can be above the last one). Invariants, asserted on write and
//! checked on read: UIDs strictly increase and stay below UIDNEXT; no record's modseq is
//! above HIGHESTMODSEQ; every CRC matches; the file is the header, the keyword table and
//! exactly `record count` whole records (so a file cut at a record boundary is caught too).
//! A strict reader that finds otherwise returns `Corrupt`; `Index::salvage` then keeps every
//! record and slot that passes its checks (see there).
//!
//! Crash behaviour: the header, each slot and each record are written with one `pwrite` at
//! an offset that is a multiple of their size, inside one 512-byte sector, so after a crash
//! each is either its old or its new version (the sector-atomicity every database assumes),
//! except a record appended after the last checkpoint, which may be missing or garbage.
//! `Index::open_recover` (used by journal replay) drops such a torn tail and lifts
//! HIGHESTMODSEQ to the records; replay then re-applies every change since the checkpoint.
//!
//! Version policy: any change of layout bumps the version; a reader rejects other versions.
//! Version 1 (bytes 36..40 and 48..52 reserved, UIDNEXT = last UID + 1) is still read; the
//! header is written as version 2 on the next change.

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
/// The version this build writes.
pub const INDEX_VERSION: u32 = 2;
/// The older version this build still reads (no UIDNEXT, no record count).
pub const INDEX_VERSION_V1: u32 = 1;
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
    /// Above every UID of the records; 0 in a version 1 header (unknown).
    pub uidnext: u32,
    pub highest_modseq: u64,
    /// Records in the file; `None` in a version 1 header (unknown).
    pub records: Option<u32>,
    /// Which cache file the records point into (see the layout).
    pub cache_gen: u32,
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
        b[36..40].copy_from_slice(&self.uidnext.to_le_bytes());
        b[40..48].copy_from_slice(&self.highest_modseq.to_le_bytes());
        b[48..52].copy_from_slice(&self.records.unwrap_or(0).to_le_bytes());
        b[52..56].copy_from_slice(&self.cache_gen.to_le_bytes());
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
        let version = le_u32(&b[8..12]);
        if version != INDEX_VERSION && version != INDEX_VERSION_V1 {
            return Err("unsupported index version");
        }
        let v2 = version == INDEX_VERSION;
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
            uidnext: if v2 { le_u32(&b[36..40]) } else { 0 },
            highest_modseq: le_u64(&b[40..48]),
            records: v2.then(|| le_u32(&b[48..52])),
            cache_gen: if v2 { le_u32(&b[52..56]) } else { 0 },
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
    /// Always version 2 in memory: `uidnext` known, `records` the count loaded.
    header: Header,
    keywords: Vec<Option<String>>,
    /// Shared with views handed out; copied on write only while a view holds it.
    records: Rc<Vec<Record>>,
}

/// What `Index::salvage` may take from outside the file when the header is damaged.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fallback {
    pub mailbox_id: u32,
    pub uidvalidity: u32,
    /// The mailbox list's bounds (0 = unknown), see `mailbox::list`.
    pub uid_bound: u32,
    pub modseq_bound: u64,
}

/// What `Index::salvage` kept and dropped.
#[derive(Debug)]
pub struct Salvaged {
    pub index: Index,
    /// "what: old -> new" lines.
    pub repairs: Vec<String>,
    /// Damaged records were dropped before the last intact one: UIDs between the intact
    /// records may lack a record (their message files are to be adopted).
    pub holes: bool,
    /// Damaged or missing records after the last intact one (a torn tail after a crash).
    pub tail_cut: bool,
}

/// The parts of an index file, each checked on its own.
struct Parts {
    header: std::result::Result<Header, &'static str>,
    keywords: Vec<std::result::Result<Option<String>, &'static str>>,
    /// Per 64-byte slot after the keyword table: the record if it passes its checks.
    records: Vec<Option<Record>>,
    /// Bytes of a partial record at the end.
    partial: usize,
}

fn parts(bytes: &[u8]) -> Parts {
    let header = if bytes.len() < HEADER_BYTES {
        Err("short header")
    } else {
        Header::decode(bytes)
    };
    let table = bytes
        .get(HEADER_BYTES..RECORDS_OFFSET.min(bytes.len()))
        .unwrap_or(&[]);
    let mut keywords: Vec<_> = table
        .chunks_exact(KEYWORD_SLOT_BYTES)
        .map(decode_slot)
        .collect();
    keywords.resize(KEYWORDS_PER_MAILBOX_MAX, Err("keyword table cut short"));
    let body = bytes.get(RECORDS_OFFSET..).unwrap_or(&[]);
    Parts {
        header,
        keywords,
        records: body
            .chunks_exact(RECORD_BYTES)
            .map(Record::decode)
            .collect(),
        partial: body.len() % RECORD_BYTES,
    }
}

impl Index {
    /// Creates a new, empty index (replacing nothing: the file must not exist).
    pub fn create(path: &Path, mailbox_id: u32, uidvalidity: u32) -> Result<Index> {
        Self::create_with(path, mailbox_id, uidvalidity, 1, MODSEQ_INITIAL)
    }

    /// Creates a new, empty index with UIDNEXT and HIGHESTMODSEQ already raised (a mailbox
    /// rebuilt after its index was lost keeps them).
    pub fn create_with(
        path: &Path,
        mailbox_id: u32,
        uidvalidity: u32,
        uidnext: u32,
        highest_modseq: u64,
    ) -> Result<Index> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let header = Header {
            mailbox_id,
            uidvalidity,
            uidnext: uidnext.max(1),
            highest_modseq: highest_modseq.max(MODSEQ_INITIAL),
            records: Some(0),
            cache_gen: 0,
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
        let corrupt = |reason: String| StoreError::corrupt(path, reason);
        let file = open_rw(path)?;
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        if bytes.len() < RECORDS_OFFSET {
            return Err(corrupt("shorter than header and keyword table".into()));
        }
        let p = parts(&bytes);
        let mut header = p.header.map_err(|r| corrupt(r.into()))?;
        let mut keywords = Vec::with_capacity(KEYWORDS_PER_MAILBOX_MAX);
        for k in p.keywords {
            keywords.push(k.map_err(|r| corrupt(r.into()))?);
        }
        if p.partial != 0 {
            return Err(corrupt("partial record at the end".into()));
        }
        let mut records: Vec<Record> = Vec::with_capacity(p.records.len());
        for (i, rec) in p.records.into_iter().enumerate() {
            match rec.filter(|r| records.last().is_none_or(|last| last.uid < r.uid)) {
                Some(r) => records.push(r),
                None => return Err(corrupt(format!("bad record {i}"))),
            }
        }
        if let Some(n) = header.records
            && n as usize != records.len()
        {
            return Err(corrupt(format!(
                "header counts {n} records, the file holds {}",
                records.len()
            )));
        }
        let last_next = records.last().map_or(1, |r| r.uid.saturating_add(1));
        if header.uidnext == 0 {
            header.uidnext = last_next; // version 1
        } else if header.uidnext < last_next {
            return Err(corrupt(format!(
                "UIDNEXT {} not above the last UID",
                header.uidnext
            )));
        }
        let max_modseq = records.iter().map(|r| r.modseq).max().unwrap_or(0);
        if max_modseq > header.highest_modseq {
            return Err(corrupt(format!(
                "record modseq {max_modseq} above HIGHESTMODSEQ {}",
                header.highest_modseq
            )));
        }
        header.records = Some(records.len() as u32);
        Ok(Index {
            path: path.to_owned(),
            file,
            header,
            keywords,
            records: Rc::new(records),
        })
    }

    /// Opens an index after a crash (journal replay): `salvage` without a fallback, so a
    /// damaged header is still `Corrupt`.
    pub fn open_recover(path: &Path) -> Result<Index> {
        Self::salvage(path, None).map(|s| s.index)
    }

    /// Opens a damaged index keeping everything that passes its checks, and writes the
    /// result back (a new file renamed over the old one when records are dropped):
    ///
    /// - every record whose CRC and fields are sound and whose UID is above the one before
    ///   is kept, wherever it is in the file (a damaged record in the middle costs only
    ///   itself); a torn tail is cut;
    /// - a damaged keyword slot is freed and its bit cleared in every record (a bit must
    ///   never come to name another keyword);
    /// - UIDNEXT is the header's (or, with a damaged header, the list's `uid_bound`) or
    ///   above the last record; HIGHESTMODSEQ likewise never goes back;
    /// - a damaged header is rebuilt from `fallback`, or is `Corrupt` without one.
    ///
    /// Message files of dropped records are the caller's to adopt (`Salvaged::holes`).
    pub fn salvage(path: &Path, fallback: Option<Fallback>) -> Result<Salvaged> {
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        let p = parts(&bytes);
        let mut repairs = Vec::new();
        let name = path.display();
        let header_ok = p.header.is_ok();
        let mut header = match (p.header, fallback) {
            (Ok(h), _) => h,
            (Err(why), Some(f)) => {
                repairs.push(format!("{name} header: damaged ({why}) -> rebuilt"));
                Header {
                    mailbox_id: f.mailbox_id,
                    uidvalidity: f.uidvalidity,
                    uidnext: f.uid_bound,
                    highest_modseq: f.modseq_bound,
                    records: None,
                    cache_gen: 0,
                }
            }
            (Err(why), None) => return Err(StoreError::corrupt(path, why)),
        };
        let mut keywords = Vec::with_capacity(KEYWORDS_PER_MAILBOX_MAX);
        let mut lost_bits = 0u64;
        for (i, k) in p.keywords.into_iter().enumerate() {
            match k {
                Ok(k) => keywords.push(k),
                Err(why) => {
                    if bytes.len() >= RECORDS_OFFSET {
                        repairs.push(format!("{name} keyword slot {i}: damaged ({why}) -> freed"));
                    }
                    lost_bits |= 1u64 << i;
                    keywords.push(None);
                }
            }
        }
        let slots = p.records.len();
        let mut records: Vec<Record> = Vec::with_capacity(slots);
        let mut dropped: Vec<usize> = Vec::new();
        let mut last_kept: Option<usize> = None;
        for (i, rec) in p.records.into_iter().enumerate() {
            match rec.filter(|r| records.last().is_none_or(|last| last.uid < r.uid)) {
                Some(mut r) => {
                    r.keywords &= !lost_bits;
                    records.push(r);
                    last_kept = Some(i);
                }
                None => dropped.push(i),
            }
        }
        // Dropped slots before the last kept record are holes; after it, a torn tail.
        let holes: Vec<usize> = dropped
            .iter()
            .copied()
            .filter(|&d| last_kept.is_some_and(|k| d < k))
            .collect();
        for d in &holes {
            repairs.push(format!("{name} record {d}: damaged -> dropped"));
        }
        let counted = header.records.map(|n| n as usize);
        let tail_cut =
            dropped.len() > holes.len() || p.partial != 0 || counted.is_some_and(|n| n > slots);
        if tail_cut && header_ok {
            repairs.push(format!(
                "{name} records: {} -> {} (tail cut)",
                counted.unwrap_or(slots).max(slots),
                records.len()
            ));
        }
        let holes = !holes.is_empty();
        let last_next = records.last().map_or(1, |r| r.uid.saturating_add(1));
        if !header_ok {
            header.uidnext = header.uidnext.max(last_next);
        } else if header.uidnext < last_next {
            header.uidnext = last_next;
        }
        let max_modseq = records.iter().map(|r| r.modseq).max().unwrap_or(0);
        header.highest_modseq = header.highest_modseq.max(max_modseq).max(MODSEQ_INITIAL);
        header.records = Some(records.len() as u32);
        let rewrite = !header_ok || holes || lost_bits != 0 || bytes.len() < RECORDS_OFFSET;
        let index = if rewrite {
            Index::write_new(path, header, keywords, records)?
        } else {
            let index = Index {
                path: path.to_owned(),
                file: open_rw(path)?,
                header,
                keywords,
                records: Rc::new(records),
            };
            let len = (RECORDS_OFFSET + index.records.len() * RECORD_BYTES) as u64;
            if len != bytes.len() as u64 {
                index
                    .file
                    .set_len(len)
                    .map_err(|e| StoreError::io(path, e))?;
            }
            index.write_header()?;
            index
        };
        Ok(Salvaged {
            index,
            repairs,
            holes: holes || !header_ok,
            tail_cut,
        })
    }

    /// Writes a complete index to a new file, fdatasyncs it and renames it over `path`;
    /// returns it open. A crash leaves the old file or the new one. The directory entry is
    /// made durable by the next checkpoint (or the caller).
    fn write_new(
        path: &Path,
        mut header: Header,
        keywords: Vec<Option<String>>,
        records: Vec<Record>,
    ) -> Result<Index> {
        let tmp = path.with_file_name(format!(".{INDEX_FILE}.new"));
        header.records = Some(records.len() as u32);
        let mut bytes = Vec::with_capacity(RECORDS_OFFSET + records.len() * RECORD_BYTES);
        bytes.extend_from_slice(&header.encode());
        for k in &keywords {
            match k {
                Some(name) => bytes.extend_from_slice(&encode_slot(name)),
                None => bytes.extend_from_slice(&[0u8; KEYWORD_SLOT_BYTES]),
            }
        }
        for r in &records {
            bytes.extend_from_slice(&r.encode());
        }
        let written = crate::durable::write_file(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Index {
            path: path.to_owned(),
            file: open_rw(path)?,
            header,
            keywords,
            records: Rc::new(records),
        })
    }

    /// Replaces every record (compaction, insertion below the last UID): a new file, synced
    /// and renamed over the old one. UIDNEXT and HIGHESTMODSEQ stay.
    pub fn rewrite(&mut self, records: Vec<Record>) -> Result<()> {
        for w in records.windows(2) {
            assert!(w[0].uid < w[1].uid, "index rewrite with UIDs out of order");
        }
        let mut header = self.header;
        if let Some(last) = records.last() {
            header.uidnext = header.uidnext.max(last.uid.saturating_add(1));
        }
        let max_modseq = records.iter().map(|r| r.modseq).max().unwrap_or(0);
        header.highest_modseq = header.highest_modseq.max(max_modseq);
        *self = Index::write_new(&self.path, header, self.keywords.clone(), records)?;
        Ok(())
    }

    /// Compaction's switch: every record (their cache references into generation
    /// `cache_gen`, already written and synced) in a new file renamed over this one.
    pub fn rewrite_for_cache(&mut self, records: Vec<Record>, cache_gen: u32) -> Result<()> {
        let old = self.header.cache_gen;
        self.header.cache_gen = cache_gen;
        let done = self.rewrite(records);
        if done.is_err() {
            self.header.cache_gen = old;
        }
        done
    }

    /// The cache file the records point into.
    pub fn cache_path(&self) -> PathBuf {
        self.path
            .with_file_name(cache_file_name(self.header.cache_gen))
    }

    /// Adds a record whose UID is below the last one (journal replay into a hole left by a
    /// dropped record): rewrites the file. Above the last UID it is a plain `append`.
    pub fn insert(&mut self, rec: Record) -> Result<()> {
        match self.records.binary_search_by_key(&rec.uid, |r| r.uid) {
            Ok(_) => Ok(()),
            Err(pos) if pos == self.records.len() => self.append(rec),
            Err(pos) => {
                let mut records = self.records.as_ref().clone();
                records.insert(pos, rec);
                self.rewrite(records)
            }
        }
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

    /// UIDNEXT: above every UID handed out (kept in the header).
    pub fn uidnext(&self) -> u32 {
        self.header.uidnext
    }

    /// Raises UIDNEXT (never lowers it) and writes the header when it changed.
    pub fn raise_uidnext(&mut self, uidnext: u32) -> Result<()> {
        if uidnext > self.header.uidnext {
            self.header.uidnext = uidnext;
            self.write_header()?;
        }
        Ok(())
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
    /// HIGHESTMODSEQ. The header (UIDNEXT, record count) is written after the record.
    pub fn append(&mut self, rec: Record) -> Result<()> {
        assert!(
            rec.uid != 0 && self.records.last().is_none_or(|l| l.uid < rec.uid),
            "index append of UID {} not above the last record",
            rec.uid
        );
        let offset = RECORDS_OFFSET + self.records.len() * RECORD_BYTES;
        if let Err(e) = self.file.write_all_at(&rec.encode(), offset as u64) {
            // A full disk may leave part of the record: cut it so the file stays whole.
            let _ = self.file.set_len(offset as u64);
            return Err(StoreError::io(&self.path, e));
        }
        Rc::make_mut(&mut self.records).push(rec);
        self.header.records = Some(self.records.len() as u32);
        self.header.uidnext = self.header.uidnext.max(rec.uid.saturating_add(1));
        self.header.highest_modseq = self.header.highest_modseq.max(rec.modseq);
        self.write_header()
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

/// `cache` for generation 0, `cache.<g>` after compactions.
pub fn cache_file_name(cache_gen: u32) -> String {
    if cache_gen == 0 {
        crate::mailbox::cache::CACHE_FILE.to_owned()
    } else {
        format!("{}.{cache_gen}", crate::mailbox::cache::CACHE_FILE)
    }
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
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
            uidnext: 9,
            highest_modseq: 42,
            records: Some(5),
            cache_gen: 0,
        };
        let b = h.encode();
        assert_eq!(&b[..8], b"MSTOREIX");
        assert_eq!(
            &b[8..52],
            &[
                2, 0, 0, 0, 0, 2, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 3, 0, 0, 0, 4, 3, 2,
                1, 9, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0
            ]
        );
        assert!(b[52..508].iter().all(|&x| x == 0));
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
        assert_eq!(ix.uidnext(), 6, "UIDNEXT survives the cut");
        drop(ix);
        assert_eq!(Index::open(&path)?.records().len(), 4);
        // Cut at a record boundary: the header's record count catches it.
        let mut b = good.clone();
        b.truncate(good.len() - RECORD_BYTES);
        std::fs::write(&path, &b).map_err(|e| StoreError::io(&path, e))?;
        assert!(Index::open(&path).is_err());
        Ok(())
    }

    fn fallback() -> Fallback {
        Fallback {
            mailbox_id: 1,
            uidvalidity: 99,
            uid_bound: 1030,
            modseq_bound: 5000,
        }
    }

    /// A record damaged in the middle costs only itself: every later record is kept.
    #[test]
    fn salvage_keeps_records_after_a_damaged_one() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("index");
        let mut ix = Index::create(&path, 1, 99)?;
        ix.keyword_slot("$A")?;
        ix.keyword_slot("$B")?;
        for uid in 1..=10 {
            let mut r = rec(uid, u64::from(uid) + 1);
            r.keywords = 0b11;
            ix.append(r)?;
        }
        drop(ix);
        let good = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        for (at, flipped) in [(4, 3), (0, 0), (9, 7)] {
            let mut b = good.clone();
            b[RECORDS_OFFSET + at * RECORD_BYTES + 20] ^= 1 << flipped;
            std::fs::write(&path, &b).map_err(|e| StoreError::io(&path, e))?;
            assert!(Index::open(&path).is_err());
            let s = Index::salvage(&path, Some(fallback()))?;
            let uids: Vec<u32> = s.index.records().iter().map(|r| r.uid).collect();
            let want: Vec<u32> = (1..=10).filter(|&u| u != at as u32 + 1).collect();
            assert_eq!(uids, want, "flip in record {at}");
            assert_eq!(s.index.uidnext(), 11);
            assert_eq!(s.holes, at != 9);
            assert_eq!(s.tail_cut, at == 9);
            assert!(s.index.records().iter().all(|r| r.keywords == 0b11));
            drop(s);
            // What salvage wrote back is sound.
            assert_eq!(Index::open(&path)?.records().len(), 9);
        }
        // A damaged keyword slot is freed and its bit cleared: it must never name another.
        let mut b = good.clone();
        b[HEADER_BYTES + KEYWORD_SLOT_BYTES + 3] ^= 0x10;
        std::fs::write(&path, &b).map_err(|e| StoreError::io(&path, e))?;
        let s = Index::salvage(&path, Some(fallback()))?;
        assert_eq!(s.index.keywords()[1], None);
        assert!(s.index.records().iter().all(|r| r.keywords == 0b01));
        assert!(
            s.repairs.iter().any(|r| r.contains("keyword slot 1")),
            "{:?}",
            s.repairs
        );
        Ok(())
    }

    /// Wrong magic, damaged headers, short files, flips anywhere: salvage never panics and
    /// never invents a record; UIDNEXT and HIGHESTMODSEQ never go back.
    #[test]
    fn salvage_survives_any_damage() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("index");
        let mut ix = Index::create(&path, 1, 99)?;
        for uid in 1..=6 {
            ix.append(rec(uid, u64::from(uid) + 1))?;
        }
        drop(ix);
        let good = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let originals: Vec<Record> = (1..=6).map(|u| rec(u, u64::from(u) + 1)).collect();
        let check = |b: &[u8], what: &str| -> Result<()> {
            std::fs::write(&path, b).map_err(|e| StoreError::io(&path, e))?;
            let s = Index::salvage(&path, Some(fallback()))?;
            for r in s.index.records().iter() {
                // A freed keyword slot may clear a bit; nothing else may differ.
                let same = |o: &&Record| {
                    Record {
                        keywords: r.keywords,
                        ..**o
                    } == *r
                };
                let o = originals.iter().find(same);
                assert!(
                    o.is_some_and(|o| r.keywords & !o.keywords == 0),
                    "{what}: invented {r:?}"
                );
            }
            assert!(s.index.uidnext() >= 7, "{what}: UIDNEXT went back");
            assert!(
                s.index.header().highest_modseq >= 7,
                "{what}: modseq went back"
            );
            assert_eq!(s.index.header().uidvalidity, 99, "{what}");
            drop(s);
            Index::open(&path).map(|_| ())
        };
        let mut wrong_magic = good.clone();
        wrong_magic[..8].copy_from_slice(b"NOTINDEX");
        check(&wrong_magic, "wrong magic")?;
        for len in [
            0,
            5,
            HEADER_BYTES - 1,
            HEADER_BYTES + 7,
            RECORDS_OFFSET,
            good.len() - 1,
        ] {
            check(&good[..len], &format!("cut to {len}"))?;
        }
        for i in (0..good.len()).step_by(13) {
            let mut b = good.clone();
            b[i] ^= 0x04;
            check(&b, &format!("flip at {i}"))?;
        }
        Ok(())
    }
}
