//! Applying journal records to user trees, live (after the group commit) and in replay.
//! Every write here is a page-cache write; see `journal` for why that is durable enough.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::address::Address;
use crate::durable::read_bounded;
use crate::error::{Result, StoreError};
use crate::journal::record::{FlagMode, Op};
use crate::limits::{KEYWORDS_PER_MAILBOX_MAX, MAILBOXES_FILE_BYTES_MAX};
use crate::mailbox::cache::CACHE_FILE;
use crate::mailbox::cache::{Cache, CacheRef, read_entry};
use crate::mailbox::index::{INDEX_FILE, Index, MODSEQ_INITIAL, Record, SystemFlags};
use crate::mailbox::list::{MAILBOXES_FILE, MailboxList};
use crate::mailbox::view::MailboxView;
use crate::mailbox::{MAIL_DIR, mailbox_dir};
use crate::notify::{Change, ChangeKind, Notifier};
use crate::quota::{Usage, UsageFile};
use crate::store::Store;

/// What an applied record did, for the session that staged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A delivery or APPEND: `[APPENDUID uidvalidity uid]`.
    Delivered { uidvalidity: u32, uid: u32 },
    /// COPY/MOVE: `[COPYUID uidvalidity source-uids target-uids]`, in source order.
    Copied {
        uidvalidity: u32,
        uids: Vec<(u32, u32)>,
    },
    /// STORE: the UIDs whose flags changed and the modseq they now have.
    FlagsChanged { modseq: u64, uids: Vec<u32> },
    /// EXPUNGE: the UIDs removed.
    Expunged { uids: Vec<u32> },
    /// CREATE/DELETE/RENAME/SUBSCRIBE/special-use.
    MailboxesChanged,
}

/// Staged counters of a mailbox: the next UID and modseq handed out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counters {
    pub uid_next: u32,
    pub modseq: u64,
}

/// A mailbox whose index is loaded.
#[derive(Debug)]
pub(crate) struct OpenBox {
    pub index: Index,
    pub cache: Cache,
}

/// What a shard keeps of one user.
#[derive(Debug)]
pub(crate) struct User {
    pub dir: PathBuf,
    pub quota_bytes: u64,
    /// The list as applied (what sessions see).
    pub list: MailboxList,
    /// The list after every staged change (what new stage calls resolve names against).
    pub staged: MailboxList,
    /// The `mailboxes` file could not be read; replay may still repair it.
    pub list_damaged: Option<String>,
    pub boxes: HashMap<u32, OpenBox>,
    pub counters: HashMap<u32, Counters>,
    pub usage: Option<UsageFile>,
    /// Bytes of staged, not yet applied deliveries and copies (counted against quota).
    pub staged_bytes: u64,
    /// Records staged for this user and not yet applied.
    pub pending: usize,
}

/// Every loaded user tree of a shard and the work that follows applies.
#[derive(Debug)]
pub(crate) struct Trees {
    pub store: Arc<Store>,
    pub users: HashMap<Address, User>,
    pub notifier: Notifier,
    /// Files and folders to remove after the next checkpoint's syncfs (see `journal`, 5).
    pub unlink_queued: Vec<PathBuf>,
    /// Replay mode: indexes are opened with `open_recover`, files are checked.
    pub recovering: bool,
    /// Repairs done during replay, as "what: old -> new" lines.
    pub repairs: Vec<String>,
}

fn needs_reconstruct(user: &Address, name: &str, reason: impl Into<String>) -> StoreError {
    StoreError::NeedsReconstruct {
        address: user.to_string(),
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// True when a folder holds a file named like a message (all digits).
fn has_message_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok()).any(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
    })
}

/// `mail/.deleted-<id>`: where a deleted mailbox waits for the checkpoint.
pub(crate) fn deleted_dir(user_dir: &Path, id: u32) -> PathBuf {
    user_dir.join(MAIL_DIR).join(format!(".deleted-{id}"))
}

impl Trees {
    pub fn new(store: Arc<Store>) -> Trees {
        Trees {
            store,
            users: HashMap::new(),
            notifier: Notifier::default(),
            unlink_queued: Vec::new(),
            recovering: false,
            repairs: Vec::new(),
        }
    }

    /// Loads a user (profile, mailbox list) once.
    pub fn user(&mut self, addr: &Address) -> Result<&mut User> {
        if !self.users.contains_key(addr) {
            let user = self.load_user(addr)?;
            self.evict_idle();
            self.users.insert(addr.clone(), user);
        }
        self.users
            .get_mut(addr)
            .ok_or_else(|| StoreError::NotFound {
                address: addr.to_string(),
            })
    }

    fn evict_idle(&mut self) {
        if self.users.len() < crate::limits::USERS_CACHED_MAX || self.recovering {
            return;
        }
        let idle: Vec<Address> = self
            .users
            .iter()
            .filter(|(_, u)| u.pending == 0)
            .map(|(a, _)| a.clone())
            .take(self.users.len() / 4 + 1)
            .collect();
        for a in idle {
            self.users.remove(&a);
        }
    }

    fn load_user(&self, addr: &Address) -> Result<User> {
        let profile = self.store.account(addr)?;
        let dir = self.store.user_dir(addr);
        let path = dir.join(MAILBOXES_FILE);
        let (list, damaged) = match read_bounded(&path, MAILBOXES_FILE_BYTES_MAX) {
            Ok(bytes) => match MailboxList::parse(&path, &bytes) {
                Ok(list) => (list, None),
                Err(e) => (
                    MailboxList::default_for(profile.created_unix),
                    Some(e.to_string()),
                ),
            },
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                (MailboxList::default_for(profile.created_unix), None)
            }
            Err(e) => return Err(e),
        };
        Ok(User {
            dir,
            quota_bytes: profile.quota_bytes,
            staged: list.clone(),
            list,
            list_damaged: damaged,
            boxes: HashMap::new(),
            counters: HashMap::new(),
            usage: None,
            staged_bytes: 0,
            pending: 0,
        })
    }

    /// Applies one synced record. `cache` is the precomputed cache record of a delivery
    /// when the stage step made it (replay recomputes it).
    pub fn apply(&mut self, seq: u64, op: &Op, cache: Option<&[u8]>) -> Result<Outcome> {
        let recovering = self.recovering;
        let addr = op.user().clone();
        let user = self.user(&addr)?;
        if !recovering && let Some(reason) = &user.list_damaged {
            return Err(needs_reconstruct(&addr, MAILBOXES_FILE, reason.clone()));
        }
        // Usage is loaded (or computed from the indexes) before this record changes them.
        self.usage(&addr)?;
        match op {
            Op::Deliver {
                mailbox,
                uid,
                modseq,
                flags,
                keywords,
                internaldate,
                tz_minutes,
                message,
                ..
            } => {
                let rec = Record {
                    uid: *uid,
                    flags: SystemFlags(*flags & SystemFlags::ALL),
                    expunged: false,
                    tz_minutes: *tz_minutes,
                    keywords: 0,
                    modseq: *modseq,
                    internaldate: *internaldate,
                    size: message.len() as u64,
                    ..Record::default()
                };
                self.apply_deliver(&addr, *mailbox, rec, keywords, message, cache)
            }
            Op::Copy {
                source,
                target,
                modseq,
                uids,
                ..
            } => self.apply_copy(&addr, *source, *target, *modseq, uids),
            Op::Flags {
                mailbox,
                modseq,
                mode,
                flags,
                keywords,
                uids,
                ..
            } => self.apply_flags(&addr, *mailbox, *modseq, *mode, *flags, keywords, uids),
            Op::Expunge {
                mailbox,
                modseq,
                uids,
                ..
            } => self.apply_expunge(&addr, *mailbox, *modseq, uids),
            Op::Mailboxes { list, removed, .. } => self.apply_list(&addr, seq, list, removed),
            Op::DeliverFile {
                mailbox,
                uid,
                modseq,
                flags,
                keywords,
                internaldate,
                tz_minutes,
                size,
                name,
                ..
            } => {
                let rec = Record {
                    uid: *uid,
                    flags: SystemFlags(*flags & SystemFlags::ALL),
                    expunged: false,
                    tz_minutes: *tz_minutes,
                    keywords: 0,
                    modseq: *modseq,
                    internaldate: *internaldate,
                    size: *size,
                    ..Record::default()
                };
                let staged = self
                    .user(&addr)?
                    .dir
                    .join(crate::delivery::STAGING_DIR)
                    .join(name);
                self.apply_deliver_file(&addr, *mailbox, rec, keywords, &staged, cache)
            }
        }
    }

    /// The loaded box of an applied mailbox, creating its folder and index on first use.
    fn open_box(&mut self, addr: &Address, id: u32) -> Result<&mut OpenBox> {
        let recovering = self.recovering;
        let user = self.user(addr)?;
        if !user.boxes.contains_key(&id) {
            let entry = user
                .list
                .by_id(id)
                .cloned()
                .ok_or_else(|| StoreError::NoSuchMailbox {
                    name: format!("#{id}"),
                })?;
            let dir = mailbox_dir(&user.dir, id);
            let path = dir.join(INDEX_FILE);
            let index = if path.exists() {
                let ix = if recovering {
                    Index::open_recover(&path)
                } else {
                    Index::open(&path)
                };
                let ix = ix.map_err(|e| needs_reconstruct(addr, &entry.name, e.to_string()))?;
                let h = ix.header();
                if !recovering && (h.mailbox_id != id || h.uidvalidity != entry.uidvalidity) {
                    return Err(needs_reconstruct(
                        addr,
                        &entry.name,
                        "index belongs to another mailbox",
                    ));
                }
                ix
            } else if has_message_files(&dir) {
                return Err(needs_reconstruct(addr, &entry.name, "index missing"));
            } else {
                fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
                Index::create(&path, id, entry.uidvalidity)?
            };
            let cache = Cache::open(&dir.join(CACHE_FILE))?;
            user.boxes.insert(id, OpenBox { index, cache });
        }
        user.boxes
            .get_mut(&id)
            .ok_or_else(|| StoreError::NoSuchMailbox {
                name: format!("#{id}"),
            })
    }

    /// The staged counters of a mailbox (from its index when it has one).
    pub fn counters(&mut self, addr: &Address, id: u32) -> Result<&mut Counters> {
        let exists = self.user(addr)?.list.by_id(id).is_some();
        if !self.user(addr)?.counters.contains_key(&id) {
            let c = if exists {
                let b = self.open_box(addr, id)?;
                Counters {
                    uid_next: b.index.uidnext(),
                    modseq: b.index.header().highest_modseq,
                }
            } else {
                Counters {
                    uid_next: 1,
                    modseq: MODSEQ_INITIAL,
                }
            };
            self.user(addr)?.counters.insert(id, c);
        }
        let user = self.user(addr)?;
        user.counters
            .get_mut(&id)
            .ok_or_else(|| StoreError::NoSuchMailbox {
                name: format!("#{id}"),
            })
    }

    /// A view of an applied mailbox; a mailbox never written to has an empty view.
    pub fn view(&mut self, addr: &Address, name: &str) -> Result<MailboxView> {
        let user = self.user(addr)?;
        if let Some(reason) = &user.list_damaged {
            return Err(needs_reconstruct(addr, MAILBOXES_FILE, reason.clone()));
        }
        let entry = user
            .list
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchMailbox { name: name.into() })?;
        let dir = mailbox_dir(&user.dir, entry.id);
        if !user.boxes.contains_key(&entry.id)
            && !dir.join(INDEX_FILE).exists()
            && !has_message_files(&dir)
        {
            return Ok(MailboxView {
                name: entry.name,
                id: entry.id,
                dir,
                records: Rc::new(Vec::new()),
                keywords: Rc::new(Vec::new()),
                uidvalidity: entry.uidvalidity,
                uidnext: 1,
                highest_modseq: MODSEQ_INITIAL,
                cache: None,
            });
        }
        let b = self.open_box(addr, entry.id)?;
        Ok(MailboxView {
            name: entry.name,
            id: entry.id,
            dir,
            records: b.index.records().clone(),
            keywords: Rc::new(b.index.keywords().to_vec()),
            uidvalidity: b.index.header().uidvalidity,
            uidnext: b.index.uidnext(),
            highest_modseq: b.index.header().highest_modseq,
            cache: Some(b.cache.file_handle()?),
        })
    }

    /// The user's usage, opened (or computed from the indexes) on first use.
    pub fn usage(&mut self, addr: &Address) -> Result<&mut UsageFile> {
        if self.user(addr)?.usage.is_none() {
            let total = self.compute_usage(addr)?;
            let dir = self.user(addr)?.dir.clone();
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            let (file, _) = UsageFile::open(&dir, || Ok(total))?;
            self.user(addr)?.usage = Some(file);
        }
        let user = self.user(addr)?;
        user.usage.as_mut().ok_or_else(|| StoreError::NotFound {
            address: addr.to_string(),
        })
    }

    /// Sums the live messages of every mailbox's index.
    pub fn compute_usage(&mut self, addr: &Address) -> Result<Usage> {
        let ids: Vec<u32> = self
            .user(addr)?
            .list
            .mailboxes
            .iter()
            .map(|m| m.id)
            .collect();
        let mut usage = Usage::default();
        for id in ids {
            let dir = mailbox_dir(&self.user(addr)?.dir, id);
            if !dir.join(INDEX_FILE).exists() {
                continue;
            }
            let b = self.open_box(addr, id)?;
            for r in b.index.records().iter().filter(|r| !r.expunged) {
                usage.add(r.size, 1, false);
            }
        }
        Ok(usage)
    }

    /// Rewrites usage from the indexes (after replay).
    pub fn recompute_usage(&mut self, addr: &Address) -> Result<()> {
        let total = self.compute_usage(addr)?;
        let file = self.usage(addr)?;
        if file.usage.bytes != total.bytes || file.usage.messages != total.messages {
            let line = format!(
                "{addr} usage: {} bytes/{} messages -> {} bytes/{} messages",
                file.usage.bytes, file.usage.messages, total.bytes, total.messages
            );
            file.usage = total;
            file.write()?;
            self.repairs.push(line);
        }
        Ok(())
    }

    fn add_usage(
        &mut self,
        addr: &Address,
        seq_hint: u64,
        bytes: u64,
        msgs: u64,
        remove: bool,
    ) -> Result<()> {
        let file = self.usage(addr)?;
        file.usage.add(bytes, msgs, remove);
        file.usage.applied_seq = file.usage.applied_seq.max(seq_hint);
        file.write()
    }

    fn check_in_list(&mut self, addr: &Address, id: u32) -> Result<bool> {
        let recovering = self.recovering;
        let present = self.user(addr)?.list.by_id(id).is_some();
        if !present && !recovering {
            return Err(StoreError::NoSuchMailbox {
                name: format!("#{id}"),
            });
        }
        Ok(present)
    }

    fn keyword_bits(
        &mut self,
        addr: &Address,
        id: u32,
        keywords: &[String],
        allocate: bool,
    ) -> Result<u64> {
        let b = self.open_box(addr, id)?;
        let mut bits = 0u64;
        for k in keywords {
            let slot = if allocate {
                b.index.keyword_slot(k)?
            } else {
                b.index
                    .keywords()
                    .iter()
                    .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(k)))
            };
            if let Some(slot) = slot.filter(|&s| s < KEYWORDS_PER_MAILBOX_MAX) {
                bits |= 1u64 << slot;
            }
        }
        Ok(bits)
    }

    /// A delivery from a staged file: the file is hard-linked into the mailbox (the
    /// staged name goes after the next checkpoint, like an expunged file, since the
    /// record names it until its segment is deleted). Without a precomputed cache record
    /// (replay) the file is read to make one.
    /// A record that fails keeps its staged file (replay leaves it for reconstruct).
    fn apply_deliver_file(
        &mut self,
        addr: &Address,
        id: u32,
        rec: Record,
        keywords: &[String],
        staged: &Path,
        cache: Option<&[u8]>,
    ) -> Result<Outcome> {
        let outcome = self.deliver_file(addr, id, rec, keywords, staged, cache)?;
        self.unlink_queued.push(staged.to_path_buf());
        Ok(outcome)
    }

    fn deliver_file(
        &mut self,
        addr: &Address,
        id: u32,
        mut rec: Record,
        keywords: &[String],
        staged: &Path,
        cache: Option<&[u8]>,
    ) -> Result<Outcome> {
        if !self.check_in_list(addr, id)? {
            return Ok(Outcome::Delivered {
                uidvalidity: 0,
                uid: 0,
            });
        }
        let recovering = self.recovering;
        rec.keywords = self.keyword_bits(addr, id, keywords, true)?;
        let user_dir = self.user(addr)?.dir.clone();
        let path = mailbox_dir(&user_dir, id).join(rec.uid.to_string());
        let b = self.open_box(addr, id)?;
        let uidvalidity = b.index.header().uidvalidity;
        if rec.uid < b.index.uidnext() {
            // Replay of a delivery that reached the index: repair what did not reach disk.
            if let Some(pos) = b.index.find(rec.uid) {
                let mut have = b.index.records()[pos];
                let len = fs::metadata(&path).map(|m| m.len()).ok();
                if !have.expunged && recovering && len != Some(rec.size) && staged.exists() {
                    link_replacing(staged, &path)?;
                    self.repairs.push(format!(
                        "{} size: {} -> {} (from {})",
                        path.display(),
                        len.map_or("missing".into(), |l| l.to_string()),
                        rec.size,
                        staged.display()
                    ));
                }
                let b = self.open_box(addr, id)?;
                let at = CacheRef {
                    offset: have.cache_offset,
                    len: have.cache_len,
                    crc: have.cache_crc,
                };
                if !have.expunged && recovering && b.cache.read(at).is_err() {
                    let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                    let at = b.cache.append(&crate::delivery::cache_record(&bytes))?;
                    have.cache_offset = at.offset;
                    have.cache_len = at.len;
                    have.cache_crc = at.crc;
                    b.index.update(pos, have)?;
                    self.repairs.push(format!(
                        "{} cache of uid {}: damaged -> rewritten",
                        path.display(),
                        rec.uid
                    ));
                }
            }
            return Ok(Outcome::Delivered {
                uidvalidity,
                uid: rec.uid,
            });
        }
        link_replacing(staged, &path)?;
        let entry = match cache {
            Some(c) => c.to_vec(),
            None => {
                let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                crate::delivery::cache_record(&bytes)
            }
        };
        let b = self.open_box(addr, id)?;
        let appended = b.cache.append(&entry).and_then(|at| {
            rec.cache_offset = at.offset;
            rec.cache_len = at.len;
            rec.cache_crc = at.crc;
            b.index.append(rec)
        });
        if let Err(e) = appended {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.add_usage(addr, 0, rec.size, 1, false)?;
        self.notifier.publish(
            addr,
            id,
            Change {
                modseq: rec.modseq,
                uid: rec.uid,
                kind: ChangeKind::Appended,
            },
        );
        Ok(Outcome::Delivered {
            uidvalidity,
            uid: rec.uid,
        })
    }

    fn apply_deliver(
        &mut self,
        addr: &Address,
        id: u32,
        mut rec: Record,
        keywords: &[String],
        message: &[u8],
        cache: Option<&[u8]>,
    ) -> Result<Outcome> {
        if !self.check_in_list(addr, id)? {
            return Ok(Outcome::Delivered {
                uidvalidity: 0,
                uid: 0,
            });
        }
        let recovering = self.recovering;
        rec.keywords = self.keyword_bits(addr, id, keywords, true)?;
        let user_dir = self.user(addr)?.dir.clone();
        let path = mailbox_dir(&user_dir, id).join(rec.uid.to_string());
        let b = self.open_box(addr, id)?;
        let uidvalidity = b.index.header().uidvalidity;
        if rec.uid < b.index.uidnext() {
            // Replay of a delivery that reached the index: repair what did not reach disk.
            if let Some(pos) = b.index.find(rec.uid) {
                let mut have = b.index.records()[pos];
                if !have.expunged && recovering {
                    repair_message(&path, message, &mut self.repairs)?;
                    let b = self.open_box(addr, id)?;
                    let at = CacheRef {
                        offset: have.cache_offset,
                        len: have.cache_len,
                        crc: have.cache_crc,
                    };
                    if b.cache.read(at).is_err() {
                        let entry = cache
                            .map_or_else(|| crate::delivery::cache_record(message), <[u8]>::to_vec);
                        let at = b.cache.append(&entry)?;
                        have.cache_offset = at.offset;
                        have.cache_len = at.len;
                        have.cache_crc = at.crc;
                        b.index.update(pos, have)?;
                        self.repairs.push(format!(
                            "{} cache of uid {}: damaged -> rewritten",
                            path.display(),
                            rec.uid
                        ));
                    }
                }
            }
            return Ok(Outcome::Delivered {
                uidvalidity,
                uid: rec.uid,
            });
        }
        fs::write(&path, message).map_err(|e| {
            let _ = fs::remove_file(&path);
            StoreError::io(&path, e)
        })?;
        let entry;
        let entry_ref = match cache {
            Some(c) => c,
            None => {
                entry = crate::delivery::cache_record(message);
                &entry
            }
        };
        let b = self.open_box(addr, id)?;
        let appended = b.cache.append(entry_ref).and_then(|at| {
            rec.cache_offset = at.offset;
            rec.cache_len = at.len;
            rec.cache_crc = at.crc;
            b.index.append(rec)
        });
        if let Err(e) = appended {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.add_usage(addr, 0, rec.size, 1, false)?;
        self.notifier.publish(
            addr,
            id,
            Change {
                modseq: rec.modseq,
                uid: rec.uid,
                kind: ChangeKind::Appended,
            },
        );
        Ok(Outcome::Delivered {
            uidvalidity,
            uid: rec.uid,
        })
    }

    fn apply_copy(
        &mut self,
        addr: &Address,
        source: u32,
        target: u32,
        modseq: u64,
        uids: &[(u32, u32)],
    ) -> Result<Outcome> {
        if !self.check_in_list(addr, target)? {
            return Ok(Outcome::Copied {
                uidvalidity: 0,
                uids: Vec::new(),
            });
        }
        let user_dir = self.user(addr)?.dir.clone();
        let source_present = self.user(addr)?.list.by_id(source).is_some();
        // Read what is needed from the source first: it may be the target too.
        let mut found: Vec<(u32, u32, Record, Option<Vec<u8>>)> = Vec::new();
        if source_present {
            let sb = self.open_box(addr, source)?;
            for &(su, tu) in uids {
                if let Some(pos) = sb.index.find(su) {
                    let r = sb.index.records()[pos];
                    if !r.expunged {
                        let at = CacheRef {
                            offset: r.cache_offset,
                            len: r.cache_len,
                            crc: r.cache_crc,
                        };
                        found.push((su, tu, r, sb.cache.read(at).ok()));
                    }
                }
            }
        }
        let recovering = self.recovering;
        let keyword_names: HashMap<u32, Vec<String>> = if source_present {
            let sb = self.open_box(addr, source)?;
            let names = sb.index.keywords().to_vec();
            found
                .iter()
                .map(|(su, _, r, _)| {
                    let k = (0..64)
                        .filter(|bit| r.keywords & (1u64 << bit) != 0)
                        .filter_map(|bit| names.get(bit).cloned().flatten())
                        .collect();
                    (*su, k)
                })
                .collect()
        } else {
            HashMap::new()
        };
        let mut done = Vec::new();
        let mut added = (0u64, 0u64);
        for (su, tu, src, cached) in found {
            let from = mailbox_dir(&user_dir, source).join(su.to_string());
            let to = mailbox_dir(&user_dir, target).join(tu.to_string());
            let names = keyword_names.get(&su).cloned().unwrap_or_default();
            let bits = self.keyword_bits(addr, target, &names, true)?;
            let tb = self.open_box(addr, target)?;
            if tu < tb.index.uidnext() {
                if recovering && let Some(pos) = tb.index.find(tu) {
                    let mut have = tb.index.records()[pos];
                    if !to.exists() {
                        link_or_copy(&from, &to)?;
                        self.repairs
                            .push(format!("{} link: missing -> relinked", to.display()));
                    }
                    let tb = self.open_box(addr, target)?;
                    let at = CacheRef {
                        offset: have.cache_offset,
                        len: have.cache_len,
                        crc: have.cache_crc,
                    };
                    if !have.expunged && tb.cache.read(at).is_err() {
                        let entry = match cached {
                            Some(c) => c,
                            None => {
                                let bytes = fs::read(&to).map_err(|e| StoreError::io(&to, e))?;
                                crate::delivery::cache_record(&bytes)
                            }
                        };
                        let at = tb.cache.append(&entry)?;
                        have.cache_offset = at.offset;
                        have.cache_len = at.len;
                        have.cache_crc = at.crc;
                        tb.index.update(pos, have)?;
                        self.repairs
                            .push(format!("{} cache: damaged -> rewritten", to.display()));
                    }
                }
                done.push((su, tu));
                continue;
            }
            link_or_copy(&from, &to)?;
            let entry = match cached {
                Some(c) => c,
                None => {
                    let bytes = fs::read(&to).map_err(|e| StoreError::io(&to, e))?;
                    crate::delivery::cache_record(&bytes)
                }
            };
            let tb = self.open_box(addr, target)?;
            let at = tb.cache.append(&entry)?;
            let rec = Record {
                uid: tu,
                keywords: bits,
                modseq,
                cache_offset: at.offset,
                cache_len: at.len,
                cache_crc: at.crc,
                expunged: false,
                ..src
            };
            tb.index.append(rec)?;
            added.0 += rec.size;
            added.1 += 1;
            self.notifier.publish(
                addr,
                target,
                Change {
                    modseq,
                    uid: tu,
                    kind: ChangeKind::Appended,
                },
            );
            done.push((su, tu));
        }
        if added.1 > 0 {
            self.add_usage(addr, 0, added.0, added.1, false)?;
        }
        let uidvalidity = self.open_box(addr, target)?.index.header().uidvalidity;
        Ok(Outcome::Copied {
            uidvalidity,
            uids: done,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_flags(
        &mut self,
        addr: &Address,
        id: u32,
        modseq: u64,
        mode: FlagMode,
        flags: u8,
        keywords: &[String],
        uids: &[u32],
    ) -> Result<Outcome> {
        if !self.check_in_list(addr, id)? {
            return Ok(Outcome::FlagsChanged {
                modseq,
                uids: Vec::new(),
            });
        }
        let bits = self.keyword_bits(addr, id, keywords, mode != FlagMode::Remove)?;
        let flags = flags & SystemFlags::ALL;
        let b = self.open_box(addr, id)?;
        let mut changed = Vec::new();
        for &uid in uids {
            let Some(pos) = b.index.find(uid) else {
                continue;
            };
            let mut r = b.index.records()[pos];
            if r.expunged || r.modseq >= modseq {
                continue;
            }
            let (f, k) = match mode {
                FlagMode::Add => (r.flags.0 | flags, r.keywords | bits),
                FlagMode::Remove => (r.flags.0 & !flags, r.keywords & !bits),
                FlagMode::Replace => (flags, bits),
            };
            if (f, k) == (r.flags.0, r.keywords) {
                continue;
            }
            r.flags = SystemFlags(f);
            r.keywords = k;
            r.modseq = modseq;
            b.index.update(pos, r)?;
            changed.push(uid);
        }
        for &uid in &changed {
            self.notifier.publish(
                addr,
                id,
                Change {
                    modseq,
                    uid,
                    kind: ChangeKind::Flags,
                },
            );
        }
        Ok(Outcome::FlagsChanged {
            modseq,
            uids: changed,
        })
    }

    fn apply_expunge(
        &mut self,
        addr: &Address,
        id: u32,
        modseq: u64,
        uids: &[u32],
    ) -> Result<Outcome> {
        if !self.check_in_list(addr, id)? {
            return Ok(Outcome::Expunged { uids: Vec::new() });
        }
        let dir = mailbox_dir(&self.user(addr)?.dir, id);
        let b = self.open_box(addr, id)?;
        let mut gone = Vec::new();
        let mut freed = 0u64;
        for &uid in uids {
            let Some(pos) = b.index.find(uid) else {
                continue;
            };
            let mut r = b.index.records()[pos];
            if r.expunged {
                continue;
            }
            r.expunged = true;
            r.modseq = r.modseq.max(modseq);
            b.index.update(pos, r)?;
            freed += r.size;
            gone.push(uid);
        }
        for &uid in &gone {
            self.unlink_queued.push(dir.join(uid.to_string()));
            self.notifier.publish(
                addr,
                id,
                Change {
                    modseq,
                    uid,
                    kind: ChangeKind::Expunged,
                },
            );
        }
        if !gone.is_empty() {
            self.add_usage(addr, 0, freed, gone.len() as u64, true)?;
        }
        Ok(Outcome::Expunged { uids: gone })
    }

    fn apply_list(
        &mut self,
        addr: &Address,
        seq: u64,
        bytes: &[u8],
        removed: &[u32],
    ) -> Result<Outcome> {
        let recovering = self.recovering;
        let user = self.user(addr)?;
        let path = user.dir.join(MAILBOXES_FILE);
        let list = MailboxList::parse(&path, bytes)?;
        if recovering && user.list_damaged.is_none() && user.list.applied_seq >= seq {
            return Ok(Outcome::MailboxesChanged);
        }
        let tmp = user.dir.join(".mailboxes.tmp");
        fs::create_dir_all(&user.dir).map_err(|e| StoreError::io(&user.dir, e))?;
        fs::write(&tmp, bytes)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| StoreError::io(&path, e))?;
        if user.list_damaged.take().is_some() {
            self.repairs
                .push(format!("{} mailboxes: damaged -> replayed", addr));
        }
        let user = self.user(addr)?;
        user.list = list;
        if user.pending <= 1 {
            user.staged = user.list.clone();
        }
        for &id in removed {
            let freed = match self.user(addr)?.boxes.remove(&id) {
                Some(b) => b
                    .index
                    .records()
                    .iter()
                    .filter(|r| !r.expunged)
                    .fold((0u64, 0u64), |(s, n), r| (s + r.size, n + 1)),
                None => {
                    let dir = mailbox_dir(&self.user(addr)?.dir, id);
                    match Index::open_recover(&dir.join(INDEX_FILE)) {
                        Ok(ix) => ix
                            .records()
                            .iter()
                            .filter(|r| !r.expunged)
                            .fold((0u64, 0u64), |(s, n), r| (s + r.size, n + 1)),
                        Err(_) => (0, 0),
                    }
                }
            };
            let user_dir = self.user(addr)?.dir.clone();
            let from = mailbox_dir(&user_dir, id);
            let to = deleted_dir(&user_dir, id);
            match fs::rename(&from, &to) {
                Ok(()) => self.unlink_queued.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&from, e)),
            }
            if freed.1 > 0 {
                self.add_usage(addr, 0, freed.0, freed.1, true)?;
            }
        }
        Ok(Outcome::MailboxesChanged)
    }

    /// Reads a cache record of an applied message (used by COPY staging and tests).
    #[allow(dead_code)]
    pub fn read_cache(&mut self, addr: &Address, id: u32, rec: &Record) -> Result<Vec<u8>> {
        let b = self.open_box(addr, id)?;
        let path = b.index.path().with_file_name(CACHE_FILE);
        let file = b.cache.file_handle()?;
        read_entry(
            &file,
            &path,
            CacheRef {
                offset: rec.cache_offset,
                len: rec.cache_len,
                crc: rec.cache_crc,
            },
        )
    }
}

/// Writes the message file again when it is missing or has the wrong size.
fn repair_message(path: &Path, message: &[u8], repairs: &mut Vec<String>) -> Result<()> {
    let len = fs::metadata(path).map(|m| m.len()).ok();
    if len != Some(message.len() as u64) {
        fs::write(path, message).map_err(|e| StoreError::io(path, e))?;
        repairs.push(format!(
            "{} size: {} -> {}",
            path.display(),
            len.map_or("missing".into(), |l| l.to_string()),
            message.len()
        ));
    }
    Ok(())
}

/// Hard-links a staged file to its place in a mailbox, replacing what is there.
fn link_replacing(from: &Path, to: &Path) -> Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(to)
            .and_then(|()| fs::hard_link(from, to))
            .map_err(|e| StoreError::io(to, e)),
        Err(e) => Err(StoreError::io(to, e)),
    }
}

/// Hard-links `from` to `to` (COPY shares bytes); copies when linking is impossible. A
/// source in a deleted mailbox's waiting folder is found there.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let mut source = from.to_path_buf();
    if !source.exists()
        && let (Some(dir), Some(name)) = (from.parent(), from.file_name())
        && let (Some(mail), Some(id)) = (dir.parent(), dir.file_name())
    {
        source = mail
            .join(format!(".deleted-{}", id.to_string_lossy()))
            .join(name);
    }
    match fs::hard_link(&source, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(to)
            .and_then(|()| fs::hard_link(&source, to))
            .map_err(|e| StoreError::io(to, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::io(&source, e)),
        Err(_) => fs::copy(&source, to)
            .map(|_| ())
            .map_err(|e| StoreError::io(to, e)),
    }
}
