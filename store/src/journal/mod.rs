//! The per-shard journal and its group commit: how the store makes mutations durable with
//! one fdatasync for many of them, and how it recovers after a crash.
//!
//! # Files
//!
//! `<roots[0]>/journal/shard-<n>/<gen>`: segments, `<gen>` 16 lower-case hex digits,
//! replayed in `gen` order. A segment is a 32-byte header and then records:
//!
//! ```text
//! segment header
//!   0   8  magic "MSJOURNL"
//!   8   4  version (2; 1 is still read)
//!  12   4  shard number
//!  16   8  sequence number of the first record in this segment
//!  24   4  salt: random, not 0 (version 1: 0)
//!  28   4  CRC-32 (IEEE) of bytes 0..28
//! record
//!   0   4  payload length n
//!   4   4  CRC-32 of the salt (4 bytes, little-endian) and bytes 8..16+n (sequence
//!          number and payload); version 1: of bytes 8..16+n alone
//!   8   8  sequence number: one more than the record before, across segments
//!  16   n  payload (see `record`)
//! ```
//!
//! # Spare segments
//!
//! A group commit's fdatasync of an appended segment writes the file's new size too (a
//! second write before the flush); overwriting blocks the file already has does not. On
//! this project's test machine (ext4, virtio disk) a 128 KiB write and fdatasync took 0.40
//! ms instead of 0.60 ms, and in LMTP runs on a pre-written segment a group commit took
//! 0.9–1.1 ms instead of 1.4–2.1 ms. So a retired segment is kept after its checkpoint
//! instead of being deleted, as the shard's *spare* (`spare` in the journal directory;
//! replay ignores it), and the next checkpoint's new segment is the spare, renamed and
//! overwritten from the start. The current segment and the spare take turns from a store's
//! second checkpoint on (a new store appends to its first two segments). Writing a spare
//! of zeros ahead, so that a new store would overwrite from the start too, was tried and
//! dropped: its 272 MiB, even paced, slowed the group commit more than overwriting sped it
//! up. Rules that keep replay right:
//! - A file is named `spare` only once its header is zero on disk (written, then
//!   fdatasync'd). Renamed to a segment name, it is either still zero-headed (replay skips
//!   it; nothing in it was acknowledged, since the new header is synced with its first
//!   records) or has the new header.
//! - The old records after the new header are stale, not gone. Replay stops at the first
//!   frame whose sequence number is not the next one (stale numbers are all lower), and
//!   frames are checksummed with the segment's random salt, so neither an old frame nor a
//!   frame-shaped piece of an old message body (which a sender chose) passes as a record
//!   of the new segment.
//! - A retired segment is made a spare only after the checkpoint's syncfs completed, like
//!   the deletion it replaces.
//!
//! Sequence numbers never go back, not even when every segment is gone: a new journal
//! starts at the current time in microseconds. Files in a user tree that remember a
//! sequence number (`mailboxes`, `usage`) use it to skip records they already reflect.
//!
//! # Group commit
//!
//! A mutation is *staged*: its record is written (`pwrite`, no sync) and gets a sequence
//! number; nothing is visible yet. The engine asks [`Journal::sync_target`] for what to
//! flush — file handles and the highest sequence number written — runs
//! [`SyncTarget::run`] (fdatasync, plus an fsync of the directory when a segment was
//! created) on a helper thread, and reports back with `synced(up_to)`. Records staged while
//! that flush runs wait for the next one: N concurrent deliveries share one fdatasync.
//! Only then are the records *applied* to the user trees, in sequence order, with plain
//! page-cache writes, and acknowledged.
//!
//! # Checkpoint
//!
//! When the journal is large, the engine asks for a checkpoint: the current segment is
//! retired and a new one started; once every record of the retired segments is synced
//! and applied, the engine runs `syncfs` on every root's file system ([`CheckpointTarget`])
//! on a thread of its own, and then the retired segments are deleted. The group commit
//! goes on meanwhile: new records go to the new segment and are synced, applied and
//! acknowledged while the syncfs runs, which may take seconds (it writes back every
//! message file written since the last checkpoint, and whatever else is dirty on those
//! file systems). Starting the message files' writeback early instead
//! (`POSIX_FADV_DONTNEED` after each write) was measured: 10% fewer LMTP deliveries/s,
//! for a shorter syncfs that no longer holds anything up.
//!
//! # Crash argument
//!
//! 1. A mutation is acknowledged only after its record is covered by a completed fdatasync
//!    of its segment, and (for a new segment) by an fsync of the journal directory. So at
//!    any crash, every acknowledged mutation is in a durable segment, unless that segment
//!    was deleted — which happens only after a `syncfs` of every root that *began after*
//!    every record of the segment was applied has completed: its effects are then in
//!    durable files of the user tree. Records applied while that syncfs runs are in the
//!    current segment, which the checkpoint does not delete.
//! 2. A crash during a write leaves a torn last record: its length or CRC is wrong, replay
//!    stops there and cuts the segment. It was never acknowledged (the fdatasync covering it
//!    had not returned), and neither was anything after it.
//! 3. Replay re-applies every record of every remaining segment, in order. Applying is
//!    idempotent against any state the tree can be in after a crash: a delivery whose UID is
//!    below UIDNEXT only repairs missing files, a flag change applies only to records with a
//!    lower modseq, an expunge is a set, a mailbox-list record carries the whole new list and
//!    is skipped when the file already reflects a later sequence number, and usage counts
//!    remember the last sequence number they include. Index writes are sector-sized and
//!    aligned, so each is old or new; `Index::salvage` keeps every intact record, cuts a
//!    torn tail (re-appended by replay) and leaves holes where records were damaged (replay
//!    re-inserts the ones it has, message files are adopted for the rest). UIDNEXT and
//!    HIGHESTMODSEQ have durable bounds in the mailbox list, raised by a list record staged
//!    before the first record that passes them (see `mailbox::list`).
//! 4. Replay ends with a checkpoint done in place (syncfs of every root, a new durable
//!    segment, then the old segments deleted), so a crash during recovery just recovers
//!    again.
//! 5. A COPY hard-links the source file and its record carries no bytes, so the source must
//!    outlive the copy's record: expunged message files are unlinked only after the next
//!    checkpoint completes (`Mailstore` keeps that list), when the link is durable.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::durable::create_dir_durable;
use crate::error::{Result, StoreError};
use crate::limits::{JOURNAL_CHECKPOINT_BYTES, JOURNAL_RECORD_BYTES_MAX};

/// A retired segment shorter than this is deleted, not kept as the spare: most of the
/// next segment would be appended (one retired early, at a stop or for space). A longer
/// one found at start is kept (a stop retires an overwritten segment early, but its file
/// is long). Tests lower it.
#[cfg(not(test))]
const SPARE_MIN_BYTES: u64 = JOURNAL_CHECKPOINT_BYTES;
#[cfg(test)]
const SPARE_MIN_BYTES: u64 = 1 << 20;

/// Directory of journals inside roots[0].
pub const JOURNAL_DIR: &str = "journal";
/// First eight bytes of a segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"MSJOURNL";
/// The only segment version this build reads and writes.
pub const SEGMENT_VERSION: u32 = 2;
/// The spare segment's name in a shard's journal directory (see "Spare segments").
pub const SPARE_NAME: &str = "spare";

/// Segment header size.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Record frame header size (length, CRC, sequence number).
pub const FRAME_HEADER_BYTES: usize = 16;

/// `<root0>/journal/shard-<n>`.
pub fn shard_dir(root0: &Path, shard: u32) -> PathBuf {
    root0.join(JOURNAL_DIR).join(format!("shard-{shard}"))
}

fn segment_name(gen_: u64) -> String {
    format!("{gen_:016x}")
}

/// Encodes a segment header.
pub fn encode_segment_header(shard: u32, first_seq: u64, salt: u32) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut b = [0u8; SEGMENT_HEADER_BYTES];
    b[0..8].copy_from_slice(SEGMENT_MAGIC);
    b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&shard.to_le_bytes());
    b[16..24].copy_from_slice(&first_seq.to_le_bytes());
    b[24..28].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Encodes one record frame of a segment with salt `salt` (version 2).
pub fn encode_frame(salt: u32, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(payload);
    let len = (b.len() - FRAME_HEADER_BYTES) as u32;
    b[0..4].copy_from_slice(&len.to_le_bytes());
    let crc = frame_crc(Some(salt), &b[8..16], &b[16..], &[]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A frame's CRC: of the salt (`None`: a version 1 segment, which has none), the sequence
/// number and the payload, given in two parts.
fn frame_crc(salt: Option<u32>, seq: &[u8], a: &[u8], b: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    if let Some(salt) = salt {
        crc.update(&salt.to_le_bytes());
    }
    crc.update(seq);
    crc.update(a);
    crc.update(b);
    crc.finalize()
}

/// A segment's salt: random, never 0. Falls back on the clock and the process id when
/// the system has no randomness to give (the salt only has to differ from the one of the
/// segment's previous life and be unknown to senders).
fn new_salt() -> u32 {
    let salt = getrandom::u32().unwrap_or_else(|_| {
        let t = now_micros();
        (t as u32) ^ ((t >> 32) as u32) ^ std::process::id().rotate_left(16)
    });
    salt.max(1)
}

#[derive(Debug)]
struct Segment {
    gen_: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
    last_seq: u64,
    salt: u32,
}

/// The spare segment: named `spare`, its header zero on disk.
#[derive(Debug)]
struct Spare {
    path: PathBuf,
    file: File,
}

/// Zeroes a retired segment's header on disk (write, fdatasync): the first step of making
/// it the spare. Run after the checkpoint's syncfs, off the shard thread.
pub fn blank_header(file: &File) -> io::Result<()> {
    file.write_all_at(&[0u8; SEGMENT_HEADER_BYTES], 0)?;
    file.sync_data()
}

/// What the engine flushes off-thread: `Send`, holds its own file handles.
#[derive(Debug)]
pub struct SyncTarget {
    files: Vec<File>,
    dir: Option<File>,
    up_to_seq: u64,
    writes: Vec<MessageWrite>,
}

/// A delivered message's file, written by the helper thread once the journal holds it
/// durably (so it is exactly the write apply would do, moved off the shard thread: file
/// creation is most of a delivery's cost there). No sync: the checkpoint's syncfs covers
/// it, like every other apply write.
#[derive(Debug)]
pub struct MessageWrite {
    seq: u64,
    path: PathBuf,
    bytes: std::sync::Arc<Vec<u8>>,
    done: std::sync::atomic::AtomicBool,
}

impl SyncTarget {
    /// fdatasyncs the segments, then fsyncs the journal directory when a segment is new,
    /// then writes the message files handed to it (`with_writes`). Blocking: run it on a
    /// helper thread. A message file that cannot be written is removed and left to apply,
    /// which fails that one delivery; only a failed sync is an error here.
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(d) = &self.dir {
            d.sync_all()?;
        }
        for w in &self.writes {
            if fs::write(&w.path, &w.bytes[..]).is_ok() {
                w.done.store(true, std::sync::atomic::Ordering::Release);
            } else {
                let _ = fs::remove_file(&w.path);
            }
        }
        Ok(())
    }

    /// Adds the message file of record `seq` to write after the sync.
    pub(crate) fn add_write(&mut self, seq: u64, path: PathBuf, bytes: std::sync::Arc<Vec<u8>>) {
        self.writes.push(MessageWrite {
            seq,
            path,
            bytes,
            done: std::sync::atomic::AtomicBool::new(false),
        });
    }

    /// True when `run` wrote the message file of record `seq`.
    pub(crate) fn wrote(&self, seq: u64) -> bool {
        self.writes
            .binary_search_by_key(&seq, |w| w.seq)
            .is_ok_and(|i| {
                self.writes[i]
                    .done
                    .load(std::sync::atomic::Ordering::Acquire)
            })
    }

    /// Every record up to this sequence number is durable once `run` returned `Ok`.
    pub fn up_to_seq(&self) -> u64 {
        self.up_to_seq
    }
}

/// One shard's journal: appends, group-commit bookkeeping and segment rotation.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    shard: u32,
    current: Segment,
    retiring: Vec<Segment>,
    next_seq: u64,
    synced_seq: u64,
    in_flight: Option<u64>,
    dir_dirty: bool,
    poisoned: Option<String>,
    retire_up_to: Option<u64>,
    spare: Option<Spare>,
    /// The retired segment handed out to become the spare (`recycle_candidate`).
    recycle_gen: Option<u64>,
}

/// A record read back by replay.
#[derive(Debug)]
pub struct Replayed {
    pub seq: u64,
    pub payload: Vec<u8>,
}

impl Journal {
    /// Reads every intact record of a shard's journal, in order, and hands it to `apply`.
    /// Torn tails are cut. Returns the segments found and the last sequence number.
    pub fn replay(
        dir: &Path,
        shard: u32,
        mut apply: impl FnMut(Replayed) -> Result<()>,
    ) -> Result<(Vec<PathBuf>, Option<u64>)> {
        let mut gens: Vec<(u64, PathBuf)> = Vec::new();
        match fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(|e| StoreError::io(dir, e))?;
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    if name.len() == 16
                        && let Ok(g) = u64::from_str_radix(&name, 16)
                    {
                        gens.push((g, e.path()));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(dir, e)),
        }
        gens.sort();
        let mut last_seq: Option<u64> = None;
        for (_, path) in &gens {
            last_seq = replay_segment(path, shard, last_seq, &mut apply)?;
        }
        Ok((gens.into_iter().map(|(_, p)| p).collect(), last_seq))
    }

    /// Starts a journal after replay: a new segment `gen` after every old one, made durable
    /// (file and directory) before this returns. Blocking: startup only.
    pub fn start(
        dir: &Path,
        shard: u32,
        old: &[PathBuf],
        last_seq: Option<u64>,
    ) -> Result<Journal> {
        create_dir_durable(dir)?;
        let max_gen = old
            .iter()
            .filter_map(|p| p.file_name())
            .filter_map(|n| u64::from_str_radix(&n.to_string_lossy(), 16).ok())
            .max();
        let gen_ = max_gen.map_or(1, |g| g + 1);
        let first_seq = match last_seq {
            Some(s) => s + 1,
            None => now_micros().max(1),
        };
        let current = match open_spare(dir) {
            Some(spare) => reuse_segment(spare, dir, shard, gen_, first_seq)?,
            None => new_segment(dir, shard, gen_, first_seq)?,
        };
        current
            .file
            .sync_data()
            .map_err(|e| StoreError::io(&current.path, e))?;
        crate::durable::sync_dir(dir)?;
        Ok(Journal {
            dir: dir.to_owned(),
            shard,
            current,
            retiring: Vec::new(),
            next_seq: first_seq,
            synced_seq: first_seq - 1,
            in_flight: None,
            dir_dirty: false,
            poisoned: None,
            retire_up_to: None,
            spare: None,
            recycle_gen: None,
        })
    }

    /// The segments replay read, once their records are durable in the user trees (or
    /// there were none): the largest becomes the spare (header zeroed and synced, then
    /// renamed), the others are deleted. Blocking: startup only.
    pub fn retire_replayed(&mut self, old: &[PathBuf]) -> Result<()> {
        let mut sized: Vec<(u64, &PathBuf)> = old
            .iter()
            .map(|p| (fs::metadata(p).map(|m| m.len()).unwrap_or(0), p))
            .collect();
        sized.sort();
        if self.spare.is_none()
            && let Some(&(len, largest)) = sized.last()
            && len >= SPARE_MIN_BYTES
        {
            let kept = OpenOptions::new()
                .read(true)
                .write(true)
                .open(largest)
                .and_then(|f| {
                    blank_header(&f)?;
                    let path = self.dir.join(SPARE_NAME);
                    fs::rename(largest, &path)?;
                    Ok(Spare { path, file: f })
                });
            if let Ok(spare) = kept {
                self.spare = Some(spare);
                sized.pop();
            }
        }
        for (_, p) in sized {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(p, e)),
            }
        }
        Ok(())
    }

    /// Deletes the spare (the file system is short of space).
    pub fn drop_spare(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = fs::remove_file(&spare.path);
        }
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest sequence number whose record is durable.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// Highest sequence number written.
    pub fn written_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Appends a record (page cache only) and returns its sequence number. On error
    /// nothing of it is left in the segment.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        let frame = encode_frame(self.current.salt, self.next_seq, payload);
        self.append_frame(frame)
    }

    /// [`Journal::append`] of an op's record, encoded straight into its frame (a
    /// delivery's record holds the message: one copy fewer).
    /// A delivery's message is not copied into the frame: the frame's head and the
    /// message go to the segment with one `pwritev`.
    pub fn append_op(&mut self, op: &record::Op) -> Result<u64> {
        let mut head = Vec::with_capacity(FRAME_HEADER_BYTES + 128);
        head.extend_from_slice(&[0; 8]);
        head.extend_from_slice(&self.next_seq.to_le_bytes());
        let tail = op.encode_split_into(&mut head);
        let len = head.len() - FRAME_HEADER_BYTES + tail.len();
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        head[0..4].copy_from_slice(&len.to_le_bytes());
        let crc = frame_crc(Some(self.current.salt), &head[8..16], &head[16..], tail);
        head[4..8].copy_from_slice(&crc.to_le_bytes());
        self.append_parts(&head, tail)
    }

    fn append_frame(&mut self, frame: Vec<u8>) -> Result<u64> {
        self.append_parts(&frame, &[])
    }

    /// Appends one frame made of `head` and then `tail`.
    fn append_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<u64> {
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::JournalFailed {
                reason: reason.clone(),
            });
        }
        let frame_len = head.len() + tail.len();
        let payload_len = frame_len - FRAME_HEADER_BYTES;
        if payload_len > JOURNAL_RECORD_BYTES_MAX {
            return Err(StoreError::InvalidValue {
                field: "journal record",
                reason: format!("{payload_len} bytes is too large"),
            });
        }
        let seq = self.next_seq;
        let seg = &mut self.current;
        if let Err(e) = write_all_at2(&seg.file, head, tail, seg.bytes) {
            if seg.file.set_len(seg.bytes).is_err() {
                self.poisoned = Some(format!("cannot cut a failed append: {e}"));
            }
            return Err(StoreError::io(&seg.path, e));
        }
        seg.bytes += frame_len as u64;
        seg.last_seq = seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// What to flush next, if anything is written but not yet synced and no flush is
    /// running. The engine runs it off-thread and then calls `synced` or `sync_failed`.
    pub fn sync_target(&mut self) -> Result<Option<SyncTarget>> {
        if self.poisoned.is_some() || self.in_flight.is_some() {
            return Ok(None);
        }
        let up_to = self.written_seq();
        if up_to <= self.synced_seq && !self.dir_dirty {
            return Ok(None);
        }
        let mut files = Vec::new();
        for seg in self.retiring.iter().chain(std::iter::once(&self.current)) {
            if seg.last_seq > self.synced_seq {
                files.push(
                    seg.file
                        .try_clone()
                        .map_err(|e| StoreError::io(&seg.path, e))?,
                );
            }
        }
        let dir = if self.dir_dirty {
            Some(File::open(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?)
        } else {
            None
        };
        self.dir_dirty = false;
        self.in_flight = Some(up_to);
        Ok(Some(SyncTarget {
            files,
            dir,
            up_to_seq: up_to,
            writes: Vec::new(),
        }))
    }

    /// A flush returned `Ok`: records up to `up_to_seq` are durable.
    pub fn synced(&mut self, up_to_seq: u64) {
        debug_assert_eq!(
            self.in_flight,
            Some(up_to_seq),
            "synced without sync_target"
        );
        self.in_flight = None;
        self.synced_seq = self.synced_seq.max(up_to_seq);
    }

    /// A flush failed. After a failed fdatasync the state of the page cache is unknown
    /// (Linux may have dropped the dirty pages), so the journal refuses all further work:
    /// the shard must restart and replay.
    pub fn sync_failed(&mut self, error: &io::Error) {
        self.in_flight = None;
        self.poisoned = Some(format!("fdatasync failed: {error}"));
    }

    /// The journal's failure, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// True when the journal is big enough to want a checkpoint and none is under way.
    pub fn checkpoint_due(&self) -> bool {
        self.retire_up_to.is_none() && self.current.bytes >= JOURNAL_CHECKPOINT_BYTES
    }

    /// Retires the current segment (a new one takes new records); returns the highest
    /// sequence number that must be synced and applied before the checkpoint's syncfs.
    pub fn begin_checkpoint(&mut self) -> Result<u64> {
        if let Some(up_to) = self.retire_up_to {
            return Ok(up_to);
        }
        let up_to = self.written_seq();
        let gen_ = self.current.gen_ + 1;
        let next = match self.spare.take() {
            Some(spare) => reuse_segment(spare, &self.dir, self.shard, gen_, self.next_seq)?,
            None => new_segment(&self.dir, self.shard, gen_, self.next_seq)?,
        };
        let old = std::mem::replace(&mut self.current, next);
        self.retiring.push(old);
        self.dir_dirty = true;
        self.retire_up_to = Some(up_to);
        Ok(up_to)
    }

    /// The retired segments' sequence bound, while a checkpoint is under way.
    pub fn retiring_up_to(&self) -> Option<u64> {
        self.retire_up_to
    }

    /// The retired segment to make the spare after the checkpoint's syncfs (a handle for
    /// [`blank_header`]): the largest, when there is no spare.
    pub fn recycle_candidate(&mut self) -> Option<File> {
        if self.spare.is_some() {
            return None;
        }
        let length = |s: &Segment| s.file.metadata().map_or(s.bytes, |m| m.len());
        let seg = self
            .retiring
            .iter()
            .map(|s| (length(s), s))
            .filter(|(len, _)| *len >= SPARE_MIN_BYTES)
            .max_by_key(|(len, _)| *len)?
            .1;
        let file = seg.file.try_clone().ok()?;
        self.recycle_gen = Some(seg.gen_);
        Some(file)
    }

    /// Deletes the retired segments: their records are applied and a syncfs of every root
    /// completed since. The unlinks need no sync: a segment that comes back is replayed
    /// harmlessly. `blanked`: the header of the `recycle_candidate` is zero on disk; it
    /// becomes the spare instead of being deleted.
    pub fn finish_checkpoint(&mut self, blanked: bool) -> Result<()> {
        let recycle = self.recycle_gen.take().filter(|_| blanked);
        for seg in self.retiring.drain(..) {
            if Some(seg.gen_) == recycle && self.spare.is_none() {
                let path = self.dir.join(SPARE_NAME);
                if fs::rename(&seg.path, &path).is_ok() {
                    self.spare = Some(Spare {
                        path,
                        file: seg.file,
                    });
                    continue;
                }
            }
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&seg.path, e)),
            }
        }
        self.retire_up_to = None;
        Ok(())
    }

    /// Bytes in the current segment.
    pub fn current_bytes(&self) -> u64 {
        self.current.bytes
    }
}

/// Writes `a` and then `b` at `offset`: one `pwritev` (more only after a short write).
fn write_all_at2(file: &File, a: &[u8], b: &[u8], offset: u64) -> io::Result<()> {
    if b.is_empty() {
        return file.write_all_at(a, offset);
    }
    let total = a.len() + b.len();
    let mut done = 0;
    while done < total {
        let parts = if done < a.len() {
            [io::IoSlice::new(&a[done..]), io::IoSlice::new(b)]
        } else {
            [
                io::IoSlice::new(&b[done - a.len()..]),
                io::IoSlice::new(&[]),
            ]
        };
        match rustix::io::pwritev(file, &parts, offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        .unwrap_or(1)
}

fn new_segment(dir: &Path, shard: u32, gen_: u64, first_seq: u64) -> Result<Segment> {
    let path = dir.join(segment_name(gen_));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    start_segment(file, path, shard, gen_, first_seq)
}

/// Writes a segment's header (page cache: the group commit syncs it with the segment's
/// first records).
fn start_segment(
    file: File,
    path: PathBuf,
    shard: u32,
    gen_: u64,
    first_seq: u64,
) -> Result<Segment> {
    let salt = new_salt();
    file.write_all_at(&encode_segment_header(shard, first_seq, salt), 0)
        .map_err(|e| StoreError::io(&path, e))?;
    Ok(Segment {
        gen_,
        path,
        file,
        bytes: SEGMENT_HEADER_BYTES as u64,
        last_seq: first_seq - 1,
        salt,
    })
}

/// The spare, renamed to segment `gen_` and given its header; a new file when the rename
/// fails.
fn reuse_segment(
    spare: Spare,
    dir: &Path,
    shard: u32,
    gen_: u64,
    first_seq: u64,
) -> Result<Segment> {
    let path = dir.join(segment_name(gen_));
    if fs::rename(&spare.path, &path).is_err() {
        let _ = fs::remove_file(&spare.path);
        return new_segment(dir, shard, gen_, first_seq);
    }
    start_segment(spare.file, path, shard, gen_, first_seq)
}

/// The spare left in `dir` by an earlier run, if its header is zero (anything else there
/// is deleted).
fn open_spare(dir: &Path) -> Option<Spare> {
    let path = dir.join(SPARE_NAME);
    let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let blank = file.read_exact_at(&mut header, 0).is_ok() && header.iter().all(|&b| b == 0);
    if !blank {
        let _ = fs::remove_file(&path);
        return None;
    }
    Some(Spare { path, file })
}

/// Replays one segment; cuts it after the last intact record. A segment whose header is
/// damaged holds nothing acknowledged (its header was synced before any of its records
/// was) and is skipped.
fn replay_segment(
    path: &Path,
    shard: u32,
    mut last_seq: Option<u64>,
    apply: &mut impl FnMut(Replayed) -> Result<()>,
) -> Result<Option<u64>> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    if read_full(&mut reader, &mut header).map_err(|e| StoreError::io(path, e))? < header.len() {
        return Ok(last_seq);
    }
    let crc = u32::from_le_bytes([header[28], header[29], header[30], header[31]]);
    let mut word = [0u8; 8];
    word.copy_from_slice(&header[16..24]);
    let first_seq = u64::from_le_bytes(word);
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if &header[..8] != SEGMENT_MAGIC
        || crc32fast::hash(&header[..28]) != crc
        || !(version == 1 || version == SEGMENT_VERSION)
        || header[12..16] != shard.to_le_bytes()
    {
        return Ok(last_seq);
    }
    let salt = (version >= 2)
        .then(|| u32::from_le_bytes([header[24], header[25], header[26], header[27]]));
    let mut expect = last_seq.map_or(first_seq, |s| s + 1);
    if expect != first_seq && last_seq.is_some() {
        // A gap or an overlap between segments: start from this segment's own number.
        expect = first_seq;
    }
    let mut good_end = SEGMENT_HEADER_BYTES as u64;
    loop {
        let mut fh = [0u8; FRAME_HEADER_BYTES];
        let n = read_full(&mut reader, &mut fh).map_err(|e| StoreError::io(path, e))?;
        if n < FRAME_HEADER_BYTES {
            break;
        }
        let len = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]) as usize;
        let crc = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]);
        word.copy_from_slice(&fh[8..16]);
        let seq = u64::from_le_bytes(word);
        if len > JOURNAL_RECORD_BYTES_MAX || seq != expect {
            break;
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut reader, &mut payload).map_err(|e| StoreError::io(path, e))? < len {
            break;
        }
        if frame_crc(salt, &fh[8..16], &payload, &[]) != crc {
            break;
        }
        apply(Replayed { seq, payload })?;
        good_end += (FRAME_HEADER_BYTES + len) as u64;
        last_seq = Some(seq);
        expect = seq + 1;
    }
    let len = fs::metadata(path)
        .map_err(|e| StoreError::io(path, e))?
        .len();
    if len > good_end {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(good_end))
            .map_err(|e| StoreError::io(path, e))?;
    }
    Ok(last_seq)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut got = Vec::new();
        Journal::replay(dir, 0, |r| {
            got.push((r.seq, r.payload));
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn frame_known_answer() {
        let f = encode_frame(0x0a0b_0c0d, 0x0102, b"ab");
        assert_eq!(&f[0..4], &[2, 0, 0, 0]);
        assert_eq!(&f[8..18], &[2, 1, 0, 0, 0, 0, 0, 0, b'a', b'b']);
        let mut salted = vec![0x0d, 0x0c, 0x0b, 0x0a];
        salted.extend_from_slice(&f[8..]);
        assert_eq!(&f[4..8], &crc32fast::hash(&salted).to_le_bytes());
        let h = encode_segment_header(3, 7, 0x0a0b_0c0d);
        assert_eq!(&h[..16], b"MSJOURNL\x02\x00\x00\x00\x03\x00\x00\x00");
        assert_eq!(
            &h[16..28],
            &[7, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a]
        );
    }

    #[test]
    fn group_commit_and_torn_tail() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let dir = tmp.path().join("j");
        let (old, last) = Journal::replay(&dir, 0, |_| Ok(()))?;
        let mut j = Journal::start(&dir, 0, &old, last)?;
        let first = j.next_seq();
        for i in 0..64u8 {
            j.append(&[i; 10])?;
        }
        let t = j
            .sync_target()?
            .ok_or_else(|| StoreError::corrupt("t", "none"))?;
        assert_eq!(t.up_to_seq(), first + 63);
        // While the flush runs nothing else is handed out; new records wait for the next.
        j.append(b"late")?;
        assert!(j.sync_target()?.is_none());
        t.run().map_err(|e| StoreError::io("sync", e))?;
        j.synced(t.up_to_seq());
        assert_eq!(j.synced_seq(), first + 63);
        let t2 = j
            .sync_target()?
            .ok_or_else(|| StoreError::corrupt("t", "none"))?;
        assert_eq!(t2.up_to_seq(), first + 64);
        drop(j);
        let seg = dir.join(segment_name(1));
        let full = fs::read(&seg).map_err(|e| StoreError::io(&seg, e))?;
        assert_eq!(collect(&dir)?.len(), 65);
        // Cut at every byte: replay yields exactly the whole records before the cut.
        let frame = FRAME_HEADER_BYTES + 10;
        for cut in SEGMENT_HEADER_BYTES..full.len() {
            fs::write(&seg, &full[..cut]).map_err(|e| StoreError::io(&seg, e))?;
            let got = collect(&dir)?;
            let whole = ((cut - SEGMENT_HEADER_BYTES) / frame).min(64);
            assert_eq!(got.len(), whole, "cut at {cut}");
            let len = fs::metadata(&seg)
                .map_err(|e| StoreError::io(&seg, e))?
                .len();
            assert_eq!(len as usize, SEGMENT_HEADER_BYTES + whole * frame);
        }
        Ok(())
    }

    /// A delivery's record, written as a head and the message (`pwritev`), reads back as
    /// the same frame and op as the one-buffer encoding.
    #[test]
    fn split_append_matches_encoding() -> Result<()> {
        let (_tmp, dir, mut j) = fresh()?;
        let user = crate::Address::parse("u@example.com")?;
        let deliver = |n: usize| record::Op::Deliver {
            user: user.clone(),
            mailbox: 1,
            uid: n as u32 + 1,
            modseq: 9,
            flags: 2,
            keywords: vec!["k".into()],
            internaldate: 1_700_000_000,
            tz_minutes: -60,
            message: std::sync::Arc::new(vec![b'x'; n]),
        };
        let expunge = record::Op::Expunge {
            user: user.clone(),
            mailbox: 1,
            modseq: 3,
            uids: vec![1, 2],
        };
        let ops = [deliver(0), deliver(1), expunge, deliver(70_000)];
        let mut seqs = Vec::new();
        for op in &ops {
            seqs.push(j.append_op(op)?);
        }
        drop(j);
        let got = collect(&dir)?;
        assert_eq!(got.len(), ops.len());
        let bytes = fs::read(dir.join(segment_name(1))).map_err(|e| StoreError::io("seg", e))?;
        let mut at = SEGMENT_HEADER_BYTES;
        for ((op, seq), (got_seq, payload)) in ops.iter().zip(&seqs).zip(&got) {
            assert_eq!(seq, got_seq);
            assert_eq!(payload, &op.encode());
            assert_eq!(&record::Op::decode(payload)?, op);
            let salt = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
            let frame = encode_frame(salt, *seq, &op.encode());
            assert_eq!(&bytes[at..at + frame.len()], &frame[..]);
            at += frame.len();
        }
        assert_eq!(at, bytes.len());
        Ok(())
    }

    #[test]
    fn checkpoint_rotates() -> Result<()> {
        let (_tmp, dir, mut j) = fresh()?;
        j.append(b"one")?;
        let up_to = j.begin_checkpoint()?;
        j.append(b"two")?;
        let t = j
            .sync_target()?
            .ok_or_else(|| StoreError::corrupt("t", "none"))?;
        assert_eq!(t.files.len(), 2);
        assert!(t.dir.is_some());
        t.run().map_err(|e| StoreError::io("sync", e))?;
        j.synced(t.up_to_seq());
        assert!(j.synced_seq() >= up_to);
        j.finish_checkpoint(false)?;
        let got = collect(&dir)?;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"two");
        Ok(())
    }

    fn io<T>(r: io::Result<T>) -> Result<T> {
        r.map_err(|e| StoreError::io("test", e))
    }

    fn sync(j: &mut Journal) -> Result<()> {
        if let Some(t) = j.sync_target()? {
            io(t.run())?;
            j.synced(t.up_to_seq());
        }
        Ok(())
    }

    /// A temp dir and a journal started in it (the dir goes when the first is dropped).
    fn fresh() -> Result<(tempfile::TempDir, PathBuf, Journal)> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let dir = tmp.path().join("j");
        let j = Journal::start(&dir, 0, &[], None)?;
        Ok((tmp, dir, j))
    }

    /// 1.2 MB of records, a checkpoint begun (the segment retired), then `next` in the new
    /// segment, all synced.
    fn retire_a_long_segment(j: &mut Journal, next: &[u8]) -> Result<()> {
        for _ in 0..40 {
            j.append(&[b'o'; 30_000])?;
        }
        j.begin_checkpoint()?;
        j.append(next)?;
        sync(j)
    }

    fn salt_of(path: &Path) -> Result<u32> {
        let b = io(fs::read(path))?;
        Ok(u32::from_le_bytes([b[24], b[25], b[26], b[27]]))
    }

    /// A retired segment kept as the spare is overwritten in place by the next segment
    /// (its length does not move: no size update for the fdatasync to write), and replay
    /// reads only the new records: not the stale ones after them, not a frame with the next
    /// sequence number checksummed without the segment's salt (what a sender could have
    /// put in an old message body), but one with the salt (the control: the check can fail).
    #[test]
    fn a_recycled_segment_replays_only_its_new_records() -> Result<()> {
        let (_tmp, dir, mut j) = fresh()?;
        retire_a_long_segment(&mut j, b"n1")?;
        let recycle = j
            .recycle_candidate()
            .ok_or_else(|| StoreError::corrupt("t", "no candidate"))?;
        io(blank_header(&recycle))?;
        j.finish_checkpoint(true)?;
        let spare = dir.join(SPARE_NAME);
        let spare_len = io(fs::metadata(&spare))?.len();
        assert!(spare_len >= 40 * 30_000);
        assert!(!dir.join(segment_name(1)).exists());
        // A spare renamed before its new header reached the disk: skipped, no error.
        assert_eq!(collect(&dir)?.len(), 1);
        io(fs::copy(&spare, dir.join(segment_name(9))))?;
        assert_eq!(collect(&dir)?.len(), 1);
        io(fs::remove_file(dir.join(segment_name(9))))?;

        j.begin_checkpoint()?;
        assert!(!spare.exists());
        let seg3 = dir.join(segment_name(3));
        let a = j.append(b"a")?;
        j.append(b"b")?;
        sync(&mut j)?;
        assert_eq!(io(fs::metadata(&seg3))?.len(), spare_len);
        let got: Vec<Vec<u8>> = collect(&dir)?.into_iter().map(|r| r.1).collect();
        assert_eq!(got, [b"n1".to_vec(), b"a".to_vec(), b"b".to_vec()]);

        let salt = salt_of(&seg3)?;
        let at = (SEGMENT_HEADER_BYTES + 2 * (FRAME_HEADER_BYTES + 1)) as u64;
        let file = io(OpenOptions::new().write(true).open(&seg3))?;
        let mut unsalted = encode_frame(salt, a + 2, b"forged");
        let crc = frame_crc(None, &unsalted[8..16], &unsalted[16..], &[]);
        unsalted[4..8].copy_from_slice(&crc.to_le_bytes());
        io(file.write_all_at(&unsalted, at))?;
        assert_eq!(collect(&dir)?.len(), 3);
        io(file.write_all_at(&encode_frame(salt.wrapping_add(1), a + 2, b"forged"), at))?;
        assert_eq!(collect(&dir)?.len(), 3);
        io(file.write_all_at(&encode_frame(salt, a + 2, b"forged"), at))?;
        assert_eq!(collect(&dir)?.len(), 4);
        Ok(())
    }

    /// At start, the longest segment replay read becomes the spare (its header zeroed, so
    /// a later replay skips it), the others go, and the next checkpoint overwrites it.
    #[test]
    fn replayed_segments_leave_a_spare() -> Result<()> {
        let (_tmp, dir, mut j) = fresh()?;
        retire_a_long_segment(&mut j, b"small")?;
        drop(j);
        let (old, last) = Journal::replay(&dir, 0, |_| Ok(()))?;
        assert_eq!(old.len(), 2);
        let long = io(fs::metadata(&old[0]))?.len();
        let mut j = Journal::start(&dir, 0, &old, last)?;
        j.retire_replayed(&old)?;
        assert!(old.iter().all(|p| !p.exists()));
        let spare = dir.join(SPARE_NAME);
        let head = io(fs::read(&spare))?;
        assert_eq!(head.len() as u64, long);
        assert!(head[..SEGMENT_HEADER_BYTES].iter().all(|&b| b == 0));
        assert!(collect(&dir)?.is_empty());
        j.begin_checkpoint()?;
        j.append(b"after")?;
        sync(&mut j)?;
        assert!(!spare.exists());
        assert_eq!(io(fs::metadata(dir.join(segment_name(4))))?.len(), long);
        let got: Vec<Vec<u8>> = collect(&dir)?.into_iter().map(|r| r.1).collect();
        assert_eq!(got, [b"after".to_vec()]);
        Ok(())
    }

    /// Segments of version 1 (no salt, CRC of sequence number and payload) still replay.
    #[test]
    fn version_1_segments_replay() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let dir = tmp.path().join("j");
        io(fs::create_dir_all(&dir))?;
        let mut b = encode_segment_header(0, 5, 0).to_vec();
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        for (seq, payload) in [(5u64, &b"v1"[..]), (6, b"old")] {
            let mut f = encode_frame(0, seq, payload);
            let crc = frame_crc(None, &f[8..16], &f[16..], &[]);
            f[4..8].copy_from_slice(&crc.to_le_bytes());
            b.extend_from_slice(&f);
        }
        io(fs::write(dir.join(segment_name(1)), &b))?;
        let got = collect(&dir)?;
        assert_eq!(got, [(5, b"v1".to_vec()), (6, b"old".to_vec())]);
        Ok(())
    }
}
