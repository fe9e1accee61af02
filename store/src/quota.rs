//! Quota: bytes per account (`Profile::quota_bytes`, 0 = unlimited), checked before a
//! delivery, APPEND or COPY is accepted, against usage kept current without rescanning.
//!
//! `<user dir>/usage`, 48 bytes, little-endian, rewritten in place with one `pwrite`
//! (inside one sector, so after a crash it is the old or the new version):
//!
//! ```text
//!  0  8  magic "MSUSAGE1"
//!  8  4  version (1)
//! 12  4  reserved, 0
//! 16  8  bytes used (sum of RFC822.SIZE of live messages)
//! 24  8  live messages
//! 32  8  journal sequence number of the last change counted
//! 40  4  reserved, 0
//! 44  4  CRC-32 (IEEE) of bytes 0..44
//! ```
//!
//! Replay counts a record only when its sequence number is above the one stored, so a
//! change is never counted twice. A missing or damaged file is recomputed from the indexes
//! (never from message files); reconstruct rewrites it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// File name inside the user directory.
pub const USAGE_FILE: &str = "usage";
/// First eight bytes.
pub const USAGE_MAGIC: &[u8; 8] = b"MSUSAGE1";
/// File size.
pub const USAGE_BYTES: usize = 48;

/// What an account uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
    pub applied_seq: u64,
}

impl Usage {
    pub fn encode(&self) -> [u8; USAGE_BYTES] {
        let mut b = [0u8; USAGE_BYTES];
        b[0..8].copy_from_slice(USAGE_MAGIC);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[16..24].copy_from_slice(&self.bytes.to_le_bytes());
        b[24..32].copy_from_slice(&self.messages.to_le_bytes());
        b[32..40].copy_from_slice(&self.applied_seq.to_le_bytes());
        let crc = crc32fast::hash(&b[..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Usage> {
        let word = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[r]);
            u64::from_le_bytes(a)
        };
        let ok = b.len() == USAGE_BYTES
            && &b[0..8] == USAGE_MAGIC
            && b[8..12] == 1u32.to_le_bytes()
            && crc32fast::hash(&b[..44]).to_le_bytes() == b[44..48];
        ok.then(|| Usage {
            bytes: word(16..24),
            messages: word(24..32),
            applied_seq: word(32..40),
        })
    }

    /// Adds (or with a negative sign, removes) messages, never below zero.
    pub fn add(&mut self, bytes: u64, messages: u64, remove: bool) {
        if remove {
            self.bytes = self.bytes.saturating_sub(bytes);
            self.messages = self.messages.saturating_sub(messages);
        } else {
            self.bytes = self.bytes.saturating_add(bytes);
            self.messages = self.messages.saturating_add(messages);
        }
    }
}

/// The open `usage` file of a user.
#[derive(Debug)]
pub struct UsageFile {
    path: PathBuf,
    file: File,
    pub usage: Usage,
}

impl UsageFile {
    /// Opens the file; when it is missing or damaged, `compute` gives the usage and the
    /// file is rewritten. Returns whether it had to be recomputed.
    pub fn open(
        user_dir: &Path,
        compute: impl FnOnce() -> Result<Usage>,
    ) -> Result<(UsageFile, bool)> {
        let path = user_dir.join(USAGE_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let mut buf = [0u8; USAGE_BYTES];
        let n = file
            .read_at(&mut buf, 0)
            .map_err(|e| StoreError::io(&path, e))?;
        let found = if n == USAGE_BYTES {
            Usage::decode(&buf)
        } else {
            None
        };
        let mut uf = UsageFile {
            path,
            file,
            usage: found.unwrap_or_default(),
        };
        if found.is_none() {
            uf.usage = compute()?;
            uf.write()?;
        }
        Ok((uf, found.is_none()))
    }

    /// Writes the current usage in place (page cache; durable with the next checkpoint).
    pub fn write(&self) -> Result<()> {
        self.file
            .write_all_at(&self.usage.encode(), 0)
            .map_err(|e| StoreError::io(&self.path, e))
    }
}

/// `OverQuota` unless `incoming_bytes` more fit into the quota (0 = unlimited).
pub fn check(quota_bytes: u64, used_bytes: u64, incoming_bytes: u64) -> Result<()> {
    if quota_bytes == 0 || used_bytes.saturating_add(incoming_bytes) <= quota_bytes {
        return Ok(());
    }
    Err(StoreError::OverQuota {
        used_bytes,
        quota_bytes,
        incoming_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_and_check() -> Result<()> {
        let u = Usage {
            bytes: 0x0102,
            messages: 3,
            applied_seq: 4,
        };
        let b = u.encode();
        assert_eq!(&b[..16], b"MSUSAGE1\x01\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(&b[16..18], &[2, 1]);
        assert_eq!(Usage::decode(&b), Some(u));
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(Usage::decode(&bad), None);
        assert!(check(0, 10, u64::MAX).is_ok());
        assert!(check(100, 60, 40).is_ok());
        assert!(matches!(
            check(100, 60, 41),
            Err(StoreError::OverQuota { .. })
        ));
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let (mut f, recomputed) = UsageFile::open(dir.path(), || Ok(u))?;
        assert!(recomputed);
        f.usage.add(10, 1, false);
        f.write()?;
        let (f, recomputed) = UsageFile::open(dir.path(), || Ok(Usage::default()))?;
        assert!(!recomputed);
        assert_eq!(f.usage.bytes, 0x0102 + 10);
        Ok(())
    }
}
