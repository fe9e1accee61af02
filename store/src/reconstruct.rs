//! Reconstruct (`msgstore reconstruct ADDR…|--all`): rebuilds a user's mailbox list, every
//! index and cache, and the usage file from the message files, keeping what it can.
//!
//! - Mailboxes: every `mail/<id>/` folder is a mailbox. Names, subscriptions, special-use
//!   and UIDVALIDITY come from the old `mailboxes` file where it is readable; a folder it
//!   does not name becomes `recovered-<id>` (without a readable list, id 1 is INBOX).
//!   Listed mailboxes without a folder (never written to) are kept.
//! - Messages: every file `mail/<id>/<uid>` keeps its UID and, from whatever records of
//!   the old index still pass their checksum, its flags, keywords, modseq and internal date.
//!   A file whose old record is an expunge tombstone is removed (its unlink was still
//!   waiting for a checkpoint). A file the index does not know (restored from a backup)
//!   is adopted with its UID; a file with a non-numeric name gets a new UID above all others.
//! - UIDNEXT and HIGHESTMODSEQ never go back: the new index header keeps the old UIDNEXT.
//!   When the index is damaged or lost, the mailbox list's bounds (`uid_bound`,
//!   `modseq_bound`, see `mailbox::list`) give a UIDNEXT no UID ever reached and a
//!   HIGHESTMODSEQ no change ever passed, so UIDVALIDITY is kept: clients (and POP3 UIDLs,
//!   made of UIDVALIDITY and UID) see the same messages under the same names. Messages
//!   adopted without a record get modseqs above the bound, so CONDSTORE clients refetch
//!   their flags. Only when neither a list entry with bounds nor an index header is
//!   readable is UIDNEXT unknown: the mailbox then gets a new UIDVALIDITY (UIDs are kept;
//!   clients resynchronise).
//! - Every cache record is recomputed (`delivery::cache_record`).
//! - Every change is returned as a "field old -> new" line; nothing is logged here.
//!
//! New files are written beside the old ones, synced, and renamed over them, so a crash
//! during reconstruct leaves the old or the new file. Run it on a stopped store, or online
//! through `Mailstore::reconstruct_user` on the owning shard (it refuses while the user has
//! staged changes and sets the list's journal sequence number so replay stays correct).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::address::Address;
use crate::delivery::cache_record;
use crate::durable::{read_bounded, rename_durable, sync_dir, write_atomic};
use crate::error::{Result, StoreError};
use crate::limits::{MAILBOXES_FILE_BYTES_MAX, MESSAGE_BYTES_MAX};
use crate::mailbox::cache::{CACHE_FILE, Cache};
use crate::mailbox::index::{
    HEADER_BYTES, Header, INDEX_FILE, Index, KEYWORD_SLOT_BYTES, MODSEQ_INITIAL, RECORD_BYTES,
    RECORDS_OFFSET, Record, SystemFlags, decode_slot,
};
use crate::mailbox::list::{MAILBOXES_FILE, MailboxEntry, MailboxList};
use crate::mailbox::name::INBOX;
use crate::mailbox::{MAIL_DIR, mailbox_dir};
use crate::quota::{Usage, UsageFile};
use crate::store::Store;

/// Where reconstruct is, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub mailbox: String,
    /// Mailboxes done before this one.
    pub done: usize,
    pub total: usize,
}

/// What reconstruct found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// One line per repair: "what field: old -> new".
    pub repairs: Vec<String>,
    pub mailboxes: usize,
    pub messages: u64,
    pub bytes: u64,
}

/// Rebuilds one user's mailboxes (see the module doc). Offline use.
pub fn reconstruct_user(
    store: &Store,
    addr: &Address,
    progress: impl FnMut(Progress),
) -> Result<Report> {
    reconstruct_user_at(store, addr, None, progress)
}

/// As `reconstruct_user`; `applied_seq` (the journal's last sequence number, when run
/// online) is written into the rebuilt list.
pub fn reconstruct_user_at(
    store: &Store,
    addr: &Address,
    applied_seq: Option<u64>,
    mut progress: impl FnMut(Progress),
) -> Result<Report> {
    let profile = store.account(addr)?;
    let user_dir = store.user_dir(addr);
    let mut report = Report::default();
    let list_path = user_dir.join(MAILBOXES_FILE);
    let old_list = match read_bounded(&list_path, MAILBOXES_FILE_BYTES_MAX) {
        Ok(bytes) => match MailboxList::parse(&list_path, &bytes) {
            Ok(l) => Some(l),
            Err(e) => {
                report
                    .repairs
                    .push(format!("mailboxes: damaged ({e}) -> rebuilt"));
                None
            }
        },
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let folders = mailbox_folders(&user_dir)?;
    let mut list = old_list
        .clone()
        .unwrap_or_else(|| MailboxList::default_for(profile.created_unix));
    if old_list.is_none() && !folders.is_empty() && !folders.contains(&1) {
        list.mailboxes.clear();
    }
    for &id in &folders {
        if list.by_id(id).is_none() {
            let name = if old_list.is_none() && id == 1 {
                INBOX.to_owned()
            } else {
                format!("recovered-{id}")
            };
            report
                .repairs
                .push(format!("mailbox {id} name: missing -> {name}"));
            let uidvalidity = old_uidvalidity(&mailbox_dir(&user_dir, id)).unwrap_or(0);
            list.mailboxes.push(MailboxEntry {
                id,
                name,
                uidvalidity,
                subscribed: false,
                special_use: None,
                uid_bound: 0,
                modseq_bound: 0,
            });
        }
    }
    if list.get(INBOX).is_none() {
        let id = list.next_id.max(folders.iter().max().map_or(1, |m| m + 1));
        list.next_id = id;
        list.mailboxes.push(MailboxEntry {
            id,
            name: INBOX.into(),
            uidvalidity: 0,
            subscribed: true,
            special_use: None,
            uid_bound: 0,
            modseq_bound: 0,
        });
        report.repairs.push(format!("INBOX id: missing -> {id}"));
    }
    let max_id = list.mailboxes.iter().map(|m| m.id).max().unwrap_or(1);
    if list.next_id <= max_id {
        report.repairs.push(format!(
            "mailboxes next_id: {} -> {}",
            list.next_id,
            max_id + 1
        ));
        list.next_id = max_id + 1;
    }
    list.mailboxes.sort_by_key(|m| m.id);
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let total = list.mailboxes.len();
    let mut usage = Usage::default();
    for i in 0..total {
        let entry = list.mailboxes[i].clone();
        progress(Progress {
            mailbox: entry.name.clone(),
            done: i,
            total,
        });
        let dir = mailbox_dir(&user_dir, entry.id);
        if !folders.contains(&entry.id) {
            continue;
        }
        // A list entry with bounds (or a readable index header) promises that no UID is
        // reused under the old UIDVALIDITY; without either a new one is taken.
        let from_list =
            (entry.uid_bound != 0 && entry.uidvalidity != 0).then_some(entry.uidvalidity);
        let uidvalidity = match from_list.or_else(|| old_uidvalidity(&dir).filter(|&v| v != 0)) {
            Some(v) => v,
            None => {
                let v = u32::try_from(now)
                    .unwrap_or(u32::MAX)
                    .max(list.uidvalidity_next);
                list.uidvalidity_next = v.saturating_add(1);
                report.repairs.push(format!(
                    "{} uidvalidity: {} -> {v}",
                    entry.name, entry.uidvalidity
                ));
                v
            }
        };
        list.mailboxes[i].uidvalidity = uidvalidity;
        let rebuilt = rebuild_mailbox(&dir, &entry, uidvalidity, &mut report)?;
        usage.add(rebuilt.bytes, rebuilt.messages, false);
        let m = &mut list.mailboxes[i];
        m.uid_bound = m.uid_bound.max(rebuilt.uidnext);
        m.modseq_bound = m.modseq_bound.max(rebuilt.highest_modseq);
    }
    let highest = list.mailboxes.iter().map(|m| m.uidvalidity).max();
    list.uidvalidity_next = list
        .uidvalidity_next
        .max(highest.unwrap_or(0).saturating_add(1));
    if let Some(seq) = applied_seq {
        list.applied_seq = list.applied_seq.max(seq);
    }
    fs::create_dir_all(&user_dir).map_err(|e| StoreError::io(&user_dir, e))?;
    write_atomic(&list_path, &list.to_bytes()?)?;
    let (mut file, _) = UsageFile::open(&user_dir, || Ok(usage))?;
    if (file.usage.bytes, file.usage.messages) != (usage.bytes, usage.messages) {
        report.repairs.push(format!(
            "usage: {} bytes/{} messages -> {} bytes/{} messages",
            file.usage.bytes, file.usage.messages, usage.bytes, usage.messages
        ));
    }
    file.usage = usage;
    file.write()?;
    fs::File::open(user_dir.join(crate::quota::USAGE_FILE))
        .and_then(|f| f.sync_data())
        .map_err(|e| StoreError::io(&user_dir, e))?;
    report.mailboxes = total;
    report.messages = usage.messages;
    report.bytes = usage.bytes;
    Ok(report)
}

/// Numeric folders under `mail/`.
fn mailbox_folders(user_dir: &Path) -> Result<Vec<u32>> {
    let mail = user_dir.join(MAIL_DIR);
    let mut ids = Vec::new();
    match fs::read_dir(&mail) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(|e| StoreError::io(&mail, e))?;
                if let Some(id) = numeric(&e.file_name().to_string_lossy())
                    && id != 0
                    && e.path().is_dir()
                {
                    ids.push(id);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(&mail, e)),
    }
    ids.sort_unstable();
    Ok(ids)
}

fn numeric(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn old_uidvalidity(dir: &Path) -> Option<u32> {
    let bytes = fs::read(dir.join(INDEX_FILE)).ok()?;
    Header::decode(&bytes).ok().map(|h| h.uidvalidity)
}

/// What survives of an old index: every record and slot that passes its checksum.
struct OldIndex {
    header: Option<Header>,
    keywords: Vec<Option<String>>,
    records: HashMap<u32, Record>,
    max_uid: u32,
    /// The list's modseq bound, when the index is damaged (0 otherwise).
    bound_modseq: u64,
    damaged: Option<String>,
}

fn read_old_index(dir: &Path) -> OldIndex {
    let path = dir.join(INDEX_FILE);
    let mut old = OldIndex {
        header: None,
        keywords: Vec::new(),
        records: HashMap::new(),
        max_uid: 0,
        bound_modseq: 0,
        damaged: None,
    };
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            old.damaged = Some(format!("unreadable ({})", e.kind()));
            return old;
        }
    };
    if let Err(e) = Index::open(&path) {
        old.damaged = Some(e.to_string());
    }
    old.header = Header::decode(&bytes).ok();
    // A readable version 2 header knows UIDNEXT even when records are lost.
    if let Some(h) = old.header {
        old.max_uid = old.max_uid.max(h.uidnext.saturating_sub(1));
    }
    if bytes.len() >= RECORDS_OFFSET {
        old.keywords = bytes[HEADER_BYTES..RECORDS_OFFSET]
            .chunks_exact(KEYWORD_SLOT_BYTES)
            .map(|s| decode_slot(s).ok().flatten())
            .collect();
        for chunk in bytes[RECORDS_OFFSET..].chunks_exact(RECORD_BYTES) {
            if let Some(r) = Record::decode(chunk) {
                old.max_uid = old.max_uid.max(r.uid);
                old.records.insert(r.uid, r);
            }
        }
    }
    old
}

/// What one rebuilt mailbox holds.
struct Rebuilt {
    /// Live bytes and messages.
    bytes: u64,
    messages: u64,
    uidnext: u32,
    highest_modseq: u64,
}

/// Rebuilds one mailbox's index and cache.
fn rebuild_mailbox(
    dir: &Path,
    entry: &MailboxEntry,
    uidvalidity: u32,
    report: &mut Report,
) -> Result<Rebuilt> {
    let name = &entry.name;
    let mut old = read_old_index(dir);
    if old.damaged.is_some() && old.header.is_none_or(|h| h.uidnext == 0) {
        // Records may be missing and the header does not say how many: the list's bounds
        // are above whatever they held.
        old.max_uid = old.max_uid.max(entry.uid_bound.saturating_sub(1));
        old.bound_modseq = entry.modseq_bound;
    }
    if let Some(why) = &old.damaged {
        report
            .repairs
            .push(format!("{name} index: {why} -> rebuilt"));
    }
    let mut files: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut strays: Vec<PathBuf> = Vec::new();
    // Compacted cache generations (`cache.<g>`): derived data, replaced by the new cache.
    let mut old_caches: Vec<PathBuf> = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let e = e.map_err(|e| StoreError::io(dir, e))?;
        let fname = e.file_name().to_string_lossy().into_owned();
        if !e.path().is_file()
            || fname.starts_with('.')
            || fname == INDEX_FILE
            || fname == CACHE_FILE
        {
            continue;
        }
        if fname
            .strip_prefix("cache.")
            .is_some_and(|g| numeric(g).is_some())
        {
            old_caches.push(e.path());
            continue;
        }
        match numeric(&fname).filter(|&u| u != 0) {
            Some(uid) => {
                files.insert(uid, e.path());
            }
            None => strays.push(e.path()),
        }
    }
    strays.sort();
    let next = files
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(old.max_uid)
        .saturating_add(1);
    for (stray, uid) in strays.into_iter().zip(next..) {
        let to = dir.join(uid.to_string());
        fs::rename(&stray, &to).map_err(|e| StoreError::io(&stray, e))?;
        report.repairs.push(format!(
            "{name} file {}: no uid -> uid {uid}",
            stray
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        files.insert(uid, to);
    }
    let tmp_index = dir.join(".index.rebuild");
    let tmp_cache = dir.join(".cache.rebuild");
    for p in [&tmp_index, &tmp_cache] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(p, e)),
        }
    }
    let mut modseq = old
        .header
        .map_or(MODSEQ_INITIAL, |h| h.highest_modseq)
        .max(old.records.values().map(|r| r.modseq).max().unwrap_or(0))
        .max(old.bound_modseq);
    // UIDNEXT never goes back: it stays above the old index's (or the list's bound).
    let uidnext = old.max_uid.saturating_add(1);
    let mut index = Index::create_with(&tmp_index, entry.id, uidvalidity, uidnext, modseq)?;
    let mut cache = Cache::open(&tmp_cache)?;
    let (mut bytes_live, mut count) = (0u64, 0u64);
    for (&uid, path) in &files {
        let old_rec = old.records.get(&uid).copied();
        if old_rec.is_some_and(|r| r.expunged) {
            fs::remove_file(path).map_err(|e| StoreError::io(path, e))?;
            report
                .repairs
                .push(format!("{name} uid {uid}: expunged file -> removed"));
            continue;
        }
        let message = read_bounded(path, MESSAGE_BYTES_MAX)?;
        let at = cache.append(&cache_record(&message))?;
        let mut rec = match old_rec {
            Some(r) => {
                let mut keywords = 0u64;
                for bit in 0..64 {
                    if r.keywords & (1u64 << bit) != 0
                        && let Some(Some(k)) = old.keywords.get(bit)
                        && let Some(slot) = index.keyword_slot(k)?
                    {
                        keywords |= 1u64 << slot;
                    }
                }
                if r.size != message.len() as u64 {
                    report.repairs.push(format!(
                        "{name} uid {uid} size: {} -> {}",
                        r.size,
                        message.len()
                    ));
                }
                Record { keywords, ..r }
            }
            None => {
                modseq += 1;
                report
                    .repairs
                    .push(format!("{name} uid {uid}: not in index -> adopted"));
                let mtime = fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                Record {
                    uid,
                    flags: SystemFlags::default(),
                    modseq,
                    internaldate: mtime,
                    ..Record::default()
                }
            }
        };
        rec.size = message.len() as u64;
        rec.cache_offset = at.offset;
        rec.cache_len = at.len;
        rec.cache_crc = at.crc;
        rec.expunged = false;
        index.append(rec)?;
        bytes_live += rec.size;
        count += 1;
    }
    index.raise_modseq(modseq)?;
    let rebuilt = Rebuilt {
        bytes: bytes_live,
        messages: count,
        uidnext: index.uidnext(),
        highest_modseq: index.header().highest_modseq,
    };
    for p in [&tmp_index, &tmp_cache] {
        fs::File::open(p)
            .and_then(|f| f.sync_data())
            .map_err(|e| StoreError::io(p, e))?;
    }
    drop(index);
    rename_durable(&tmp_cache, &dir.join(CACHE_FILE))?;
    rename_durable(&tmp_index, &dir.join(INDEX_FILE))?;
    for p in &old_caches {
        fs::remove_file(p).map_err(|e| StoreError::io(p, e))?;
    }
    sync_dir(dir)?;
    Ok(rebuilt)
}
