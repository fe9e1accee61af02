//! Crash tests of the journal and apply (the crash argument of `store::journal`):
//! a journal cut at every byte offset, and every subset of the writes one group commit's
//! apply makes, must replay to a store where every acknowledged mutation is present and
//! every index opens strictly.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::delivery::{Flags, InternalDate, Mailstore};
use store::journal::record::FlagMode;
use store::journal::shard_dir;
use store::mailbox::SystemFlags;
use store::{Address, NewAccount, Result, Store, StoreError, UsageFlags};

fn io<T>(r: std::io::Result<T>, what: impl AsRef<Path>) -> Result<T> {
    r.map_err(|e| StoreError::io(what.as_ref(), e))
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    io(fs::create_dir_all(dst), dst)?;
    for e in io(fs::read_dir(src), src)? {
        let e = io(e, src)?;
        let to = dst.join(e.file_name());
        if io(e.file_type(), e.path())?.is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            io(fs::copy(e.path(), &to), &to)?;
        }
    }
    Ok(())
}

/// Every file under `dir` (relative path → bytes), lock file excluded.
fn files(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
        for e in io(fs::read_dir(dir), dir)? {
            let e = io(e, dir)?;
            let p = e.path();
            if io(e.file_type(), &p)?.is_dir() {
                walk(base, &p, out)?;
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.insert(rel.to_owned(), io(fs::read(&p), &p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn user() -> Result<Address> {
    Address::parse("crash@example.com")
}

fn new_store(root: &Path) -> Result<Arc<Store>> {
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
    Ok(store)
}

fn msg(n: u32) -> Vec<u8> {
    format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes()
}

/// Opens (replaying), then opens again (strict index reads) and returns the INBOX and
/// `Keep` contents as uid → (bytes, flags).
/// (mailbox, uid) → (message bytes, system flags).
type Contents = BTreeMap<(String, u32), (Vec<u8>, u8)>;

fn recovered(root: &Path) -> Result<Contents> {
    let store = Arc::new(Store::open(&[root.to_owned()], 2)?);
    let (ms, report) = Mailstore::open(store.clone(), 0)?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    drop(ms);
    let (mut ms, report) = Mailstore::open(store, 0)?;
    assert_eq!(report.records, 0);
    let mut out = BTreeMap::new();
    let u = user()?;
    let names: Vec<String> = ms.list_mailboxes(&u)?.into_iter().map(|m| m.name).collect();
    for name in names {
        let view = ms.open_mailbox(&u, &name)?;
        let mut total = 0;
        for uid in view.uids() {
            let bytes = io(fs::read(view.message_path(uid)), view.message_path(uid))?;
            let rec = view.get(uid).copied().unwrap_or_default();
            assert_eq!(rec.size, bytes.len() as u64);
            view.cache_record(uid)?;
            total += rec.size;
            out.insert((name.clone(), uid), (bytes, rec.flags.0));
        }
        let _ = total;
    }
    let usage = ms.usage(&u)?;
    let sum: u64 = out.values().map(|(b, _)| b.len() as u64).sum();
    assert_eq!(usage.bytes, sum, "usage matches the indexes");
    Ok(out)
}

#[test]
fn journal_cut_at_every_byte() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let root = tmp.path().join("template");
    let store = new_store(&root)?;
    let u = user()?;
    {
        let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
        for n in 1..=3 {
            ms.stage_deliver(&u, None, &msg(n), &Flags::default(), InternalDate::now())?;
        }
        ms.stage_store_flags(
            &u,
            "INBOX",
            &[2],
            FlagMode::Add,
            &Flags {
                system: SystemFlags::SEEN,
                keywords: vec![],
            },
        )?;
        ms.stage_create_mailbox(&u, "Keep", None)?;
        ms.stage_copy(&u, "INBOX", &[1], "Keep")?;
        let t = ms
            .sync_target()?
            .ok_or_else(|| StoreError::corrupt("t", "none"))?;
        io(t.run(), "sync")?;
        // Crash here: durable in the journal, nothing applied.
    }
    let seg_dir = shard_dir(&root, 0);
    let seg = io(fs::read_dir(&seg_dir), &seg_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .next()
        .ok_or_else(|| StoreError::corrupt(&seg_dir, "no segment"))?;
    let full = io(fs::read(&seg), &seg)?;
    // Record boundaries, to know how many records a cut keeps.
    let mut ends = Vec::new();
    let mut kinds = Vec::new();
    let mut at = 32;
    while at + 16 <= full.len() {
        let len = u32::from_le_bytes([full[at], full[at + 1], full[at + 2], full[at + 3]]) as usize;
        kinds.push(full[at + 16]);
        at += 16 + len;
        ends.push(at);
    }
    // Kinds (see `journal::record`): 1 deliver, 3 flags, 5 mailbox list (UID reservations
    // and the create).
    assert_eq!(
        kinds,
        [5, 1, 1, 1, 3, 5, 5, 2],
        "INBOX's reservation, 3 deliveries, flags, create, Keep's reservation, and a copy of \
         nothing (its source was not applied yet)"
    );
    // A segment overwriting a recycled one (the spare, see `store::journal`) has the old
    // life's frames after the new ones. Two old lives, each longer than the new one, with
    // frames at the same places: under another salt with the same sequence numbers (only
    // the salt stops them), and under the same salt with lower numbers (only the numbers
    // stop them). After any cut, replay must
    // recover exactly what it recovers from the cut segment alone.
    let salt = u32::from_le_bytes([full[24], full[25], full[26], full[27]]);
    let mut other_salt = full[..32].to_vec();
    let mut older = full[..32].to_vec();
    for _ in 0..2 {
        let mut at = 32;
        while at + 16 <= full.len() {
            let len =
                u32::from_le_bytes([full[at], full[at + 1], full[at + 2], full[at + 3]]) as usize;
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&full[at + 8..at + 16]);
            let seq = u64::from_le_bytes(seq);
            // The old life held other records: same lengths, other bytes.
            let payload: Vec<u8> = full[at + 16..at + 16 + len].iter().map(|b| !b).collect();
            other_salt.extend_from_slice(&store::journal::encode_frame(
                salt ^ 0x5a5a_5a5a,
                seq,
                &payload,
            ));
            older.extend_from_slice(&store::journal::encode_frame(
                salt,
                seq - 1_000_000,
                &payload,
            ));
            at += 16 + len;
        }
    }
    let mut last_kept = usize::MAX;
    for cut in 32..=full.len() {
        let kept = ends.iter().filter(|&&e| e <= cut).count();
        let delivered = kinds[..kept].iter().filter(|&&k| k == 1).count();
        let flagged = kinds[..kept].contains(&3);
        // Cutting inside a record behaves as cutting at its start: test each boundary and a
        // few offsets inside each record.
        if kept == last_kept && cut % 7 != 0 && cut != full.len() {
            continue;
        }
        last_kept = kept;
        let case = tmp.path().join(format!("cut-{cut}"));
        copy_tree(&root, &case)?;
        let case_seg = case.join(
            seg.strip_prefix(&root)
                .map_err(|_| StoreError::corrupt(&seg, "prefix"))?,
        );
        io(fs::write(&case_seg, &full[..cut]), &case_seg)?;
        let got = recovered(&case)?;
        io(fs::remove_dir_all(&case), &case)?;
        for (what, old) in [("another salt", &other_salt), ("older numbers", &older)] {
            copy_tree(&root, &case)?;
            let mut bytes = full[..cut].to_vec();
            bytes.extend_from_slice(&old[cut..]);
            io(fs::write(&case_seg, &bytes), &case_seg)?;
            assert_eq!(
                recovered(&case)?,
                got,
                "cut at {cut}, old frames with {what}"
            );
            io(fs::remove_dir_all(&case), &case)?;
        }
        let inbox: Vec<u32> = got
            .keys()
            .filter(|(m, _)| m == "INBOX")
            .map(|(_, u)| *u)
            .collect();
        assert_eq!(
            inbox,
            (1..=delivered as u32).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        for ((_, uid), (bytes, flags)) in got.iter().filter(|((m, _), _)| m == "INBOX") {
            assert_eq!(bytes, &msg(*uid));
            let seen = *uid == 2 && flagged;
            assert_eq!(
                *flags & SystemFlags::SEEN != 0,
                seen,
                "cut at {cut} uid {uid}"
            );
        }
    }
    Ok(())
}

#[test]
fn every_subset_of_apply_writes_recovers() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let root = tmp.path().join("live");
    let store = new_store(&root)?;
    let u = user()?;
    let (mut ms, _) = Mailstore::open(store.clone(), 0)?;
    for n in 1..=2 {
        ms.stage_deliver(&u, None, &msg(n), &Flags::default(), InternalDate::now())?;
    }
    ms.stage_create_mailbox(&u, "Keep", None)?;
    let t = ms
        .sync_target()?
        .ok_or_else(|| StoreError::corrupt("t", "none"))?;
    io(t.run(), "sync")?;
    ms.synced(&t);
    // The group commit under test: durable in the journal, then applied.
    ms.stage_deliver(
        &u,
        None,
        &msg(3),
        &Flags {
            system: SystemFlags::FLAGGED,
            keywords: vec!["$Work".into()],
        },
        InternalDate::now(),
    )?;
    ms.stage_store_flags(
        &u,
        "INBOX",
        &[1],
        FlagMode::Add,
        &Flags {
            system: SystemFlags::SEEN,
            keywords: vec![],
        },
    )?;
    ms.stage_expunge(&u, "INBOX", &[2])?;
    ms.stage_copy(&u, "INBOX", &[1], "Keep")?;
    ms.stage_create_mailbox(&u, "Later", None)?;
    let t = ms
        .sync_target()?
        .ok_or_else(|| StoreError::corrupt("t", "none"))?;
    io(t.run(), "sync")?;
    let pre_dir = tmp.path().join("pre");
    copy_tree(&root, &pre_dir)?;
    ms.synced(&t);
    let post_dir = tmp.path().join("post");
    copy_tree(&root, &post_dir)?;
    drop(ms);
    let pre = files(&pre_dir)?;
    let post = files(&post_dir)?;
    let changed: Vec<PathBuf> = pre
        .keys()
        .chain(post.keys())
        .filter(|p| pre.get(*p) != post.get(*p))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(changed.len() >= 6, "{changed:?}");
    assert!(changed.len() <= 10, "{changed:?}");
    let want = recovered(&post_dir)?;
    assert!(want.contains_key(&("Keep".to_string(), 1)));
    assert!(!want.contains_key(&("INBOX".to_string(), 2)));
    for mask in 0u32..(1 << changed.len()) {
        let case = tmp.path().join(format!("mask-{mask}"));
        copy_tree(&pre_dir, &case)?;
        for (i, rel) in changed.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let p = case.join(rel);
            match post.get(rel) {
                Some(bytes) => {
                    if let Some(parent) = p.parent() {
                        io(fs::create_dir_all(parent), parent)?;
                    }
                    io(fs::write(&p, bytes), &p)?;
                }
                None => io(fs::remove_file(&p), &p)?,
            }
        }
        let got = recovered(&case)?;
        assert_eq!(got, want, "mask {mask:b} over {changed:?}");
        io(fs::remove_dir_all(&case), &case)?;
    }
    Ok(())
}
