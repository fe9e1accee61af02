//! A store: its roots (disks), its fanout, and where each user lives (DESIGN §3).
//!
//! ```text
//! <root>/format                        see `format`
//! <root>/users/<ab>/<cd>/<address>/    one directory per account (fanout_levels levels)
//! <root>/trash/                        deleted accounts on their way out
//! ```
//!
//! A bucket's root is `roots[bucket % roots.len()]`, fixed by the format file.

use std::io;
use std::path::{Path, PathBuf};

use crate::address::Address;
use crate::durable::create_dir_durable;
use crate::error::{Result, StoreError};
use crate::format::Format;
use crate::hash::{Bucket, digest, fanout_dirs};
use crate::limits::{FANOUT_LEVELS_MAX, ROOTS_MAX};

/// Directory of accounts inside a root.
pub const USERS_DIR: &str = "users";
/// Directory of deleted accounts being removed, inside a root.
pub const TRASH_DIR: &str = "trash";

/// An open store. Opening checks (or, on empty roots, creates) the format of every root.
#[derive(Debug)]
pub struct Store {
    roots: Vec<PathBuf>,
    fanout_levels: u8,
}

impl Store {
    /// Opens the store on `roots` (in configuration order), creating it when
    /// `roots[0]/format` does not exist. A configuration that does not match the store
    /// on disk is a `Config` error naming the key.
    pub fn open(roots: &[PathBuf], fanout_levels: u8) -> Result<Store> {
        check_config(roots, fanout_levels)?;
        let store = Store {
            roots: roots.to_vec(),
            fanout_levels,
        };
        if Format::path(&roots[0]).exists() {
            store.check_formats()?;
        } else {
            store.create()?;
        }
        Ok(store)
    }

    /// The roots, in configuration order.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Hex directory levels under `users/`.
    pub fn fanout_levels(&self) -> u8 {
        self.fanout_levels
    }

    /// The root that holds a bucket.
    pub fn root_for(&self, bucket: Bucket) -> &Path {
        &self.roots[usize::from(bucket.0) % self.roots.len()]
    }

    /// `<root>/users/<ab>/<cd>/<address>`: the account's directory (it may not exist).
    pub fn user_dir(&self, addr: &Address) -> PathBuf {
        let digest = digest(addr);
        let mut dir = self.root_for(Bucket::of_digest(&digest)).join(USERS_DIR);
        dir.extend(fanout_dirs(&digest, self.fanout_levels));
        dir.push(addr.as_str());
        dir
    }

    fn format_of(&self, root_index: usize) -> Format {
        Format {
            fanout_levels: self.fanout_levels,
            roots: self.roots.len(),
            root_index,
        }
    }

    /// Creates every root. `roots[0]/format` is written last: its presence means the
    /// store is complete, so a crash part-way leaves roots that the next open finishes.
    fn create(&self) -> Result<()> {
        for (index, root) in self.roots.iter().enumerate() {
            if root.join(USERS_DIR).exists() && !Format::path(root).exists() {
                return Err(StoreError::corrupt(
                    root,
                    "users/ exists but the format file is missing",
                ));
            }
            match Format::read(root) {
                Ok(found) if found == self.format_of(index) => {}
                Ok(found) => {
                    return Err(mismatch(&self.roots[0], root, index, found, self));
                }
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for (index, root) in self.roots.iter().enumerate().rev() {
            create_dir_durable(&root.join(USERS_DIR))?;
            self.format_of(index).write(root)?;
        }
        Ok(())
    }

    fn check_formats(&self) -> Result<()> {
        for (index, root) in self.roots.iter().enumerate() {
            let found = match Format::read(root) {
                Ok(found) => found,
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::Config {
                        key: "store.roots",
                        reason: format!(
                            "{} has no format file; it is not a root of the store at {}",
                            root.display(),
                            self.roots[0].display()
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
            if found != self.format_of(index) {
                return Err(mismatch(&self.roots[0], root, index, found, self));
            }
        }
        Ok(())
    }
}

fn check_config(roots: &[PathBuf], fanout_levels: u8) -> Result<()> {
    if roots.is_empty() || roots.len() > ROOTS_MAX {
        return Err(StoreError::Config {
            key: "store.roots",
            reason: format!(
                "between 1 and {ROOTS_MAX} roots are needed, not {}",
                roots.len()
            ),
        });
    }
    if !(1..=FANOUT_LEVELS_MAX).contains(&fanout_levels) {
        return Err(StoreError::Config {
            key: "store.fanout_levels",
            reason: format!("must be 1 to {FANOUT_LEVELS_MAX}, not {fanout_levels}"),
        });
    }
    Ok(())
}

/// Explains the first field where a root's format differs from the configuration.
fn mismatch(first: &Path, root: &Path, index: usize, found: Format, store: &Store) -> StoreError {
    if found.fanout_levels != store.fanout_levels {
        return StoreError::Config {
            key: "store.fanout_levels",
            reason: format!(
                "configured {} but the store at {} was created with {}",
                store.fanout_levels,
                first.display(),
                found.fanout_levels
            ),
        };
    }
    let reason = if found.roots != store.roots.len() {
        format!(
            "configured {} roots but the store at {} was created with {}",
            store.roots.len(),
            root.display(),
            found.roots
        )
    } else {
        format!(
            "{} is root number {} of the store but is configured as number {}",
            root.display(),
            found.root_index + 1,
            index + 1
        )
    };
    StoreError::Config {
        key: "store.roots",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> Result<tempfile::TempDir> {
        tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn creates_then_reopens() -> Result<()> {
        let dir = tmp()?;
        let roots = vec![dir.path().join("r0"), dir.path().join("r1")];
        let store = Store::open(&roots, 2)?;
        for (i, root) in roots.iter().enumerate() {
            assert!(root.join("users").is_dir());
            assert_eq!(
                Format::read(root)?,
                Format {
                    fanout_levels: 2,
                    roots: 2,
                    root_index: i
                }
            );
        }
        assert_eq!(store.roots(), roots.as_slice());
        assert_eq!(store.fanout_levels(), 2);
        Store::open(&roots, 2)?;
        Ok(())
    }

    #[test]
    fn user_dir_layout() -> Result<()> {
        let dir = tmp()?;
        let roots = vec![dir.path().join("r0"), dir.path().join("r1")];
        let store = Store::open(&roots, 2)?;
        // md5("alice@example.com") = c160f8cc…, bucket 0xc160 is even: root 0.
        let a = addr("Alice@Example.com");
        assert_eq!(store.root_for(Bucket::of(&a)), roots[0]);
        assert_eq!(
            store.user_dir(&a),
            roots[0].join("users/c1/60/alice@example.com")
        );
        // md5("bob@example.com") = 4b9bb806…, bucket 0x4b9b is odd: root 1.
        assert_eq!(
            store.user_dir(&addr("bob@example.com")),
            roots[1].join("users/4b/9b/bob@example.com")
        );
        let one = Store::open(&[dir.path().join("one")], 3)?;
        assert_eq!(
            one.user_dir(&a),
            dir.path().join("one/users/c1/60/f8/alice@example.com")
        );
        Ok(())
    }

    #[test]
    fn mismatched_configuration() -> Result<()> {
        let dir = tmp()?;
        let r0 = dir.path().join("r0");
        let r1 = dir.path().join("r1");
        Store::open(&[r0.clone(), r1.clone()], 2)?;
        let key_of = |r: Result<Store>| match r {
            Err(StoreError::Config { key, reason }) => (key, reason),
            other => panic!("expected Config, got {other:?}"),
        };
        let (key, reason) = key_of(Store::open(&[r0.clone(), r1.clone()], 3));
        assert_eq!(key, "store.fanout_levels");
        assert!(reason.ends_with("was created with 2"), "{reason}");
        assert_eq!(
            key_of(Store::open(std::slice::from_ref(&r0), 2)).0,
            "store.roots"
        );
        assert_eq!(
            key_of(Store::open(&[r1.clone(), r0.clone()], 2)).0,
            "store.roots"
        );
        let r2 = dir.path().join("r2");
        assert_eq!(
            key_of(Store::open(&[r0.clone(), r1.clone(), r2], 2)).0,
            "store.roots"
        );
        assert_eq!(
            key_of(Store::open(&[r0.clone(), r1.clone()], 0)).0,
            "store.fanout_levels"
        );
        assert_eq!(
            key_of(Store::open(&[r0.clone(), r1.clone()], 4)).0,
            "store.fanout_levels"
        );
        assert_eq!(key_of(Store::open(&[], 2)).0, "store.roots");
        // A new first root in front of an existing one is not silently adopted.
        let fresh = dir.path().join("fresh");
        assert_eq!(key_of(Store::open(&[fresh, r0], 2)).0, "store.roots");
        Ok(())
    }

    #[test]
    fn damaged_format_is_corrupt() -> Result<()> {
        let dir = tmp()?;
        let r0 = dir.path().join("r0");
        Store::open(std::slice::from_ref(&r0), 2)?;
        let path = Format::path(&r0);
        std::fs::write(&path, b"msgstore-format 1\n").map_err(|e| StoreError::io(&path, e))?;
        assert!(matches!(
            Store::open(std::slice::from_ref(&r0), 2),
            Err(StoreError::Corrupt { .. })
        ));
        std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        assert!(matches!(
            Store::open(&[r0], 2),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }
}
