//! A full disk, for real: the store on a small tmpfs (the tests run as root, here and in
//! CI). A delivery that does not fit fails cleanly — an error, no partial message file,
//! the index sound — every acknowledged message stays readable, and once a checkpoint
//! frees the journal's space deliveries work again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use store::delivery::{Flags, InternalDate, Mailstore, Outcome};
use store::mailbox::Index;
use store::{Address, NewAccount, Result, Store, StoreError, UsageFlags};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fs");
        fs::create_dir(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount(8) is needed");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (the test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn message(n: u32) -> Vec<u8> {
    let mut m = format!("Subject: {n}\r\n\r\n").into_bytes();
    m.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, 60_000));
    m.extend_from_slice(b"\r\n");
    m
}

/// Stages one delivery and flushes it; the outcome (or the staging error).
fn deliver(ms: &mut Mailstore, user: &Address, n: u32) -> Result<Outcome> {
    let t = ms.stage_deliver(
        user,
        None,
        &message(n),
        &Flags::default(),
        InternalDate::now(),
    )?;
    while let Some(s) = ms.sync_target()? {
        s.run().map_err(|e| StoreError::io("sync", e))?;
        ms.synced(&s);
    }
    ms.complete(&t)
        .unwrap_or_else(|| Err(StoreError::corrupt("ticket", "not complete")))
}

fn checkpoint(ms: &mut Mailstore) -> Result<()> {
    assert!(ms.checkpoint_due(), "a full disk makes a checkpoint due");
    let c = ms
        .prepare_checkpoint()?
        .ok_or_else(|| StoreError::corrupt("checkpoint", "not ready"))?;
    c.run().map_err(|e| StoreError::io("syncfs", e))?;
    ms.finish_checkpoint(c)
}

/// Files of a mailbox folder other than `index` and `cache`.
fn message_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "index" && n != "cache")
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| n.parse::<u32>().unwrap_or(u32::MAX));
    names
}

#[test]
fn full_disk_fails_deliveries_cleanly() -> Result<()> {
    let fs_ = Tmpfs::mount(4 << 20);
    let store = Arc::new(Store::open(&[fs_.path.join("root")], 2)?);
    let user = Address::parse("full@example.com")?;
    store.create_account(NewAccount {
        address: user.clone(),
        name: String::new(),
        quota_bytes: 0,
        flags: UsageFlags::default_new(),
        password_hash: None,
    })?;
    let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
    let mut acknowledged = Vec::new();
    let mut failure = None;
    for n in 1..200 {
        match deliver(&mut ms, &user, n) {
            Ok(Outcome::Delivered { uid, .. }) => acknowledged.push((uid, n)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("a 4 MB file system fills up");
    assert!(
        failure.to_string().contains("No space left on device"),
        "{failure}"
    );
    assert!(acknowledged.len() >= 5, "{} delivered", acknowledged.len());
    let inbox = store.user_dir(&user).join("mail/1");
    let check = |ms: &mut Mailstore, acknowledged: &[(u32, u32)]| -> Result<()> {
        // No partial message: exactly the acknowledged files, each whole.
        let want: Vec<String> = acknowledged.iter().map(|(u, _)| u.to_string()).collect();
        assert_eq!(message_files(&inbox), want);
        let view = ms.open_mailbox(&user, "INBOX")?;
        assert_eq!(
            view.uids(),
            acknowledged.iter().map(|(u, _)| *u).collect::<Vec<_>>()
        );
        for (uid, n) in acknowledged {
            let bytes = fs::read(view.message_path(*uid)).map_err(|e| StoreError::io("m", e))?;
            assert_eq!(bytes, message(*n));
            assert!(view.cache_record(*uid).is_ok());
        }
        // The index on disk is sound for the strict reader.
        Index::open(&inbox.join("index"))?;
        Ok(())
    };
    check(&mut ms, &acknowledged)?;
    // A checkpoint gives the journal's space back; deliveries work again.
    checkpoint(&mut ms)?;
    match deliver(&mut ms, &user, 1000)? {
        Outcome::Delivered { uid, .. } => acknowledged.push((uid, 1000)),
        other => panic!("{other:?}"),
    }
    check(&mut ms, &acknowledged)?;
    // Restart (replay) sees the same.
    drop(ms);
    let (mut ms, report) = Mailstore::open(store.clone(), 0)?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    check(&mut ms, &acknowledged)?;
    Ok(())
}

/// The journal has room but the user's disk is full: the delivery fails when it is
/// applied, after its journal record is durable. No partial message file is left, the
/// index stays sound, and a checkpoint (which retires that record) brings back a store
/// that restarts cleanly with exactly the acknowledged messages.
#[test]
fn full_user_disk_fails_the_apply_cleanly() -> Result<()> {
    let fs_ = Tmpfs::mount(1 << 20);
    let big = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    // bob@example.com's bucket is odd: his tree lives on the second root (the tmpfs), the
    // journal on the first.
    let roots = [big.path().join("r0"), fs_.path.join("r1")];
    let store = Arc::new(Store::open(&roots, 2)?);
    let user = Address::parse("bob@example.com")?;
    store.create_account(NewAccount {
        address: user.clone(),
        name: String::new(),
        quota_bytes: 0,
        flags: UsageFlags::default_new(),
        password_hash: None,
    })?;
    assert!(store.user_dir(&user).starts_with(&fs_.path));
    let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
    let mut acknowledged = Vec::new();
    let mut failure = None;
    for n in 1..100 {
        match deliver(&mut ms, &user, n) {
            Ok(Outcome::Delivered { uid, .. }) => acknowledged.push((uid, n)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("a 1 MB file system fills up");
    assert!(
        failure.to_string().contains("No space left on device"),
        "{failure}"
    );
    let inbox = store.user_dir(&user).join("mail/1");
    let want: Vec<String> = acknowledged.iter().map(|(u, _)| u.to_string()).collect();
    assert_eq!(message_files(&inbox), want, "no partial message file");
    Index::open(&inbox.join("index"))?;
    let view = ms.open_mailbox(&user, "INBOX")?;
    assert_eq!(view.uids().len(), acknowledged.len());
    // Make room and retire the journal; a restart replays nothing and serves the same.
    let t = ms.stage_expunge(&user, "INBOX", &[acknowledged[0].0])?;
    while let Some(s) = ms.sync_target()? {
        s.run().map_err(|e| StoreError::io("sync", e))?;
        ms.synced(&s);
    }
    assert!(matches!(ms.complete(&t), Some(Ok(_))));
    acknowledged.remove(0);
    checkpoint(&mut ms)?;
    drop(ms);
    let (mut ms, report) = Mailstore::open(store.clone(), 0)?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let want: Vec<String> = acknowledged.iter().map(|(u, _)| u.to_string()).collect();
    assert_eq!(message_files(&inbox), want);
    let view = ms.open_mailbox(&user, "INBOX")?;
    for (uid, n) in &acknowledged {
        let bytes = fs::read(view.message_path(*uid)).map_err(|e| StoreError::io("m", e))?;
        assert_eq!(bytes, message(*n));
    }
    match deliver(&mut ms, &user, 500)? {
        Outcome::Delivered { .. } => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}
