//! A large APPEND staged from a file (`Mailstore::stage_append_file`): applied by
//! linking the file into the mailbox, and replayed after a crash between the journal's
//! fdatasync and the apply.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::delivery::{Flags, InternalDate, Mailstore, Outcome, cache_record};
use store::{Address, NewAccount, Result, Store, StoreError, UsageFlags};

fn io<T>(r: std::io::Result<T>, what: impl AsRef<Path>) -> Result<T> {
    r.map_err(|e| StoreError::io(what.as_ref(), e))
}

fn user() -> Result<Address> {
    Address::parse("big@example.com")
}

fn open(root: &Path) -> Result<Mailstore> {
    let store = Arc::new(Store::open(&[root.to_owned()], 2)?);
    if store.account(&user()?).is_err() {
        store.create_account(NewAccount {
            address: user()?,
            name: String::new(),
            quota_bytes: 0,
            flags: UsageFlags::default_new(),
            password_hash: None,
        })?;
    }
    let (ms, report) = Mailstore::open(store, 0)?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    Ok(ms)
}

/// Writes a staged message as the engine does (durable before it is staged).
fn stage_file(ms: &Mailstore, name: &str, message: &[u8]) -> Result<PathBuf> {
    let dir = ms.staging_dir(&user()?);
    io(fs::create_dir_all(&dir), &dir)?;
    let path = dir.join(name);
    io(fs::write(&path, message), &path)?;
    Ok(path)
}

fn message(n: usize) -> Vec<u8> {
    let mut m = b"Subject: staged\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    for i in 0..n {
        m.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    m
}

fn stage(ms: &mut Mailstore, path: PathBuf, msg: &[u8]) -> Result<store::delivery::Ticket> {
    ms.stage_append_file(
        &user()?,
        "INBOX",
        path,
        msg.len() as u64,
        cache_record(msg),
        &Flags::default(),
        InternalDate::now(),
    )
}

#[test]
fn staged_file_is_linked_into_the_mailbox() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let mut ms = open(dir.path())?;
    let msg = message(10_000);
    let path = stage_file(&ms, "a", &msg)?;
    let ticket = stage(&mut ms, path.clone(), &msg)?;
    while let Some(t) = ms.sync_target()? {
        io(t.run(), "sync")?;
        ms.synced(&t);
    }
    let outcome = ms.complete(&ticket);
    assert!(matches!(
        outcome,
        Some(Ok(Outcome::Delivered { uid: 1, .. }))
    ));
    let view = ms.open_mailbox(&user()?, "INBOX")?;
    assert_eq!(io(fs::read(view.message_path(1)), "message")?, msg);
    assert_eq!(view.get(1).map(|r| r.size), Some(msg.len() as u64));
    assert!(store::message::cache::decode(&view.cache_record(1)?).is_ok());
    assert_eq!(ms.usage(&user()?)?.bytes, msg.len() as u64);
    // A refused staging (no such mailbox) takes the file away too.
    let other = stage_file(&ms, "b", &msg)?;
    let refused = ms.stage_append_file(
        &user()?,
        "Nowhere",
        other.clone(),
        msg.len() as u64,
        cache_record(&msg),
        &Flags::default(),
        InternalDate::now(),
    );
    assert!(matches!(refused, Err(StoreError::NoSuchMailbox { .. })));
    assert!(!other.exists());
    Ok(())
}

#[test]
fn crash_after_the_journal_sync_replays_the_staged_file() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let crashed = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let msg = message(5_000);
    {
        let mut ms = open(dir.path())?;
        let path = stage_file(&ms, "a", &msg)?;
        stage(&mut ms, path, &msg)?;
        let t = ms.sync_target()?.expect("something to sync");
        io(t.run(), "sync")?;
        // The crash: the journal is durable, nothing was applied.
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", dir.path().display()))
            .arg(crashed.path())
            .status();
        assert!(io(status, "cp")?.success());
        ms.synced(&t);
    }
    let mut ms = open(crashed.path())?;
    let view = ms.open_mailbox(&user()?, "INBOX")?;
    assert_eq!(view.uids(), vec![1]);
    assert_eq!(io(fs::read(view.message_path(1)), "message")?, msg);
    assert!(store::message::cache::decode(&view.cache_record(1)?).is_ok());
    // Replay ended with a checkpoint: the staged name is gone, the message stays.
    let staging = ms.staging_dir(&user()?);
    assert_eq!(io(fs::read_dir(&staging), &staging)?.count(), 0);
    Ok(())
}

/// Uploads that never reached the journal (a client gone mid-upload, a server stopped)
/// are removed when the store next opens, at the user's first use; a file written after
/// the open (an upload in progress) stays. Each removal is reported as a repair.
#[test]
fn orphaned_uploads_are_swept() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    {
        let ms = open(dir.path())?;
        for name in ["orphan-1", "orphan-2"] {
            let path = stage_file(&ms, name, b"Subject: cut\r\n\r\npart")?;
            let file = io(fs::File::options().write(true).open(&path), &path)?;
            let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
            io(file.set_modified(past), &path)?;
        }
    }
    let mut ms = open(dir.path())?;
    let fresh = stage_file(&ms, "fresh", b"Subject: uploading\r\n\r\n")?;
    ms.open_mailbox(&user()?, "INBOX")?;
    let staging = ms.staging_dir(&user()?);
    let mut left: Vec<String> = io(fs::read_dir(&staging), &staging)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| StoreError::io(&staging, e))?;
    left.sort();
    assert_eq!(left, vec!["fresh".to_string()]);
    assert!(fresh.exists());
    let repairs = ms.take_repairs();
    assert_eq!(
        repairs
            .iter()
            .filter(|r| r.ends_with("orphaned upload -> removed"))
            .count(),
        2,
        "{repairs:?}"
    );
    Ok(())
}
