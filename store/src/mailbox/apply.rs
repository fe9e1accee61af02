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
use crate::limits::{
    COMPACT_CACHE_BYTES_MIN, COMPACT_DEAD_MIN, KEYWORDS_PER_MAILBOX_MAX, MAILBOXES_FILE_BYTES_MAX,
    SEARCH_LINES_BYTES_MAX, SEARCH_LINES_ENTRY_BYTES,
};
use crate::mailbox::cache::{Cache, CacheRef, read_entry};
use crate::mailbox::index::{
    Fallback, INDEX_FILE, Index, MODSEQ_INITIAL, Record, SystemFlags, cache_file_name,
};
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
    /// SEARCH header lines already read from this mailbox's cache records, by UID
    /// (`None`: the record keeps none). A read-through copy: a UID's lines never change,
    /// so entries need no upkeep; see [`Trees::search_lines`] for its bound. ahash: a
    /// SEARCH looks up every UID of the mailbox (SipHash was 10% of a SEARCH's CPU).
    pub search: ahash::AHashMap<u32, Option<Rc<[u8]>>>,
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
    /// Users being reconstructed off the shard thread: every access is refused meanwhile.
    pub busy: std::collections::HashSet<Address>,
    /// When this shard's store finished opening (replay done and made durable): a file
    /// in a staging folder last written before then is no journal record's (see
    /// [`sweep_staging`]). `None` while replaying.
    pub sweep_before: Option<std::time::SystemTime>,
    /// Bytes held by every open box's `search` copy (an upper bound: removed boxes are
    /// not subtracted; reaching the cap clears them all and starts again from 0).
    pub search_bytes: usize,
    /// Set for one `apply`: the delivery's message file is already written (by the group
    /// commit's helper thread, after the journal sync).
    pub message_written: bool,
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

/// Removes the files of `user_dir`'s staging folder last written before `before`: large
/// APPENDs whose upload never reached the journal (the client went away, or the server
/// stopped mid-upload; the engine removes the file itself otherwise), and staged files
/// whose delivery was applied but whose unlink after the checkpoint did not happen. Both
/// are safe to remove once the store has opened: replay applied every record that named a
/// staged file and made the result durable before the old journal was deleted, and a
/// file of an upload in progress is written after `before`. Each removal is a repair line.
pub(crate) fn sweep_staging(
    user_dir: &Path,
    before: std::time::SystemTime,
    repairs: &mut Vec<String>,
) {
    let dir = user_dir.join(crate::delivery::STAGING_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < before);
        if old && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => repairs.push(format!("{}: orphaned upload -> removed", path.display())),
                Err(e) => repairs.push(format!(
                    "{}: orphaned upload -> not removed ({e})",
                    path.display()
                )),
            }
        }
    }
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
            busy: std::collections::HashSet::new(),
            sweep_before: None,
            search_bytes: 0,
            message_written: false,
        }
    }

    /// The SEARCH header lines (`message::cache::search_header`) of `uids` in mailbox
    /// `name`, one answer per UID (`None`: no lines kept, or the record unreadable; the
    /// caller reads the message). Lines read once stay in memory with the open mailbox,
    /// so a repeated SEARCH FROM/SUBJECT over a large mailbox reads no file (Dovecot's
    /// index cache does the same job); the copies of all mailboxes of the shard together
    /// stay under [`SEARCH_LINES_BYTES_MAX`], past which they are dropped and read again.
    pub fn search_lines(
        &mut self,
        addr: &Address,
        name: &str,
        uids: &[u32],
    ) -> Result<Vec<Option<Rc<[u8]>>>> {
        let view = self.view(addr, name)?;
        let id = view.id();
        if view.cache.is_none() {
            return Ok(vec![None; uids.len()]);
        }
        let mut out: Vec<Option<Rc<[u8]>>> = vec![None; uids.len()];
        let mut missing: Vec<usize> = Vec::new();
        {
            let b = self.open_box(addr, id)?;
            for (i, uid) in uids.iter().enumerate() {
                match b.search.get(uid) {
                    Some(lines) => out[i] = lines.clone(),
                    None => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<u32> = missing.iter().map(|&i| uids[i]).collect();
        let mut read: Vec<(u32, Option<Rc<[u8]>>)> = Vec::with_capacity(wanted.len());
        view.cache_records(&wanted, |k, record| {
            if let Ok(record) = record {
                let lines = crate::message::cache::search_header(record)
                    .ok()
                    .flatten()
                    .map(Rc::<[u8]>::from);
                out[missing[k]] = lines.clone();
                read.push((wanted[k], lines));
            }
        });
        let added: usize = read
            .iter()
            .map(|(_, l)| SEARCH_LINES_ENTRY_BYTES + l.as_ref().map_or(0, |l| l.len()))
            .sum();
        if self.search_bytes + added > SEARCH_LINES_BYTES_MAX {
            for user in self.users.values_mut() {
                for b in user.boxes.values_mut() {
                    b.search = ahash::AHashMap::new();
                }
            }
            self.search_bytes = 0;
        }
        if added <= SEARCH_LINES_BYTES_MAX {
            let b = self.open_box(addr, id)?;
            b.search.extend(read);
            self.search_bytes += added;
        }
        Ok(out)
    }

    /// Loads a user (profile, mailbox list) once.
    pub fn user(&mut self, addr: &Address) -> Result<&mut User> {
        if !self.busy.is_empty() && self.busy.contains(addr) {
            return Err(StoreError::MailboxNotAllowed {
                action: "use the mailboxes of",
                name: addr.to_string(),
                reason: "a reconstruct is in progress; retry",
            });
        }
        if !self.users.contains_key(addr) {
            let user = self.load_user(addr)?;
            if let Some(before) = self.sweep_before {
                sweep_staging(&user.dir, before, &mut self.repairs);
            }
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
        let written = std::mem::take(&mut self.message_written);
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
                self.apply_deliver(&addr, *mailbox, rec, keywords, message, cache, written)
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
        if !self.user(addr)?.boxes.contains_key(&id) {
            let user = self.user(addr)?;
            let entry = user
                .list
                .by_id(id)
                .cloned()
                .ok_or_else(|| StoreError::NoSuchMailbox {
                    name: format!("#{id}"),
                })?;
            let dir = mailbox_dir(&user.dir, id);
            let path = dir.join(INDEX_FILE);
            let mut repairs = Vec::new();
            let mut adopt_below = None;
            let index = if path.exists() {
                let strict = if recovering {
                    None
                } else {
                    Some(Index::open(&path))
                };
                match strict {
                    Some(Ok(ix)) => ix,
                    Some(Err(e)) if !matches!(e, StoreError::Corrupt { .. }) => return Err(e),
                    _ => {
                        // Damaged (or after a crash): keep every intact record, rebuild the
                        // rest from the message files below.
                        let fallback = Fallback {
                            mailbox_id: id,
                            uidvalidity: entry.uidvalidity,
                            uid_bound: entry.uid_bound,
                            modseq_bound: entry.modseq_bound,
                        };
                        let s = Index::salvage(&path, Some(fallback))
                            .map_err(|e| needs_reconstruct(addr, &entry.name, e.to_string()))?;
                        repairs = s.repairs;
                        if s.holes || !recovering {
                            // In replay, records after the last intact one come back from
                            // the journal (with their flags); only holes are adopted.
                            adopt_below = Some(if recovering {
                                s.index.records().last().map_or(0, |r| r.uid)
                            } else {
                                u32::MAX
                            });
                        }
                        s.index
                    }
                }
            } else if has_message_files(&dir) {
                return Err(needs_reconstruct(addr, &entry.name, "index missing"));
            } else {
                fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
                Index::create(&path, id, entry.uidvalidity)?
            };
            let h = index.header();
            if h.mailbox_id != id || h.uidvalidity != entry.uidvalidity {
                return Err(needs_reconstruct(
                    addr,
                    &entry.name,
                    format!(
                        "index belongs to mailbox {} UIDVALIDITY {}",
                        h.mailbox_id, h.uidvalidity
                    ),
                ));
            }
            // A compaction that crashed before its index switch leaves the next generation.
            let unfinished = dir.join(cache_file_name(index.header().cache_gen + 1));
            if unfinished.exists() {
                fs::remove_file(&unfinished).map_err(|e| StoreError::io(&unfinished, e))?;
            }
            let cache = Cache::open(&index.cache_path())?;
            let mut b = OpenBox {
                index,
                cache,
                search: ahash::AHashMap::new(),
            };
            if let Some(below) = adopt_below {
                adopt_orphans(&dir, &mut b, below, &mut repairs)?;
            }
            self.repairs.append(&mut repairs);
            self.user(addr)?.boxes.insert(id, b);
        }
        self.user(addr)?
            .boxes
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
        let found = b.index.find(rec.uid);
        // Below UIDNEXT without a record: a replayed delivery whose record was lost (a torn
        // or damaged index); it is written again below, into its place.
        if rec.uid < b.index.uidnext() && (found.is_some() || !recovering) {
            // Replay of a delivery that reached the index: repair what did not reach disk.
            if let Some(pos) = found {
                let have = b.index.records()[pos];
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
                if !have.expunged && recovering {
                    self.repair_cache_entry(addr, id, pos, &path, || {
                        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                        Ok(crate::delivery::cache_record(&bytes))
                    })?;
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
        self.index_new_message(addr, id, rec, &entry, &path, uidvalidity)
    }

    /// Gives a delivered message file (already in place at `path`) its cache entry and
    /// index record, counts it in the usage and announces it; on failure the file goes.
    fn index_new_message(
        &mut self,
        addr: &Address,
        id: u32,
        mut rec: Record,
        entry: &[u8],
        path: &Path,
        uidvalidity: u32,
    ) -> Result<Outcome> {
        let b = self.open_box(addr, id)?;
        let appended = b.cache.append(entry).and_then(|at| {
            rec.cache_offset = at.offset;
            rec.cache_len = at.len;
            rec.cache_crc = at.crc;
            b.index.insert(rec)
        });
        if let Err(e) = appended {
            let _ = fs::remove_file(path);
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

    /// Replay found the record of message `pos` but its cache entry unreadable: writes
    /// the entry `make` computes and points the record at it.
    fn repair_cache_entry(
        &mut self,
        addr: &Address,
        id: u32,
        pos: usize,
        path: &Path,
        make: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<()> {
        let b = self.open_box(addr, id)?;
        let mut have = b.index.records()[pos];
        let at = CacheRef {
            offset: have.cache_offset,
            len: have.cache_len,
            crc: have.cache_crc,
        };
        if b.cache.read(at).is_ok() {
            return Ok(());
        }
        let at = b.cache.append(&make()?)?;
        have.cache_offset = at.offset;
        have.cache_len = at.len;
        have.cache_crc = at.crc;
        b.index.update(pos, have)?;
        self.repairs.push(format!(
            "{} cache of uid {}: damaged -> rewritten",
            path.display(),
            have.uid
        ));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_deliver(
        &mut self,
        addr: &Address,
        id: u32,
        mut rec: Record,
        keywords: &[String],
        message: &[u8],
        cache: Option<&[u8]>,
        written: bool,
    ) -> Result<Outcome> {
        let user_dir = self.user(addr)?.dir.clone();
        let path = mailbox_dir(&user_dir, id).join(rec.uid.to_string());
        let in_list = self.check_in_list(addr, id);
        if written && !matches!(in_list, Ok(true)) {
            let _ = fs::remove_file(&path);
        }
        if !in_list? {
            return Ok(Outcome::Delivered {
                uidvalidity: 0,
                uid: 0,
            });
        }
        let recovering = self.recovering;
        rec.keywords = match self.keyword_bits(addr, id, keywords, true) {
            Ok(bits) => bits,
            Err(e) => {
                if written {
                    let _ = fs::remove_file(&path);
                }
                return Err(e);
            }
        };
        let b = self.open_box(addr, id)?;
        let uidvalidity = b.index.header().uidvalidity;
        let found = b.index.find(rec.uid);
        // Below UIDNEXT without a record: a replayed delivery whose record was lost (a torn
        // or damaged index); it is written again below, into its place.
        if rec.uid < b.index.uidnext() && (found.is_some() || !recovering) {
            // Replay of a delivery that reached the index: repair what did not reach disk.
            if let Some(pos) = found {
                let have = b.index.records()[pos];
                if !have.expunged && recovering {
                    repair_message(&path, message, &mut self.repairs)?;
                    self.repair_cache_entry(addr, id, pos, &path, || {
                        Ok(cache
                            .map_or_else(|| crate::delivery::cache_record(message), <[u8]>::to_vec))
                    })?;
                }
            }
            return Ok(Outcome::Delivered {
                uidvalidity,
                uid: rec.uid,
            });
        }
        if !written {
            fs::write(&path, message).map_err(|e| {
                let _ = fs::remove_file(&path);
                StoreError::io(&path, e)
            })?;
        }
        let entry;
        let entry_ref = match cache {
            Some(c) => c,
            None => {
                entry = crate::delivery::cache_record(message);
                &entry
            }
        };
        self.index_new_message(addr, id, rec, entry_ref, &path, uidvalidity)
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
            let found = tb.index.find(tu);
            if tu < tb.index.uidnext() && (found.is_some() || !recovering) {
                if recovering && let Some(pos) = found {
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
            tb.index.insert(rec)?;
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

    /// Compacts every loaded mailbox with enough dead weight (see `compact_box`); run
    /// after a checkpoint, when the files expunged before it are gone. `queued` are files
    /// still waiting for the next checkpoint: their tombstones stay, so neither replay nor
    /// reconstruct can take such a file for a live message. Returns the mailboxes compacted.
    pub fn compact(&mut self) -> Result<usize> {
        let mut queued: HashMap<PathBuf, Vec<u32>> = HashMap::new();
        for p in &self.unlink_queued {
            if let (Some(dir), Some(uid)) = (
                p.parent(),
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<u32>().ok()),
            ) {
                queued.entry(dir.to_owned()).or_default().push(uid);
            }
        }
        let mut done = 0;
        for user in self.users.values_mut() {
            for (&id, b) in user.boxes.iter_mut() {
                let dir = mailbox_dir(&user.dir, id);
                let keep = queued.get(&dir).map_or(&[][..], Vec::as_slice);
                if compact_box(b, keep)? {
                    done += 1;
                }
            }
        }
        Ok(done)
    }

    /// Reads a cache record of an applied message (used by COPY staging and tests).
    #[allow(dead_code)]
    pub fn read_cache(&mut self, addr: &Address, id: u32, rec: &Record) -> Result<Vec<u8>> {
        let b = self.open_box(addr, id)?;
        let path = b.index.cache_path();
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

/// Gives a record to every message file of `dir` below UID `below` that has none (its
/// record was damaged and dropped by `Index::salvage`): flags are lost, the cache is
/// recomputed, and the modseq is new so CONDSTORE clients refetch.
fn adopt_orphans(dir: &Path, b: &mut OpenBox, below: u32, repairs: &mut Vec<String>) -> Result<()> {
    let mut uids: Vec<u32> = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let e = e.map_err(|e| StoreError::io(dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(uid) = name.parse::<u32>()
            && uid != 0
            && uid < below
            && b.index.find(uid).is_none()
        {
            uids.push(uid);
        }
    }
    if uids.is_empty() {
        return Ok(());
    }
    uids.sort_unstable();
    let first_modseq = b.index.header().highest_modseq + 1;
    let mut records = b.index.records().as_ref().clone();
    for (modseq, uid) in (first_modseq..).zip(uids) {
        let path = dir.join(uid.to_string());
        let message = read_bounded(&path, crate::limits::MESSAGE_BYTES_MAX)?;
        let at = b.cache.append(&crate::delivery::cache_record(&message))?;
        let mtime = fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        records.push(Record {
            uid,
            modseq,
            internaldate: mtime,
            size: message.len() as u64,
            cache_offset: at.offset,
            cache_len: at.len,
            cache_crc: at.crc,
            ..Record::default()
        });
        repairs.push(format!(
            "{} record: missing -> adopted from the message file",
            path.display()
        ));
    }
    records.sort_by_key(|r| r.uid);
    b.index.rewrite(records)
}

/// Rewrites a mailbox's index without its expunged records (but those in `keep`) and its
/// cache with only the live entries, when at least `COMPACT_DEAD_MIN` records are dead and
/// they are a quarter of all, or half the cache is dead bytes. Crash-safe: the new cache
/// generation is written and synced, then the index naming it is written, synced and
/// renamed over the old one (the switch), the directory synced, and only then the old
/// cache removed. Sessions' views keep reading the old cache through their open handles.
fn compact_box(b: &mut OpenBox, keep: &[u32]) -> Result<bool> {
    let records = b.index.records();
    let dead = records
        .iter()
        .filter(|r| r.expunged && !keep.contains(&r.uid))
        .count();
    let live_bytes: u64 = records
        .iter()
        .filter(|r| !r.expunged)
        .map(|r| u64::from(r.cache_len))
        .sum();
    let cache_bytes = b.cache.len();
    let dead_records = dead >= COMPACT_DEAD_MIN && dead * 4 >= records.len();
    let dead_cache = cache_bytes >= COMPACT_CACHE_BYTES_MIN && live_bytes * 2 <= cache_bytes;
    if !dead_records && !dead_cache {
        return Ok(false);
    }
    let dir = b
        .index
        .path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let gen_ = b.index.header().cache_gen + 1;
    let new_path = dir.join(cache_file_name(gen_));
    match fs::remove_file(&new_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(&new_path, e)),
    }
    let mut cache = Cache::open(&new_path)?;
    let mut kept = Vec::with_capacity(records.len() - dead);
    for r in records.iter() {
        if r.expunged {
            if keep.contains(&r.uid) {
                kept.push(Record {
                    cache_offset: 0,
                    cache_len: 0,
                    cache_crc: 0,
                    ..*r
                });
            }
            continue;
        }
        let at = CacheRef {
            offset: r.cache_offset,
            len: r.cache_len,
            crc: r.cache_crc,
        };
        let entry = match b.cache.read(at) {
            Ok(e) => e,
            // A damaged entry is recomputed from its message file.
            Err(_) => {
                let path = dir.join(r.uid.to_string());
                crate::delivery::cache_record(&read_bounded(
                    &path,
                    crate::limits::MESSAGE_BYTES_MAX,
                )?)
            }
        };
        let at = cache.append(&entry)?;
        kept.push(Record {
            cache_offset: at.offset,
            cache_len: at.len,
            cache_crc: at.crc,
            ..*r
        });
    }
    let old_path = b.index.cache_path();
    let synced = cache.sync();
    if let Err(e) = synced.and_then(|()| b.index.rewrite_for_cache(kept, gen_)) {
        let _ = fs::remove_file(&new_path);
        return Err(e);
    }
    crate::durable::sync_dir(&dir)?;
    b.cache = cache;
    fs::remove_file(&old_path).map_err(|e| StoreError::io(&old_path, e))?;
    Ok(true)
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
