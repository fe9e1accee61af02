//! Compaction: after a checkpoint, expunged records and dead cache bytes are reclaimed,
//! crash-safely (a new cache generation, synced, then the index that names it).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use store::delivery::{Flags, InternalDate, Mailstore};
use store::mailbox::{Index, MailboxView};
use store::{Address, NewAccount, Result, Store, StoreError, UsageFlags};

fn flush(ms: &mut Mailstore) -> Result<()> {
    while let Some(s) = ms.sync_target()? {
        s.run().map_err(|e| StoreError::io("sync", e))?;
        ms.synced(&s);
    }
    Ok(())
}

fn checkpoint(ms: &mut Mailstore) -> Result<()> {
    let c = ms
        .prepare_checkpoint()?
        .ok_or_else(|| StoreError::corrupt("checkpoint", "not ready"))?;
    c.run().map_err(|e| StoreError::io("syncfs", e))?;
    ms.finish_checkpoint(c)
}

/// A store in `dir` with one account, `user`, and its shard 0 opened.
fn store_with(dir: &Path, user: &Address) -> Result<(Arc<Store>, Mailstore)> {
    let store = Arc::new(Store::open(&[dir.join("r0")], 2)?);
    store.create_account(account(user))?;
    let (ms, _) = Mailstore::open(store.clone(), 0)?;
    Ok((store, ms))
}

fn account(user: &Address) -> NewAccount {
    NewAccount {
        address: user.clone(),
        name: String::new(),
        quota_bytes: 0,
        flags: UsageFlags::default_new(),
        password_hash: None,
    }
}

/// Stages one delivery to `user`'s INBOX.
fn deliver(ms: &mut Mailstore, user: &Address, message: &[u8]) -> Result<()> {
    ms.stage_deliver(user, None, message, &Flags::default(), InternalDate::now())?;
    Ok(())
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cache") || n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn check(view: &MailboxView, live: &[u32]) {
    assert_eq!(view.uids(), live);
    for &uid in live {
        assert!(view.cache_record(uid).is_ok(), "cache of {uid}");
    }
}

#[test]
fn expunged_records_and_cache_bytes_are_reclaimed() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let user = Address::parse("compact@example.com")?;
    let (store, mut ms) = store_with(dir.path(), &user)?;
    for n in 0..300 {
        let m = format!("Subject: {n}\r\nFrom: a@b.c\r\n\r\n{}\r\n", "x".repeat(n));
        deliver(&mut ms, &user, m.as_bytes())?;
    }
    flush(&mut ms)?;
    let gone: Vec<u32> = (1..=300).filter(|u| u % 4 != 0).collect();
    let live: Vec<u32> = (1..=300).filter(|u| u % 4 == 0).collect();
    ms.stage_expunge(&user, "INBOX", &gone)?;
    flush(&mut ms)?;
    let before = ms.open_mailbox(&user, "INBOX")?;
    let inbox = store.user_dir(&user).join("mail/1");
    let index_bytes = fs::metadata(inbox.join("index"))
        .map_err(|e| StoreError::io("i", e))?
        .len();
    // The first checkpoint unlinks the expunged files; compaction follows at once.
    checkpoint(&mut ms)?;
    assert_eq!(
        names(&inbox),
        ["cache.1"],
        "new generation in, old cache out"
    );
    let ix = Index::open(&inbox.join("index"))?;
    assert_eq!(ix.records().len(), live.len(), "tombstones dropped");
    assert_eq!(ix.header().cache_gen, 1);
    assert_eq!(ix.uidnext(), 301, "UIDNEXT stays above the dropped UIDs");
    assert!(
        fs::metadata(inbox.join("index"))
            .map_err(|e| StoreError::io("i", e))?
            .len()
            < index_bytes
    );
    drop(ix);
    // A view taken before keeps reading its snapshot; a new one reads the new files.
    check(&before, &live);
    let after = ms.open_mailbox(&user, "INBOX")?;
    check(&after, &live);
    assert_eq!(after.uidnext(), 301);
    assert_eq!(after.highest_modseq(), before.highest_modseq());
    // Deliveries go on into the new generation.
    deliver(&mut ms, &user, b"Subject: new\r\n\r\nhi\r\n")?;
    flush(&mut ms)?;
    let mut live_now = live.clone();
    live_now.push(301);
    check(&ms.open_mailbox(&user, "INBOX")?, &live_now);
    // A crash after the next generation was written but before the index switched: the
    // leftover is removed on open and the pair in use stays.
    drop(ms);
    fs::write(inbox.join("cache.2"), b"half written").map_err(|e| StoreError::io("c", e))?;
    let (mut ms, report) = Mailstore::open(store.clone(), 0)?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    check(&ms.open_mailbox(&user, "INBOX")?, &live_now);
    assert_eq!(names(&inbox), ["cache.1"]);
    // Reconstruct goes back to generation 0 and takes no cache file for a message.
    let r = ms.reconstruct_user(&user, |_| {})?;
    assert_eq!(r.messages, live_now.len() as u64, "{:?}", r.repairs);
    assert_eq!(names(&inbox), ["cache"]);
    check(&ms.open_mailbox(&user, "INBOX")?, &live_now);
    Ok(())
}

/// The engine's way: the segments go on the shard, the expunged files on another thread;
/// until `expunged_removed` no checkpoint starts, and a file that could not be removed is
/// queued again (with a repair line), not forgotten.
#[test]
fn expunged_files_are_removed_apart_from_the_checkpoint() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let user = Address::parse("apart@example.com")?;
    let (store, mut ms) = store_with(dir.path(), &user)?;
    for n in 0..40 {
        let m = format!("Subject: {n}\r\nFrom: a@b.c\r\n\r\nbody {n}\r\n");
        deliver(&mut ms, &user, m.as_bytes())?;
    }
    flush(&mut ms)?;
    let inbox = store.user_dir(&user).join("mail/1");
    ms.stage_expunge(&user, "INBOX", &(1..=30).collect::<Vec<u32>>())?;
    flush(&mut ms)?;
    let c = ms
        .prepare_checkpoint()?
        .ok_or_else(|| StoreError::corrupt("checkpoint", "not ready"))?;
    c.run().map_err(|e| StoreError::io("syncfs", e))?;
    let files = ms.finish_checkpoint_segments(c)?;
    assert_eq!(files.len(), 30);
    // Nothing removed yet, and no second checkpoint while the removal is out.
    assert!(inbox.join("1").exists() && inbox.join("30").exists());
    assert!(ms.prepare_checkpoint()?.is_none());
    let mut failed = files.remove();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!inbox.join("1").exists() && !inbox.join("30").exists());
    // Pretend file 7 could not be removed: it is queued again.
    fs::write(inbox.join("7"), b"still here").map_err(|e| StoreError::io("7", e))?;
    failed.push((inbox.join("7"), "test".to_owned()));
    ms.expunged_removed(failed);
    assert!(
        ms.take_repairs()
            .iter()
            .any(|r| r.contains("not removed (test)")),
        "repair line"
    );
    let view = ms.open_mailbox(&user, "INBOX")?;
    check(&view, &(31..=40).collect::<Vec<u32>>());
    // The next checkpoint removes it.
    deliver(&mut ms, &user, b"Subject: x\r\n\r\ny\r\n")?;
    flush(&mut ms)?;
    checkpoint(&mut ms)?;
    assert!(!inbox.join("7").exists());
    Ok(())
}

/// An account deleted with expunged files still queued, then created again under the same
/// address: the old queue must not remove the new account's files (same paths: mailbox ids
/// start at 1 again, UIDs too).
#[test]
fn a_deleted_accounts_queued_files_spare_its_successor() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let user = Address::parse("again@example.com")?;
    let (store, mut ms) = store_with(dir.path(), &user)?;
    let three = |ms: &mut Mailstore| -> Result<()> {
        for i in 0..3 {
            deliver(
                ms,
                &user,
                format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes(),
            )?;
        }
        flush(ms)
    };
    three(&mut ms)?;
    ms.stage_expunge(&user, "INBOX", &[1, 2])?;
    flush(&mut ms)?;
    store.delete_account(&user)?;
    ms.account_deleted(&user);
    store.create_account(account(&user))?;
    three(&mut ms)?;
    let inbox = store.user_dir(&user).join("mail/1");
    checkpoint(&mut ms)?;
    for uid in 1..=3 {
        assert!(
            inbox.join(uid.to_string()).exists(),
            "new message {uid} kept"
        );
    }
    check(&ms.open_mailbox(&user, "INBOX")?, &[1, 2, 3]);
    Ok(())
}
