//! `mail/<id>/cache`: the precomputed record of each message (ENVELOPE, BODYSTRUCTURE,
//! part offsets — produced by `delivery::cache_record`), appended at delivery.
//!
//! The file is a plain concatenation with no framing of its own: the index record holds
//! each entry's offset, length and CRC-32, so a reader checks what it reads, and space
//! left by a torn append (after a crash) is simply never referenced. Expunged entries stay
//! until compaction writes the next generation `cache.<g>` (see `index`, cache generation).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{Result, StoreError};
use crate::limits::{CACHE_READ_GAP_BYTES, CACHE_READ_SPAN_BYTES, CACHE_RECORD_BYTES_MAX};

/// File name inside `mail/<id>/`.
pub const CACHE_FILE: &str = "cache";

/// Where an entry lives, as the index records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheRef {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

/// An open cache file.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    /// Shared with the views (reads only, at offsets): a view costs no `dup`/`close`.
    file: Rc<File>,
    end: u64,
}

impl Cache {
    /// Opens (creating when missing) a mailbox's cache file.
    pub fn open(path: &Path) -> Result<Cache> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let end = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        Ok(Cache {
            path: path.to_owned(),
            file: Rc::new(file),
            end,
        })
    }

    /// Appends an entry at the end of the file.
    pub fn append(&mut self, entry: &[u8]) -> Result<CacheRef> {
        let len = u32::try_from(entry.len())
            .ok()
            .filter(|&l| l as usize <= CACHE_RECORD_BYTES_MAX)
            .ok_or_else(|| StoreError::InvalidValue {
                field: "cache record",
                reason: format!("{} bytes is too large", entry.len()),
            })?;
        if let Err(e) = self.file.write_all_at(entry, self.end) {
            // A full disk may leave part of the entry; nothing refers to it, cut it anyway.
            let _ = self.file.set_len(self.end);
            return Err(StoreError::io(&self.path, e));
        }
        let at = CacheRef {
            offset: self.end,
            len,
            crc: crc32fast::hash(entry),
        };
        self.end += u64::from(len);
        Ok(at)
    }

    /// Bytes in the file (live and dead entries).
    pub fn len(&self) -> u64 {
        self.end
    }

    /// True when the file holds nothing.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// fdatasyncs the file (compaction writes a new generation whole before switching).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// The file for views that outlive this value: shared, not duplicated (IMAP opens
    /// a view per command; a `dup` and a `close` each showed in profiles).
    pub fn file_handle(&self) -> Result<Rc<File>> {
        Ok(self.file.clone())
    }

    /// Reads and checks an entry; a short read or a CRC mismatch is `Corrupt`.
    pub fn read(&self, at: CacheRef) -> Result<Vec<u8>> {
        read_entry(&self.file, &self.path, at)
    }
}

/// Reads and checks an entry from an open cache file.
pub fn read_entry(file: &File, path: &Path, at: CacheRef) -> Result<Vec<u8>> {
    if at.len as usize > CACHE_RECORD_BYTES_MAX {
        return Err(StoreError::corrupt(path, "cache entry length out of range"));
    }
    let mut buf = vec![0u8; at.len as usize];
    file.read_exact_at(&mut buf, at.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::corrupt(path, "cache entry beyond the end of the file")
        } else {
            StoreError::io(path, e)
        }
    })?;
    if crc32fast::hash(&buf) != at.crc {
        return Err(StoreError::corrupt(path, "cache entry checksum mismatch"));
    }
    Ok(buf)
}

/// Reads and checks several entries, in as few reads as their placement allows: entries
/// sorted by offset are grouped into stretches of the file (see
/// [`CACHE_READ_SPAN_BYTES`]), each read once. `f` gets every entry once, as
/// `(index into at, entry)`, in file order, borrowed from the stretch (no copy); an entry
/// whose stretch could not be read, or whose checksum fails, is read on its own, so its
/// error is its own.
pub fn read_entries(
    file: &File,
    path: &Path,
    at: &[CacheRef],
    mut f: impl FnMut(usize, Result<&[u8]>),
) {
    let mut done = vec![false; at.len()];
    let mut order: Vec<usize> = (0..at.len()).collect();
    order.sort_by_key(|&i| at[i].offset);
    let mut group: Vec<usize> = Vec::new();
    let mut flush = |group: &mut Vec<usize>, f: &mut dyn FnMut(usize, Result<&[u8]>)| {
        if let Some(buf) = read_span(file, group.iter().map(|&i| at[i])) {
            let start = at[group[0]].offset;
            for &i in group.iter() {
                let from = (at[i].offset - start) as usize;
                let entry = &buf[from..from + at[i].len as usize];
                if crc32fast::hash(entry) == at[i].crc {
                    done[i] = true;
                    f(i, Ok(entry));
                }
            }
        }
        group.clear();
    };
    for i in order {
        let r = at[i];
        if r.len as usize > CACHE_RECORD_BYTES_MAX {
            continue;
        }
        if let Some(&first) = group.first() {
            let start = at[first].offset;
            let end = group
                .iter()
                .map(|&g| at[g].offset + u64::from(at[g].len))
                .max();
            let end = end.unwrap_or(start);
            let fits = r.offset <= end.saturating_add(CACHE_READ_GAP_BYTES)
                && (r.offset + u64::from(r.len)).max(end) - start <= CACHE_READ_SPAN_BYTES;
            if !fits {
                flush(&mut group, &mut f);
            }
        }
        group.push(i);
    }
    flush(&mut group, &mut f);
    for (i, &r) in at.iter().enumerate() {
        if !done[i] {
            match read_entry(file, path, r) {
                Ok(entry) => f(i, Ok(&entry)),
                Err(e) => f(i, Err(e)),
            }
        }
    }
}

/// One read from the first entry's offset to the end of the furthest; `None` if the
/// file is shorter or the read fails (the entries are then read one by one).
fn read_span(file: &File, refs: impl Iterator<Item = CacheRef> + Clone) -> Option<Vec<u8>> {
    let start = refs.clone().map(|r| r.offset).min()?;
    let end = refs.map(|r| r.offset + u64::from(r.len)).max()?;
    let mut buf = vec![0u8; usize::try_from(end - start).ok()?];
    file.read_exact_at(&mut buf, start).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batched reads answer exactly what single reads answer: entries in any order,
    /// far apart (separate reads), damaged (checksum) and beyond the end of the file.
    #[test]
    fn read_entries_match_single_reads() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join(CACHE_FILE);
        let mut c = Cache::open(&path)?;
        let mut refs = Vec::new();
        for i in 0..40u32 {
            let size = if i % 10 == 9 {
                40_000
            } else {
                100 + i as usize
            };
            refs.push(c.append(&vec![i as u8; size])?);
        }
        let mut asked: Vec<CacheRef> = refs.iter().rev().step_by(3).copied().collect();
        asked.extend([refs[5], refs[0], refs[39]]);
        asked.push(CacheRef {
            crc: refs[7].crc ^ 1,
            ..refs[7]
        });
        asked.push(CacheRef {
            offset: 10_000_000,
            ..refs[2]
        });
        let file = c.file_handle()?;
        let mut batch: Vec<Option<Result<Vec<u8>>>> = asked.iter().map(|_| None).collect();
        read_entries(&file, &path, &asked, |i, entry| {
            assert!(batch[i].is_none(), "entry {i} given twice");
            batch[i] = Some(entry.map(<[u8]>::to_vec));
        });
        let batch: Vec<Result<Vec<u8>>> = batch.into_iter().flatten().collect();
        assert_eq!(batch.len(), asked.len());
        for (got, &r) in batch.iter().zip(&asked) {
            let single = read_entry(&file, &path, r);
            assert_eq!(got.as_ref().ok(), single.as_ref().ok(), "{r:?}");
            assert_eq!(got.is_err(), single.is_err(), "{r:?}");
        }
        assert!(batch[batch.len() - 1].is_err() && batch[batch.len() - 2].is_err());
        Ok(())
    }

    #[test]
    fn append_and_check() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join(CACHE_FILE);
        let mut c = Cache::open(&path)?;
        let a = c.append(b"first")?;
        let b = c.append(b"second")?;
        assert_eq!((a.offset, b.offset, b.len), (0, 5, 6));
        let c = Cache::open(&path)?;
        assert_eq!(c.read(b)?, b"second");
        assert!(c.read(CacheRef { crc: 0, ..b }).is_err());
        assert!(c.read(CacheRef { offset: 100, ..b }).is_err());
        Ok(())
    }
}
