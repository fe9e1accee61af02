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
use crate::limits::CACHE_RECORD_BYTES_MAX;

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

#[cfg(test)]
mod tests {
    use super::*;

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
