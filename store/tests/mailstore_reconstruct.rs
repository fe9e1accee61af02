//! Reconstruct: lost indexes and caches, bit flips, a folder restored from backup.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use store::delivery::{Flags, InternalDate, Mailstore};
use store::journal::record::FlagMode;
use store::mailbox::SystemFlags;
use store::{Address, NewAccount, Result, Store, StoreError, UsageFlags};

fn io<T>(r: std::io::Result<T>, p: impl AsRef<Path>) -> Result<T> {
    r.map_err(|e| StoreError::io(p.as_ref(), e))
}

fn setup() -> Result<(tempfile::TempDir, Arc<Store>, Address, Mailstore)> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let store = Arc::new(Store::open(&[dir.path().join("r0")], 2)?);
    let user = Address::parse("rec@example.com")?;
    store.create_account(NewAccount {
        address: user.clone(),
        name: String::new(),
        quota_bytes: 0,
        flags: UsageFlags::default_new(),
        password_hash: None,
    })?;
    let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
    ms.stage_create_mailbox(&user, "Work", None)?;
    for n in 1..=5u32 {
        let m = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
        ms.stage_deliver(
            &user,
            None,
            m.as_bytes(),
            &Flags::default(),
            InternalDate::now(),
        )?;
        ms.stage_append(
            &user,
            "Work",
            m.as_bytes(),
            &Flags::default(),
            InternalDate::now(),
        )?;
    }
    ms.stage_store_flags(
        &user,
        "INBOX",
        &[2, 4],
        FlagMode::Add,
        &Flags {
            system: SystemFlags::SEEN,
            keywords: vec!["$Important".into()],
        },
    )?;
    ms.stage_expunge(&user, "INBOX", &[5])?;
    while let Some(t) = ms.sync_target()? {
        io(t.run(), "sync")?;
        ms.synced(&t);
    }
    // A checkpoint: the journal is emptied and the expunged file unlinked.
    let c = ms
        .prepare_checkpoint()?
        .ok_or_else(|| StoreError::corrupt("c", "not ready"))?;
    io(c.run(), "syncfs")?;
    ms.finish_checkpoint(c)?;
    Ok((dir, store, user, ms))
}

/// (name, UIDVALIDITY, UIDNEXT, UIDs, (flags, keywords) per UID).
type Seen = (String, u32, u32, Vec<u32>, Vec<(u8, Vec<String>)>);

fn snapshot(ms: &mut Mailstore, user: &Address) -> Result<Vec<Seen>> {
    let mut out = Vec::new();
    for m in ms.list_mailboxes(user)? {
        let v = ms.open_mailbox(user, &m.name)?;
        let flags = v
            .uids()
            .iter()
            .filter_map(|u| v.info(*u))
            .map(|i| (i.flags.0, i.keywords))
            .collect();
        out.push((m.name, v.uidvalidity(), v.uidnext(), v.uids(), flags));
    }
    Ok(out)
}

#[test]
fn lost_indexes_and_caches_come_back() -> Result<()> {
    let (_d, store, user, mut ms) = setup()?;
    let before = snapshot(&mut ms, &user)?;
    // The expunged file is still waiting for a checkpoint: reconstruct must not revive it.
    let mail = store.user_dir(&user).join("mail");
    for id in ["1", "2"] {
        io(fs::remove_file(mail.join(id).join("index")), "index")?;
        io(fs::remove_file(mail.join(id).join("cache")), "cache")?;
    }
    let mut seen = Vec::new();
    let report = ms.reconstruct_user(&user, |p| seen.push(p.mailbox))?;
    assert_eq!(seen, ["INBOX", "Work"]);
    assert_eq!(report.messages, 9);
    let after = snapshot(&mut ms, &user)?;
    // UIDs are kept; flags were only in the lost index.
    assert_eq!(
        after
            .iter()
            .map(|m| (&m.0, m.3.clone()))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|m| (&m.0, m.3.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(after[0].3, vec![1, 2, 3, 4]);
    // The mailbox list's bounds outlive the index: UIDVALIDITY is kept, and UIDNEXT does
    // not go back below the expunged UID 5 (so no UID is ever reused under it), nor does
    // HIGHESTMODSEQ.
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a.1, b.1, "{} UIDVALIDITY kept", a.0);
        assert!(a.2 >= b.2, "{} UIDNEXT {} went back from {}", a.0, a.2, b.2);
    }
    assert!(
        !report.repairs.iter().any(|r| r.contains("uidvalidity")),
        "{:?}",
        report.repairs
    );
    let t = ms.stage_deliver(
        &user,
        None,
        b"Subject: new\r\n\r\n",
        &Flags::default(),
        InternalDate::now(),
    )?;
    while let Some(s) = ms.sync_target()? {
        io(s.run(), "sync")?;
        ms.synced(&s);
    }
    match ms.complete(&t) {
        Some(Ok(store::delivery::Outcome::Delivered { uid, uidvalidity })) => {
            assert!(uid >= before[0].2, "new UID {uid} reuses an old one");
            assert_eq!(uidvalidity, before[0].1);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        report
            .repairs
            .iter()
            .any(|r| r.contains("not in index -> adopted")),
        "{:?}",
        report.repairs
    );
    Ok(())
}

#[test]
fn flipped_index_bytes_are_detected_and_rebuilt_keeping_flags() -> Result<()> {
    let (_d, store, user, mut ms) = setup()?;
    let before = snapshot(&mut ms, &user)?;
    drop(ms);
    let index = store.user_dir(&user).join("mail/1/index");
    let mut b = io(fs::read(&index), &index)?;
    // Damage the record of UID 1 (the first record) only.
    let at = 512 + 64 * 64 + 10;
    b[at] ^= 0xff;
    io(fs::write(&index, &b), &index)?;
    let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
    // Opening salvages the index: the damaged record is rebuilt from its message file,
    // every other record (with its flags) is kept, and the repair is reported.
    let salvaged = snapshot(&mut ms, &user)?;
    assert_eq!(salvaged, before);
    let repairs = ms.take_repairs();
    assert!(
        repairs
            .iter()
            .any(|r| r.ends_with("record 0: damaged -> dropped"))
            && repairs
                .iter()
                .any(|r| r.ends_with("mail/1/1 record: missing -> adopted from the message file")),
        "{repairs:?}"
    );
    // Damage it again and run reconstruct: same answer.
    drop(ms);
    io(fs::write(&index, &b), &index)?;
    let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
    let report = ms.reconstruct_user(&user, |_| {})?;
    assert!(
        report.repairs.iter().any(|r| r.starts_with("INBOX index:")),
        "{:?}",
        report.repairs
    );
    let after = snapshot(&mut ms, &user)?;
    assert_eq!(after[0].1, before[0].1, "UIDVALIDITY kept");
    assert_eq!(
        after[0].2, before[0].2,
        "UIDNEXT kept past the expunged UID 5"
    );
    assert_eq!(after[0].3, before[0].3);
    // Flags of the undamaged records survive (UID 2 and 4 are \Seen $Important).
    assert_eq!(
        after[0].4[1],
        (SystemFlags::SEEN, vec!["$Important".to_string()])
    );
    assert_eq!(after[0].4[1], before[0].4[1]);
    Ok(())
}

#[test]
fn restored_folder_and_lost_list_are_reintegrated() -> Result<()> {
    let (d, store, user, mut ms) = setup()?;
    let udir = store.user_dir(&user);
    // A backup of Work (id 2) is restored as folder 9, plus a file with no UID name; the
    // mailbox list is lost.
    let restored = udir.join("mail/9");
    io(fs::create_dir_all(&restored), &restored)?;
    for uid in 1..=3 {
        io(
            fs::copy(
                udir.join(format!("mail/2/{uid}")),
                restored.join(uid.to_string()),
            ),
            &restored,
        )?;
    }
    io(
        fs::write(
            restored.join("from-backup.eml"),
            b"Subject: old\r\n\r\nhi\r\n",
        ),
        &restored,
    )?;
    io(fs::remove_file(udir.join("mailboxes")), "mailboxes")?;
    let report = ms.reconstruct_user(&user, |_| {})?;
    let names: Vec<String> = ms
        .list_mailboxes(&user)?
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        ["INBOX", "recovered-2", "recovered-9"],
        "{:?}",
        report.repairs
    );
    assert_eq!(
        ms.open_mailbox(&user, "recovered-9")?.uids(),
        vec![1, 2, 3, 4]
    );
    let v = ms.open_mailbox(&user, "recovered-9")?;
    assert_eq!(
        io(fs::read(v.message_path(4)), "4")?,
        b"Subject: old\r\n\r\nhi\r\n"
    );
    assert!(v.cache_record(4).is_ok());
    assert_eq!(ms.usage(&user)?.messages, 4 + 5 + 4);
    // New deliveries after reconstruct go on from the kept UIDNEXT.
    let t = ms.stage_deliver(
        &user,
        None,
        b"Subject: new\r\n\r\n",
        &Flags::default(),
        InternalDate::now(),
    )?;
    while let Some(s) = ms.sync_target()? {
        io(s.run(), "sync")?;
        ms.synced(&s);
    }
    let got = ms.complete(&t);
    assert!(
        matches!(
            got,
            Some(Ok(store::delivery::Outcome::Delivered { uid: 6, .. }))
        ),
        "{got:?}"
    );
    drop(d);
    Ok(())
}

/// While a user is reconstructed off the shard thread, the user is refused ("retry") and
/// every other user is served; afterwards the user is served from the rebuilt files.
#[test]
fn a_user_under_reconstruct_is_refused_others_are_served() -> Result<()> {
    let (_d, store, user, mut ms) = setup()?;
    let other = Address::parse("other@example.com")?;
    store.create_account(NewAccount {
        address: other.clone(),
        name: String::new(),
        quota_bytes: 0,
        flags: UsageFlags::default_new(),
        password_hash: None,
    })?;
    let seq = ms.begin_reconstruct(&user)?;
    assert!(ms.begin_reconstruct(&user).is_err(), "one at a time");
    let refused = ms.stage_deliver(
        &user,
        None,
        b"x\r\n",
        &Flags::default(),
        InternalDate::now(),
    );
    assert!(
        matches!(refused, Err(StoreError::MailboxNotAllowed { .. })),
        "{refused:?}"
    );
    assert!(ms.open_mailbox(&user, "INBOX").is_err());
    // What the engine runs on a thread of its own.
    let worker = {
        let store = store.clone();
        let user = user.clone();
        std::thread::spawn(move || {
            store::reconstruct::reconstruct_user_at(&store, &user, Some(seq), |_| {})
        })
    };
    let t = ms.stage_deliver(
        &other,
        None,
        b"Subject: hi\r\n\r\n",
        &Flags::default(),
        InternalDate::now(),
    )?;
    while let Some(s) = ms.sync_target()? {
        io(s.run(), "sync")?;
        ms.synced(&s);
    }
    assert!(matches!(ms.complete(&t), Some(Ok(_))));
    assert_eq!(ms.open_mailbox(&other, "INBOX")?.uids(), vec![1]);
    let report = worker
        .join()
        .map_err(|_| StoreError::corrupt("worker", "panicked"))??;
    assert_eq!(report.messages, 9);
    ms.end_reconstruct(&user);
    assert_eq!(ms.open_mailbox(&user, "INBOX")?.uids(), vec![1, 2, 3, 4]);
    Ok(())
}
