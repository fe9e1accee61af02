//! `<root>/format`: what a store is, fixed when it is created (DESIGN §3). Every root
//! holds one; `Store::open` checks them against the configuration so a changed
//! `fanout_levels` or a reordered/missing disk is refused instead of losing users.
//!
//! Text, in the line format of the store's small files (magic line, `key value` lines,
//! checksum line):
//!
//! ```text
//! msgstore-format 1      magic and format version
//! fanout_levels 2        hex directory levels under users/ (1..=3)
//! roots 2                number of roots (disks) of the store
//! root_index 0           which of them this is (0-based, in configuration order)
//! crc32 1a2b3c4d         CRC-32 (IEEE) of every preceding byte, 8 lower-case hex digits
//! ```
//!
//! Version policy: the version is bumped on any change a reader of the previous version
//! would misread, including a new key (readers reject keys they do not know). A reader
//! rejects a wrong magic, a version it does not know, a bad checksum, an unknown,
//! missing or repeated key, as `Corrupt`. A store is never upgraded in place silently.

use std::path::{Path, PathBuf};

use crate::durable::{read_bounded, write_atomic};
use crate::error::Result;
use crate::limits::FORMAT_BYTES_MAX;
use crate::textfile;

/// File name inside each root.
pub const FORMAT_FILE: &str = "format";
/// Magic word on the first line.
pub const FORMAT_MAGIC: &str = "msgstore-format";
/// The only version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The contents of one root's format file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub fanout_levels: u8,
    pub roots: usize,
    pub root_index: usize,
}

impl Format {
    /// The path of the format file in `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join(FORMAT_FILE)
    }

    /// Serialises the file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        textfile::encode(
            FORMAT_MAGIC,
            FORMAT_VERSION,
            &[
                ("fanout_levels", &self.fanout_levels.to_string()),
                ("roots", &self.roots.to_string()),
                ("root_index", &self.root_index.to_string()),
            ],
        )
    }

    /// Parses a file's bytes; `path` is only for error messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Format> {
        let mut fields = textfile::decode(path, bytes, FORMAT_MAGIC, FORMAT_VERSION)?;
        let mut number = |key: &str| -> Result<usize> {
            let value = textfile::take(path, &mut fields, key)?;
            textfile::number(path, key, value)
        };
        let fanout_levels = number("fanout_levels")?;
        let roots = number("roots")?;
        let root_index = number("root_index")?;
        textfile::no_unknown_keys(path, &fields)?;
        let corrupt = |reason: &str| crate::StoreError::corrupt(path, reason);
        let fanout_levels = u8::try_from(fanout_levels)
            .ok()
            .filter(|l| (1..=crate::limits::FANOUT_LEVELS_MAX).contains(l))
            .ok_or_else(|| corrupt("fanout_levels out of range"))?;
        if roots == 0 || roots > crate::limits::ROOTS_MAX {
            return Err(corrupt("roots out of range"));
        }
        if root_index >= roots {
            return Err(corrupt("root_index is not less than roots"));
        }
        Ok(Format {
            fanout_levels,
            roots,
            root_index,
        })
    }

    /// Reads `<root>/format`. A missing file is an `Io` error of kind `NotFound`.
    pub fn read(root: &Path) -> Result<Format> {
        let path = Self::path(root);
        let bytes = read_bounded(&path, FORMAT_BYTES_MAX)?;
        Self::parse(&path, &bytes)
    }

    /// Writes `<root>/format` atomically and durably.
    pub fn write(&self, root: &Path) -> Result<()> {
        write_atomic(&Self::path(root), &self.to_bytes()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    const F: Format = Format {
        fanout_levels: 2,
        roots: 2,
        root_index: 0,
    };

    // Pins the on-disk bytes; crc from `python3 -c 'import zlib; print(hex(zlib.crc32(b"...")))'`.
    #[test]
    fn known_bytes() -> Result<()> {
        let bytes = F.to_bytes()?;
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "msgstore-format 1\nfanout_levels 2\nroots 2\nroot_index 0\ncrc32 598f5336\n"
        );
        assert_eq!(Format::parse(Path::new("f"), &bytes)?, F);
        Ok(())
    }

    #[test]
    fn rejects_bad_files() -> Result<()> {
        let p = Path::new("f");
        let bad = |text: &str| -> bool {
            let body = text.to_owned();
            let crc = crc32fast::hash(body.as_bytes());
            let bytes = format!("{body}crc32 {crc:08x}\n");
            matches!(
                Format::parse(p, bytes.as_bytes()),
                Err(StoreError::Corrupt { .. })
            )
        };
        assert!(!bad(
            "msgstore-format 1\nfanout_levels 2\nroots 2\nroot_index 0\n"
        ));
        assert!(bad(
            "msgstore-format 2\nfanout_levels 2\nroots 2\nroot_index 0\n"
        ));
        assert!(bad(
            "msgstore-profile 1\nfanout_levels 2\nroots 2\nroot_index 0\n"
        ));
        assert!(bad("msgstore-format 1\nfanout_levels 2\nroots 2\n"));
        assert!(bad(
            "msgstore-format 1\nfanout_levels 2\nroots 2\nroot_index 0\nx 1\n"
        ));
        assert!(bad(
            "msgstore-format 1\nfanout_levels 4\nroots 2\nroot_index 0\n"
        ));
        assert!(bad(
            "msgstore-format 1\nfanout_levels 0\nroots 2\nroot_index 0\n"
        ));
        assert!(bad(
            "msgstore-format 1\nfanout_levels 2\nroots 2\nroot_index 2\n"
        ));
        assert!(bad(
            "msgstore-format 1\nfanout_levels 2\nroots 0\nroot_index 0\n"
        ));
        let mut flipped = F.to_bytes()?;
        flipped[20] ^= 0x04;
        assert!(matches!(
            Format::parse(p, &flipped),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }

    #[test]
    fn write_and_read() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        F.write(dir.path())?;
        assert_eq!(Format::read(dir.path())?, F);
        Ok(())
    }
}
