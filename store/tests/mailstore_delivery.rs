//! The Mailstore API end to end on a temp store: stage → sync → complete, reading,
//! mailboxes, COPY/MOVE, flags, expunge, quota, notifications, group commit.

use std::sync::Arc;

use store::delivery::{Flags, InternalDate, Mailstore, Outcome, Ticket};
use store::journal::record::FlagMode;
use store::mailbox::{SpecialUse, SystemFlags};
use store::{Address, NewAccount, Result, Store, StoreError, UsageFlags};

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    user: Address,
}

fn env(quota_bytes: u64) -> Result<Env> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let store = Arc::new(Store::open(
        &[dir.path().join("r0"), dir.path().join("r1")],
        2,
    )?);
    let user = Address::parse("alice@example.com")?;
    store.create_account(NewAccount {
        address: user.clone(),
        name: "Alice".into(),
        quota_bytes,
        flags: UsageFlags::default_new(),
        password_hash: None,
    })?;
    Ok(Env {
        _dir: dir,
        store,
        user,
    })
}

/// One group commit: fdatasync what is staged, apply it.
fn flush(ms: &mut Mailstore) -> Result<Vec<u64>> {
    let mut done = Vec::new();
    while let Some(t) = ms.sync_target()? {
        t.run().map_err(|e| StoreError::io("sync", e))?;
        done.extend(ms.synced(&t));
    }
    Ok(done)
}

fn outcome(ms: &mut Mailstore, t: &Ticket) -> Result<Outcome> {
    ms.complete(t)
        .unwrap_or_else(|| Err(StoreError::corrupt("ticket", "not complete")))
}

fn msg(n: usize) -> Vec<u8> {
    format!("From: a@b.c\nSubject: message {n}\n\nbody {n}\n").into_bytes()
}

#[test]
fn deliver_is_invisible_until_synced_then_byte_exact() -> Result<()> {
    let e = env(0)?;
    let (mut ms, report) = Mailstore::open(e.store.clone(), 0)?;
    assert_eq!(report.records, 0);
    let raw = b"Subject: x\nX-Bin: \x00\xff\xfe\n\nline\r\nbare\rcr\n".to_vec();
    let t = ms.stage_deliver(&e.user, None, &raw, &Flags::default(), InternalDate::now())?;
    assert!(ms.complete(&t).is_none());
    assert_eq!(ms.open_mailbox(&e.user, "INBOX")?.uids(), Vec::<u32>::new());
    let done = flush(&mut ms)?;
    assert_eq!(done, vec![t.id()]);
    let Outcome::Delivered { uid, uidvalidity } = outcome(&mut ms, &t)? else {
        panic!("not a delivery")
    };
    assert_eq!(uid, 1);
    let view = ms.open_mailbox(&e.user, "inbox")?;
    assert_eq!(view.uidvalidity(), uidvalidity);
    assert_eq!(view.uids(), vec![1]);
    let stored = std::fs::read(view.message_path(1)).map_err(|e| StoreError::io("m", e))?;
    assert_eq!(
        stored,
        b"Subject: x\r\nX-Bin: \x00\xff\xfe\r\n\r\nline\r\nbare\rcr\r\n"
    );
    let cached = store::message::cache::decode(&view.cache_record(1)?);
    assert!(cached.is_ok());
    assert_eq!(view.get(1).map(|r| r.size), Some(stored.len() as u64));
    assert!(!view.cache_record(1)?.is_empty());
    let st = ms.status(&e.user, "INBOX")?;
    assert_eq!((st.messages, st.unseen, st.uidnext), (1, 1, 2));
    assert_eq!(st.size, stored.len() as u64);
    Ok(())
}

#[test]
fn sixty_four_deliveries_share_one_sync() -> Result<()> {
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    let tickets: Vec<Ticket> = (0..64)
        .map(|i| {
            ms.stage_deliver(
                &e.user,
                None,
                &msg(i),
                &Flags::default(),
                InternalDate::now(),
            )
        })
        .collect::<Result<_>>()?;
    let target = ms
        .sync_target()?
        .ok_or_else(|| StoreError::corrupt("t", "no target"))?;
    assert_eq!(target.up_to_seq(), tickets[63].seq());
    // While it runs, no second flush is handed out; a 65th delivery waits for the next.
    let late = ms.stage_deliver(
        &e.user,
        None,
        &msg(64),
        &Flags::default(),
        InternalDate::now(),
    )?;
    assert!(ms.sync_target()?.is_none());
    target.run().map_err(|e| StoreError::io("sync", e))?;
    let done = ms.synced(&target);
    assert_eq!(done.len(), 64);
    for (i, t) in tickets.iter().enumerate() {
        assert!(
            matches!(outcome(&mut ms, t)?, Outcome::Delivered { uid, .. } if uid == i as u32 + 1)
        );
    }
    assert!(ms.complete(&late).is_none());
    assert_eq!(flush(&mut ms)?, vec![late.id()]);
    assert_eq!(ms.open_mailbox(&e.user, "INBOX")?.uids().len(), 65);
    Ok(())
}

#[test]
fn mailboxes_copy_move_flags_expunge() -> Result<()> {
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    let u = &e.user;
    ms.stage_create_mailbox(u, "Archive/2024", Some(SpecialUse::Archive))?;
    ms.stage_create_mailbox(u, "Sent", Some(SpecialUse::Sent))?;
    ms.stage_subscribe(u, "Sent", true)?;
    // APPEND to a mailbox created in the same flush resolves against the staged list.
    let a = ms.stage_append(
        u,
        "Sent",
        &msg(1),
        &Flags {
            system: SystemFlags::SEEN,
            keywords: vec!["$Sent".into()],
        },
        InternalDate {
            unix_secs: 1_600_000_000,
            tz_minutes: 120,
        },
    )?;
    assert!(matches!(
        ms.stage_append(u, "Nope", &msg(1), &Flags::default(), InternalDate::now()),
        Err(StoreError::NoSuchMailbox { .. })
    ));
    for i in 0..3 {
        ms.stage_deliver(u, None, &msg(i), &Flags::default(), InternalDate::now())?;
    }
    flush(&mut ms)?;
    assert!(matches!(
        outcome(&mut ms, &a)?,
        Outcome::Delivered { uid: 1, .. }
    ));
    let names: Vec<String> = ms.list_mailboxes(u)?.into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["INBOX", "Archive", "Archive/2024", "Sent"]);
    let sent = ms.open_mailbox(u, "Sent")?;
    let info = sent
        .info(1)
        .ok_or_else(|| StoreError::corrupt("x", "no info"))?;
    assert_eq!(info.keywords, ["$Sent"]);
    assert_eq!((info.internaldate, info.tz_minutes), (1_600_000_000, 120));

    // COPY hard-links; MOVE copies and expunges the source.
    let c = ms.stage_copy(u, "INBOX", &[1, 2, 99], "Archive/2024")?;
    flush(&mut ms)?;
    assert_eq!(
        outcome(&mut ms, &c)?,
        Outcome::Copied {
            uidvalidity: ms.open_mailbox(u, "Archive/2024")?.uidvalidity(),
            uids: vec![(1, 1), (2, 2)]
        }
    );
    let inbox = ms.open_mailbox(u, "INBOX")?;
    let arch = ms.open_mailbox(u, "Archive/2024")?;
    use std::os::unix::fs::MetadataExt;
    let ino = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .map(|m| m.ino())
            .map_err(|e| StoreError::io(p, e))
    };
    assert_eq!(ino(inbox.message_path(1))?, ino(arch.message_path(1))?);
    let m = ms.stage_move(u, "INBOX", &[3], "Archive/2024")?;
    flush(&mut ms)?;
    assert!(
        matches!(outcome(&mut ms, &m)?, Outcome::Copied { ref uids, .. } if uids == &vec![(3, 3)])
    );
    assert_eq!(ms.open_mailbox(u, "INBOX")?.uids(), vec![1, 2]);

    // STORE bumps modseq only where flags change.
    let before = ms.open_mailbox(u, "INBOX")?.highest_modseq();
    let f = ms.stage_store_flags(
        u,
        "INBOX",
        &[1, 2],
        FlagMode::Add,
        &Flags {
            system: SystemFlags::SEEN | SystemFlags::DELETED,
            keywords: vec!["$Junk".into()],
        },
    )?;
    let g = ms.stage_store_flags(
        u,
        "INBOX",
        &[1],
        FlagMode::Add,
        &Flags {
            system: SystemFlags::SEEN,
            keywords: vec![],
        },
    )?;
    flush(&mut ms)?;
    let Outcome::FlagsChanged { modseq, uids } = outcome(&mut ms, &f)? else {
        panic!()
    };
    assert_eq!(uids, vec![1, 2]);
    assert!(modseq > before);
    assert_eq!(
        outcome(&mut ms, &g)?,
        Outcome::FlagsChanged {
            modseq: modseq + 1,
            uids: vec![]
        }
    );
    let v = ms.open_mailbox(u, "INBOX")?;
    assert_eq!(
        v.info(2).map(|i| i.keywords),
        Some(vec!["$Junk".to_string()])
    );
    assert_eq!(v.status().unseen, 0);
    assert_eq!(v.highest_modseq(), modseq);

    let x = ms.stage_expunge(u, "INBOX", &[1])?;
    flush(&mut ms)?;
    assert_eq!(outcome(&mut ms, &x)?, Outcome::Expunged { uids: vec![1] });
    let v = ms.open_mailbox(u, "INBOX")?;
    assert_eq!(v.uids(), vec![2]);
    assert_eq!(v.uidnext(), 4);
    // The expunged file stays until a checkpoint: the copy in Archive shares it anyway.
    let arch = ms.open_mailbox(u, "Archive/2024")?;
    assert!(arch.message_path(1).exists());

    // RENAME with children; renaming INBOX moves its messages and leaves it empty.
    ms.stage_rename_mailbox(u, "Archive", "Old")?;
    ms.stage_rename_mailbox(u, "INBOX", "Before")?;
    flush(&mut ms)?;
    assert_eq!(ms.open_mailbox(u, "Old/2024")?.uids(), vec![1, 2, 3]);
    assert_eq!(ms.open_mailbox(u, "Before")?.uids(), vec![2]);
    assert_eq!(ms.open_mailbox(u, "INBOX")?.uids(), Vec::<u32>::new());
    assert!(matches!(
        ms.stage_delete_mailbox(u, "Old"),
        Err(StoreError::MailboxNotAllowed { .. })
    ));
    let d = ms.stage_delete_mailbox(u, "Old/2024")?;
    flush(&mut ms)?;
    assert_eq!(outcome(&mut ms, &d)?, Outcome::MailboxesChanged);
    assert!(matches!(
        ms.open_mailbox(u, "Old/2024"),
        Err(StoreError::NoSuchMailbox { .. })
    ));
    // Usage follows: Sent (1) + Before (1) remain.
    let usage = ms.usage(u)?;
    assert_eq!(usage.messages, 2, "{usage:?}");
    Ok(())
}

#[test]
fn quota_is_checked_before_staging() -> Result<()> {
    let m = msg(0);
    let size = store::delivery::normalize_crlf(&m).len() as u64;
    let e = env(size * 2)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    ms.check_quota(&e.user, size * 2)?;
    ms.stage_deliver(&e.user, None, &m, &Flags::default(), InternalDate::now())?;
    // Staged bytes count before they are applied.
    ms.stage_deliver(&e.user, None, &m, &Flags::default(), InternalDate::now())?;
    assert!(matches!(
        ms.check_quota(&e.user, 1),
        Err(StoreError::OverQuota { .. })
    ));
    assert!(matches!(
        ms.stage_deliver(&e.user, None, &m, &Flags::default(), InternalDate::now()),
        Err(StoreError::OverQuota { .. })
    ));
    flush(&mut ms)?;
    assert!(matches!(
        ms.stage_copy(&e.user, "INBOX", &[1], "INBOX"),
        Err(StoreError::OverQuota { .. })
    ));
    ms.stage_expunge(&e.user, "INBOX", &[1])?;
    flush(&mut ms)?;
    ms.check_quota(&e.user, size)?;
    assert_eq!(ms.usage(&e.user)?.bytes, size);
    Ok(())
}

#[test]
fn notifications_reach_watchers() -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    let view = ms.open_mailbox(&e.user, "INBOX")?;
    let since = view.highest_modseq();
    ms.notifier().watch(&e.user, view.id(), since);
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(
        ms.notifier()
            .poll_change(&e.user, view.id(), since, &mut cx)
            .is_pending()
    );
    ms.stage_deliver(
        &e.user,
        None,
        &msg(0),
        &Flags::default(),
        InternalDate::now(),
    )?;
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        0,
        "nothing before the sync"
    );
    flush(&mut ms)?;
    assert_eq!(count.0.load(Ordering::Relaxed), 1);
    assert!(
        matches!(ms.notifier().poll_change(&e.user, view.id(), since, &mut cx), Poll::Ready(m) if m > since)
    );
    let changes = ms.notifier().changes_since(&e.user, view.id(), since);
    assert_eq!(changes.map(|c| c.len()), Some(1));
    Ok(())
}

#[test]
fn checkpoint_rotates_and_unlinks_expunged() -> Result<()> {
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    ms.stage_deliver(
        &e.user,
        None,
        &msg(0),
        &Flags::default(),
        InternalDate::now(),
    )?;
    flush(&mut ms)?;
    let path = ms.open_mailbox(&e.user, "INBOX")?.message_path(1);
    ms.stage_expunge(&e.user, "INBOX", &[1])?;
    // A checkpoint waits for staged records to be applied.
    assert!(ms.prepare_checkpoint()?.is_none());
    flush(&mut ms)?;
    let c = ms
        .prepare_checkpoint()?
        .ok_or_else(|| StoreError::corrupt("c", "not ready"))?;
    // New work keeps flowing during the syncfs.
    ms.stage_deliver(
        &e.user,
        None,
        &msg(1),
        &Flags::default(),
        InternalDate::now(),
    )?;
    flush(&mut ms)?;
    c.run().map_err(|e| StoreError::io("syncfs", e))?;
    assert!(path.exists());
    ms.finish_checkpoint(c)?;
    assert!(!path.exists());
    drop(ms);
    let (mut ms, report) = Mailstore::open(e.store.clone(), 0)?;
    assert_eq!(
        report.records, 1,
        "only the record after the checkpoint is replayed"
    );
    assert_eq!(ms.open_mailbox(&e.user, "INBOX")?.uids(), vec![2]);
    Ok(())
}

/// SEARCH header lines: read from the cache records once, then answered from memory
/// (the cache file can be gone); unknown UIDs answer nothing.
#[test]
fn search_lines_are_read_once_then_kept() -> Result<()> {
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    let mut tickets = Vec::new();
    for n in 0..300 {
        tickets.push(ms.stage_deliver(
            &e.user,
            None,
            &msg(n),
            &Flags::default(),
            InternalDate::now(),
        )?);
    }
    flush(&mut ms)?;
    for t in &tickets {
        outcome(&mut ms, t)?;
    }
    let uids: Vec<u32> = (1..=301).rev().collect();
    let first = ms.search_lines(&e.user, "INBOX", &uids)?;
    assert_eq!(first[0], None, "uid 301 does not exist");
    for (uid, lines) in uids.iter().zip(&first).skip(1) {
        let n = uid - 1;
        let want = format!("From: a@b.c\r\nSubject: message {n}\r\n").into_bytes();
        assert_eq!(lines.as_deref(), Some(&want[..]), "uid {uid}");
    }
    let view = ms.open_mailbox(&e.user, "INBOX")?;
    let cache = view.message_path(1).with_file_name("cache");
    std::fs::write(&cache, b"").map_err(|err| StoreError::io(&cache, err))?;
    assert!(ms.open_mailbox(&e.user, "INBOX")?.cache_record(1).is_err());
    assert_eq!(ms.search_lines(&e.user, "INBOX", &uids)?, first);
    Ok(())
}

/// LMTP's shared buffer: a CRLF message is staged without a copy (the record holds the
/// caller's `Arc`), one with bare LFs is normalised; both are stored byte-exact, and a
/// restart that replays the journal (nothing applied yet) stores the same bytes.
#[test]
fn shared_delivery_keeps_the_buffer_and_replays() -> Result<()> {
    let e = env(0)?;
    let crlf = Arc::new(b"Subject: crlf\r\n\r\nbody\r\n".to_vec());
    let bare = Arc::new(b"Subject: bare\n\nbody\n".to_vec());
    {
        let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
        let date = InternalDate::now();
        let t1 = ms.stage_deliver_shared(&e.user, None, &crlf, &Flags::default(), date)?;
        // The record holds the same buffer: no copy was made.
        assert_eq!(Arc::strong_count(&crlf), 2);
        let t2 = ms.stage_deliver_shared(&e.user, None, &bare, &Flags::default(), date)?;
        assert_eq!(Arc::strong_count(&bare), 1);
        flush(&mut ms)?;
        outcome(&mut ms, &t1)?;
        outcome(&mut ms, &t2)?;
        assert_eq!(Arc::strong_count(&crlf), 1);
        let view = ms.open_mailbox(&e.user, "INBOX")?;
        let read = |uid| std::fs::read(view.message_path(uid)).map_err(|e| StoreError::io("m", e));
        assert_eq!(read(1)?, crlf[..]);
        assert_eq!(read(2)?, b"Subject: bare\r\n\r\nbody\r\n");
        // Staged and synced but never applied: the journal alone has them.
        ms.stage_deliver_shared(&e.user, None, &crlf, &Flags::default(), date)?;
        let t = ms
            .sync_target()?
            .ok_or_else(|| StoreError::corrupt("t", "none"))?;
        t.run().map_err(|e| StoreError::io("sync", e))?;
    }
    let (mut ms, report) = Mailstore::open(e.store.clone(), 0)?;
    // Every record of the segment is replayed (the first two were applied already).
    assert!(
        report.records >= 3 && report.failures.is_empty(),
        "{report:?}"
    );
    let view = ms.open_mailbox(&e.user, "INBOX")?;
    assert_eq!(view.uids(), vec![1, 2, 3]);
    let stored = std::fs::read(view.message_path(3)).map_err(|e| StoreError::io("m", e))?;
    assert_eq!(stored, crlf[..]);
    Ok(())
}

/// APPEND of a buffer the caller hands over: stored byte-exact when it is CRLF, its
/// bare LFs made CRLF otherwise, like `stage_append` of the same bytes.
#[test]
fn owned_append_is_stored_like_a_borrowed_one() -> Result<()> {
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    let date = InternalDate::now();
    let crlf = b"Subject: crlf\r\n\r\nbody\r\n".to_vec();
    let bare = b"Subject: bare\n\nbody\r\nend\n".to_vec();
    let mut tickets = Vec::new();
    for m in [&crlf, &bare] {
        tickets.push(ms.stage_append_owned(
            &e.user,
            "INBOX",
            m.clone(),
            &Flags::default(),
            date,
        )?);
        tickets.push(ms.stage_append(&e.user, "INBOX", m, &Flags::default(), date)?);
    }
    assert!(matches!(
        ms.stage_append_owned(&e.user, "Nope", crlf.clone(), &Flags::default(), date),
        Err(StoreError::NoSuchMailbox { .. })
    ));
    flush(&mut ms)?;
    for t in &tickets {
        outcome(&mut ms, t)?;
    }
    let view = ms.open_mailbox(&e.user, "INBOX")?;
    let read = |uid| std::fs::read(view.message_path(uid)).map_err(|e| StoreError::io("m", e));
    assert_eq!(read(1)?, crlf);
    assert_eq!(read(2)?, crlf);
    assert_eq!(read(3)?, b"Subject: bare\r\n\r\nbody\r\nend\r\n");
    assert_eq!(read(4)?, read(3)?);
    assert_eq!(view.info(3).map(|i| i.size), Some(read(3)?.len() as u64));
    Ok(())
}

/// Keyword names come back from the bitmask in the order the mailbox defined them, all
/// 64 of them, none for a message without keywords.
#[test]
fn keyword_names_follow_every_bit() -> Result<()> {
    let e = env(0)?;
    let (mut ms, _) = Mailstore::open(e.store.clone(), 0)?;
    let u = &e.user;
    for i in 0..3 {
        ms.stage_deliver(u, None, &msg(i), &Flags::default(), InternalDate::now())?;
    }
    flush(&mut ms)?;
    let all: Vec<String> = (0..64).map(|i| format!("$K{i}")).collect();
    let set = |ms: &mut Mailstore, uids: &[u32], keywords: Vec<String>| -> Result<()> {
        let t = ms.stage_store_flags(
            u,
            "INBOX",
            uids,
            FlagMode::Add,
            &Flags {
                system: 0,
                keywords,
            },
        )?;
        flush(ms)?;
        outcome(ms, &t).map(|_| ())
    };
    set(&mut ms, &[1], all.clone())?;
    set(
        &mut ms,
        &[2],
        vec!["$K63".into(), "$K0".into(), "$k5".into()],
    )?;
    let v = ms.open_mailbox(u, "INBOX")?;
    assert_eq!(v.info(1).map(|i| i.keywords), Some(all.clone()));
    assert_eq!(
        v.info(2).map(|i| i.keywords),
        Some(vec!["$K0".to_string(), "$K5".into(), "$K63".into()])
    );
    assert_eq!(v.info(3).map(|i| i.keywords), Some(Vec::new()));
    Ok(())
}
