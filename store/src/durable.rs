//! Durable file-system steps (DESIGN §3, durability): a change is on disk, data and
//! directory entries both, before these return `Ok`.
//!
//! All synchronous `std::fs`: the engine runs them on a helper thread or on the owning
//! shard off the hot path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, StoreError};

/// Makes temp names unique within the process; the pid makes them unique across processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically: readers see the old file or the new one,
/// never a mix, and after `Ok` the new one survives a crash.
///
/// Writes `.NAME.tmp.PID.N` in the same directory, fdatasyncs it, renames it over
/// `path` and fsyncs the directory. On error the temp file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::io(path, io::Error::other("path has no file name")))?;
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy())?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_data())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        });
    if let Err(source) = written {
        // Best effort: the real error is the one to report.
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io(path, source));
    }
    sync_dir(dir)
}

/// Creates (or truncates) `path`, writes `bytes` and fdatasyncs it. No directory sync: the
/// caller renames it into place and makes the entry durable.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    File::create(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_data()))
        .map_err(|e| StoreError::io(path, e))
}

/// Longest file name Linux file systems accept, in bytes.
const FILE_NAME_BYTES_MAX: usize = 255;

/// `PID.N`, unique among the names this process makes (the pid separates processes).
pub(crate) fn unique_suffix() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}

/// `prefix` + `suffix`, with `prefix` cut short so the name fits in a directory entry.
pub(crate) fn fit_name(prefix: &str, suffix: &str) -> String {
    let mut end = FILE_NAME_BYTES_MAX
        .saturating_sub(suffix.len())
        .min(prefix.len());
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &prefix[..end])
}

fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File)> {
    loop {
        let tmp = dir.join(fit_name(
            &format!(".{name}"),
            &format!(".tmp.{}", unique_suffix()),
        ));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // Left by a crashed process that had our pid: try the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::io(tmp, e)),
        }
    }
}

/// fsyncs a directory so the entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// `create_dir_all`, then fsyncs the parent of every directory it created, so the whole
/// chain survives a crash. An existing directory is fine.
pub fn create_dir_durable(path: &Path) -> Result<()> {
    let missing: Vec<&Path> = path.ancestors().take_while(|p| !p.exists()).collect();
    fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))?;
    for created in missing {
        sync_dir(parent_of(created)?)?;
    }
    Ok(())
}

/// Removes a directory tree and fsyncs its parent. A missing directory is fine.
pub fn remove_dir_durable(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(path, e)),
    }
    sync_dir(parent_of(path)?)
}

/// Renames `from` to `to` and fsyncs both parent directories (once when they are the same).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| StoreError::io(from, e))?;
    let to_dir = parent_of(to)?;
    sync_dir(to_dir)?;
    let from_dir = parent_of(from)?;
    if from_dir != to_dir {
        sync_dir(from_dir)?;
    }
    Ok(())
}

/// Reads a whole file of at most `max_bytes`; a larger file is `Corrupt`, never read whole.
/// `NotFound` comes back as an `Io` error whose source kind is `NotFound`.
pub fn read_bounded(path: &Path, max_bytes: usize) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(path, e))?;
    if bytes.len() > max_bytes {
        return Err(StoreError::corrupt(
            path,
            format!("file is larger than {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

/// The directory holding `path`; `.` for a bare relative name.
fn parent_of(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(StoreError::io(
            path,
            io::Error::other("path has no parent directory"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("profile");
        write_atomic(&path, b"one")?;
        write_atomic(&path, b"two")?;
        assert_eq!(read_bounded(&path, 3)?, b"two");
        assert_eq!(entries(dir.path()), ["profile"]);
        Ok(())
    }

    #[test]
    fn write_atomic_cleans_up_on_error() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        // Renaming a file over a non-empty directory fails after the temp file was written.
        let target = dir.path().join("occupied");
        fs::create_dir(&target).map_err(|e| StoreError::io(&target, e))?;
        fs::write(target.join("x"), b"").map_err(|e| StoreError::io(&target, e))?;
        assert!(write_atomic(&target, b"data").is_err());
        assert_eq!(entries(dir.path()), ["occupied"]);
        // A missing directory is an error too, not a panic.
        assert!(write_atomic(&dir.path().join("no/such/file"), b"").is_err());
        Ok(())
    }

    #[test]
    fn dirs_create_and_remove() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let deep = dir.path().join("a/b/c");
        create_dir_durable(&deep)?;
        create_dir_durable(&deep)?;
        assert!(deep.is_dir());
        rename_durable(&dir.path().join("a/b"), &dir.path().join("b"))?;
        assert!(dir.path().join("b/c").is_dir());
        remove_dir_durable(&dir.path().join("b"))?;
        remove_dir_durable(&dir.path().join("b"))?;
        assert_eq!(entries(dir.path()), ["a"]);
        Ok(())
    }

    #[test]
    fn long_names_fit() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("x".repeat(FILE_NAME_BYTES_MAX));
        write_atomic(&path, b"ok")?;
        assert_eq!(read_bounded(&path, 2)?, b"ok");
        assert_eq!(fit_name("abc", ".1"), "abc.1");
        assert_eq!(fit_name(&"a".repeat(300), ".1").len(), FILE_NAME_BYTES_MAX);
        Ok(())
    }

    #[test]
    fn read_bounded_rejects_big_files() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let path = dir.path().join("f");
        write_atomic(&path, b"12345")?;
        assert_eq!(read_bounded(&path, 5)?, b"12345");
        assert!(matches!(
            read_bounded(&path, 4),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }
}
