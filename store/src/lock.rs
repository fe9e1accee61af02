//! `<root>/lock`: one process at a time owns a store (the server, or an offline CLI
//! verb). An advisory `flock` is held for the life of [`StoreLock`]; the kernel drops it
//! when the process dies, so a crash never leaves a stale lock. The file holds the
//! owner's pid in decimal followed by `\n`, only to tell the operator who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::error::{Result, StoreError};

/// File name of the lock inside the first root.
pub const LOCK_FILE: &str = "lock";

/// An exclusive hold on a store; released when dropped (the fd is closed).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// Takes the lock on `root` or fails with `InUse` naming the holder's pid.
    pub fn try_acquire(root: &Path) -> Result<StoreLock> {
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(StoreError::InUse {
                    path: root.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(e) => return Err(StoreError::io(&path, e.into())),
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(StoreLock { _file: file, path })
    }

    /// The pid of whoever holds the lock on `root`, or `None` when it is free (or when
    /// the holder has not written its pid yet: [`StoreLock::try_acquire`] decides).
    pub fn holder(root: &Path) -> Option<u32> {
        let mut file = File::open(root.join(LOCK_FILE)).ok()?;
        match flock(&file, FlockOperation::NonBlockingLockShared) {
            // Free: our probe lock goes away when `file` is closed.
            Ok(()) => None,
            Err(_) => read_pid(&mut file),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid written by the holder; `None` when the file is empty or not a number.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_in_use_with_our_pid() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        assert_eq!(StoreLock::holder(dir.path()), None);
        let lock = StoreLock::try_acquire(dir.path())?;
        assert_eq!(lock.path(), dir.path().join("lock"));
        match StoreLock::try_acquire(dir.path()) {
            Err(StoreError::InUse { path, pid }) => {
                assert_eq!(path, dir.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        assert_eq!(StoreLock::holder(dir.path()), Some(std::process::id()));
        drop(lock);
        assert_eq!(StoreLock::holder(dir.path()), None);
        let _again = StoreLock::try_acquire(dir.path())?;
        Ok(())
    }

    #[test]
    fn stale_pid_text_is_replaced() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("lock");
        std::fs::write(&path, b"999999999999 garbage\n").map_err(|e| StoreError::io(&path, e))?;
        let _lock = StoreLock::try_acquire(dir.path())?;
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        assert_eq!(text, format!("{}\n", std::process::id()));
        Ok(())
    }

    #[test]
    fn missing_root_is_an_io_error() {
        let r = StoreLock::try_acquire(Path::new("/nonexistent/msgstore/root"));
        assert!(matches!(r, Err(StoreError::Io { .. })));
    }
}
