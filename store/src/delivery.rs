//! The one store API of the protocols (LMTP, IMAP, POP3): a per-shard [`Mailstore`] that
//! stages mutations into the journal, applies them after the group commit, and serves
//! mailbox views. Single-threaded and `!Send` by design: a shard owns it.
//!
//! # How the engine drives it
//!
//! ```text
//! start     let (ms, report) = Mailstore::open(store, shard)?;   // replays the journal
//! mutate    let t = ms.stage_deliver(&user, None, bytes, &flags, date)?;   // or any stage_*
//! flush     if let Some(target) = ms.sync_target()? {              // one per group
//!               /* helper thread */ target.run()                  // fdatasync
//!               ms.synced(&target)  /* or ms.sync_failed(&err) */ // applies, returns tickets
//!           }
//! answer    match ms.complete(&t) { Some(Ok(outcome)) => …, Some(Err(e)) => …, None => wait }
//! read      ms.open_mailbox(&user, "INBOX")? -> MailboxView;  ms.status(..);  ms.list_mailboxes(..)
//! tidy      if ms.checkpoint_due() { if let Some(c) = ms.prepare_checkpoint()? {
//!               /* own thread, syncs go on */ c.run() /* syncfs */;  ms.finish_checkpoint(c)? } }
//!           // or, to keep the unlinks of expunged files off the shard thread:
//!           //   let files = ms.finish_checkpoint_segments(c)?;
//!           //   /* own thread */ let failed = files.remove();  ms.expunged_removed(failed);
//! ```
//!
//! Nothing staged is visible or acknowledged before `synced` applied it. The crash argument
//! is in `journal`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::Address;
use crate::error::{Result, StoreError};
use crate::journal::record::{FlagMode, Op};
use crate::journal::{Journal, SyncTarget, shard_dir};
use crate::limits::{
    KEYWORD_BYTES_MAX, KEYWORDS_PER_MAILBOX_MAX, MESSAGE_BYTES_MAX, MODSEQ_RESERVE_STEP,
    UID_RESERVE_STEP, UIDS_PER_RECORD_MAX,
};
use crate::mailbox::apply::{Outcome as ApplyOutcome, Trees};
use crate::mailbox::index::SystemFlags;
use crate::mailbox::list::{MailboxEntry, SpecialUse};
use crate::mailbox::name::{INBOX, canonical};
use crate::mailbox::view::{MailboxView, Status};
use crate::notify::Notifier;
use crate::quota::{self, Usage};
use crate::store::Store;

pub use crate::mailbox::apply::Outcome;

/// The folder of a user's tree where large APPENDs are written before they are staged.
pub const STAGING_DIR: &str = "staging";

/// Normalises bare LF to CRLF (`store::message::normalize_crlf`); every other byte,
/// 8-bit and NUL included, is kept.
pub fn normalize_crlf(msg: &[u8]) -> Vec<u8> {
    crate::message::normalize_crlf(msg).into_owned()
}

/// The cache record of a message: its MIME structure precomputed once
/// (`store::message::precompute`) and encoded (`store::message::cache::encode`).
pub fn cache_record(msg: &[u8]) -> Vec<u8> {
    crate::message::cache::encode(&crate::message::precompute(msg))
}

/// Flags given with a delivery, APPEND or STORE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `SystemFlags` bits.
    pub system: u8,
    /// Keywords (IMAP atoms), at most `KEYWORD_BYTES_MAX` bytes each.
    pub keywords: Vec<String>,
}

impl Flags {
    fn validate(&self) -> Result<()> {
        let bad = |reason: String| StoreError::InvalidValue {
            field: "flags",
            reason,
        };
        if self.system & !SystemFlags::ALL != 0 {
            return Err(bad("unknown system flag bit".into()));
        }
        if self.keywords.len() > KEYWORDS_PER_MAILBOX_MAX {
            return Err(bad("too many keywords".into()));
        }
        for k in &self.keywords {
            let atom = k.bytes().all(|b| {
                b > b' '
                    && b < 0x7f
                    && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
            });
            if k.is_empty() || k.len() > KEYWORD_BYTES_MAX || !atom {
                return Err(bad(format!(
                    "keyword {k:?} is not an atom of at most {KEYWORD_BYTES_MAX} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// INTERNALDATE: seconds since the epoch and the zone it was given in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InternalDate {
    pub unix_secs: i64,
    pub tz_minutes: i16,
}

impl InternalDate {
    /// Now, in UTC.
    pub fn now() -> InternalDate {
        InternalDate {
            unix_secs: now_secs() as i64,
            tz_minutes: 0,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A staged mutation; `complete` gives its outcome once it is durable and applied.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    id: u64,
    last_seq: u64,
}

impl Ticket {
    /// Identifies the ticket in what `synced` returns.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Its last journal record.
    pub fn seq(&self) -> u64 {
        self.last_seq
    }
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    ticket: u64,
    last: bool,
    op: Op,
    cache: Option<Vec<u8>>,
    staged_bytes: u64,
    /// A bound reservation staged ahead of the ticket's own records: its success is not
    /// the ticket's outcome (its failure is).
    silent: bool,
}

/// What the engine syncs off-thread for a checkpoint: one handle per file system.
#[derive(Debug)]
pub struct CheckpointTarget {
    roots: Vec<File>,
    unlink: Vec<PathBuf>,
    /// The retired journal segment to keep as the spare (`Journal::recycle_candidate`).
    recycle: Option<File>,
    /// `run` zeroed `recycle`'s header on disk.
    blanked: std::sync::atomic::AtomicBool,
}

impl CheckpointTarget {
    /// `syncfs` of every root's file system; then, when a retired journal segment is to be
    /// the spare, its header is zeroed on disk (a failure there only means it is deleted
    /// instead). Blocking: run it on a helper thread.
    pub fn run(&self) -> io::Result<()> {
        for r in &self.roots {
            rustix::fs::syncfs(r).map_err(io::Error::from)?;
        }
        if let Some(f) = &self.recycle
            && crate::journal::blank_header(f).is_ok()
        {
            self.blanked
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }
}

/// What replay found and did at start.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Journal records re-applied.
    pub records: u64,
    /// "what: old -> new" lines.
    pub repairs: Vec<String>,
    /// Records that could not be applied, with the reason.
    pub failures: Vec<String>,
}

/// A shard's message store.
#[derive(Debug)]
pub struct Mailstore {
    trees: Trees,
    journal: Journal,
    pending: VecDeque<Pending>,
    results: HashMap<u64, Result<Outcome>>,
    next_ticket: u64,
    checkpoint_out: bool,
    /// A write failed for lack of space: a checkpoint (which deletes the journal's retired
    /// segments and the files expunged since the last one) is due at once.
    space_short: bool,
}

impl Mailstore {
    /// Opens shard `shard`'s store: replays its journal into the user trees, makes the
    /// result durable (syncfs of every root; blocking, start-up only) and starts a new
    /// journal segment.
    pub fn open(store: Arc<Store>, shard: u32) -> Result<(Mailstore, RecoveryReport)> {
        let dir = shard_dir(&store.roots()[0], shard);
        let mut trees = Trees::new(store.clone());
        trees.recovering = true;
        let mut report = RecoveryReport::default();
        let (old, last_seq) = Journal::replay(&dir, shard, |r| {
            report.records += 1;
            let op = match Op::decode(&r.payload) {
                Ok(op) => op,
                Err(e) => {
                    report.failures.push(format!("record {}: {e}", r.seq));
                    return Ok(());
                }
            };
            if let Err(e) = trees.apply(r.seq, &op, None) {
                report.failures.push(format!("record {}: {e}", r.seq));
                // The journal is deleted after replay: an acknowledged message must not go
                // with it. It is left in its mailbox folder under a name reconstruct adopts.
                if let Op::Deliver {
                    user,
                    mailbox,
                    message,
                    ..
                } = &op
                {
                    let dir = crate::mailbox::mailbox_dir(&store.user_dir(user), *mailbox);
                    let path = dir.join(format!("recovered-{}", r.seq));
                    std::fs::create_dir_all(&dir)
                        .and_then(|()| std::fs::write(&path, &message[..]))
                        .map_err(|e| StoreError::io(&path, e))?;
                    report.repairs.push(format!(
                        "{} journal record {}: unapplied -> kept",
                        path.display(),
                        r.seq
                    ));
                }
            }
            Ok(())
        })?;
        let touched: Vec<Address> = trees.users.keys().cloned().collect();
        for addr in touched {
            if let Err(e) = trees.recompute_usage(&addr) {
                report.failures.push(format!("{addr} usage: {e}"));
            }
        }
        if report.records > 0 {
            roots_target(&store, Vec::new())?
                .run()
                .map_err(|e| StoreError::io(store.roots()[0].clone(), e))?;
        }
        let mut journal = Journal::start(&dir, shard, &old, last_seq)?;
        journal.retire_replayed(&old)?;
        for p in trees.unlink_queued.drain(..) {
            remove_path(&p)?;
        }
        trees.recovering = false;
        // File times come from a coarse clock (a tick may be several milliseconds
        // behind `now`): only files older than a margin before the open are swept, so
        // an upload that begins right after the open is never taken for an orphan.
        let before = std::time::SystemTime::now() - crate::limits::STAGING_SWEEP_MARGIN;
        trees.sweep_before = Some(before);
        for user in trees.users.values() {
            crate::mailbox::apply::sweep_staging(&user.dir, before, &mut trees.repairs);
        }
        report.repairs.append(&mut trees.repairs);
        Ok((
            Mailstore {
                trees,
                journal,
                pending: VecDeque::new(),
                results: HashMap::new(),
                next_ticket: 1,
                checkpoint_out: false,
                space_short: false,
            },
            report,
        ))
    }

    /// The store this shard works on.
    pub fn store(&self) -> &Store {
        &self.trees.store
    }

    // ---- staging -------------------------------------------------------------------

    fn push(&mut self, ops: Vec<(Op, Option<Vec<u8>>, u64)>) -> Result<Ticket> {
        self.push_reserved(None, ops)
    }

    /// Stages `reserve` (a bound reservation, see `reservation`) and then `ops` as one
    /// ticket.
    fn push_reserved(
        &mut self,
        reserve: Option<Op>,
        ops: Vec<(Op, Option<Vec<u8>>, u64)>,
    ) -> Result<Ticket> {
        let id = self.next_ticket;
        let silent = usize::from(reserve.is_some());
        let ops = reserve.map(|op| (op, None, 0)).into_iter().chain(ops);
        let ops: Vec<_> = ops.collect();
        let n = ops.len();
        let mut last_seq = 0;
        for (i, (op, cache, staged_bytes)) in ops.into_iter().enumerate() {
            let seq = match self.journal.append_op(&op) {
                Ok(seq) => seq,
                Err(e) => {
                    self.space_short |= is_no_space(&e);
                    return Err(e);
                }
            };
            if let Ok(user) = self.trees.user(op.user()) {
                user.pending += 1;
                user.staged_bytes += staged_bytes;
            }
            last_seq = seq;
            self.pending.push_back(Pending {
                seq,
                ticket: id,
                last: i + 1 == n,
                op,
                cache,
                staged_bytes,
                silent: i < silent,
            });
        }
        self.next_ticket += 1;
        Ok(Ticket { id, last_seq })
    }

    /// The list record that raises mailbox `id`'s UID and modseq bounds over its staged
    /// counters, when these passed them (see `mailbox::list`). The caller stages it *before*
    /// the record that uses the new UIDs or modseqs, in the same ticket: the bound is then
    /// durable whenever they are, and a lost index cannot take UIDNEXT with it.
    fn reservation(&mut self, user: &Address, id: u32) -> Result<Option<Op>> {
        let c = *self.trees.counters(user, id)?;
        let next_seq = self.journal.next_seq();
        let u = self.trees.user(user)?;
        let within = u
            .staged
            .by_id(id)
            .is_none_or(|m| c.uid_next <= m.uid_bound && c.modseq <= m.modseq_bound);
        if within {
            return Ok(None);
        }
        let mut list = u.staged.clone();
        list.reserve(
            id,
            c.uid_next,
            c.modseq,
            UID_RESERVE_STEP,
            MODSEQ_RESERVE_STEP,
        );
        list.applied_seq = next_seq;
        let op = Op::Mailboxes {
            user: user.clone(),
            list: list.to_bytes()?,
            removed: Vec::new(),
        };
        u.staged = list;
        Ok(Some(op))
    }

    fn quota_check(&mut self, user: &Address, incoming: u64) -> Result<()> {
        let staged = self.trees.user(user)?.staged_bytes;
        let quota_bytes = self.trees.user(user)?.quota_bytes;
        if quota_bytes == 0 {
            return Ok(());
        }
        let used = self.trees.usage(user)?.usage.bytes;
        quota::check(quota_bytes, used.saturating_add(staged), incoming)
    }

    /// LMTP's RCPT-time check: `OverQuota` unless `incoming_bytes` more fit.
    pub fn check_quota(&mut self, user: &Address, incoming_bytes: u64) -> Result<()> {
        self.quota_check(user, incoming_bytes)
    }

    /// Bytes and messages in use (applied state).
    pub fn usage(&mut self, user: &Address) -> Result<Usage> {
        Ok(self.trees.usage(user)?.usage)
    }

    fn staged_entry(&mut self, user: &Address, name: &str) -> Result<MailboxEntry> {
        let u = self.trees.user(user)?;
        if let Some(reason) = &u.list_damaged {
            return Err(StoreError::NeedsReconstruct {
                address: user.to_string(),
                name: "mailboxes".into(),
                reason: reason.clone(),
            });
        }
        u.staged
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchMailbox { name: name.into() })
    }

    /// LMTP delivery into `mailbox` (INBOX when `None`). Bare LF becomes CRLF.
    pub fn stage_deliver(
        &mut self,
        user: &Address,
        mailbox: Option<&str>,
        message: &[u8],
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        self.stage_message(user, mailbox.unwrap_or(INBOX), message, flags, date)
    }

    /// [`Mailstore::stage_deliver`] of a message the caller already holds in an `Arc`
    /// (LMTP: one buffer for every recipient): when it has no bare LF the journal record
    /// and the message file write share that buffer, no copy of the message is made.
    pub fn stage_deliver_shared(
        &mut self,
        user: &Address,
        mailbox: Option<&str>,
        message: &Arc<Vec<u8>>,
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        check_message_size(message.len())?;
        let message = match crate::message::normalize_crlf(message) {
            std::borrow::Cow::Borrowed(_) => message.clone(),
            std::borrow::Cow::Owned(v) => Arc::new(v),
        };
        self.stage_normalized(user, mailbox.unwrap_or(INBOX), message, flags, date)
    }

    /// IMAP APPEND. `NoSuchMailbox` maps to `[TRYCREATE]`.
    pub fn stage_append(
        &mut self,
        user: &Address,
        mailbox: &str,
        message: &[u8],
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        self.stage_message(user, mailbox, message, flags, date)
    }

    /// [`Mailstore::stage_append`] of a message the caller hands over (the engine's
    /// streamed literal): when it has no bare LF, the journal record and the message file
    /// write use this buffer, no copy of the message is made.
    pub fn stage_append_owned(
        &mut self,
        user: &Address,
        mailbox: &str,
        message: Vec<u8>,
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        check_message_size(message.len())?;
        let message = match crate::message::normalize_crlf(&message) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(v) => Some(v),
        }
        .unwrap_or(message);
        self.stage_normalized(user, mailbox, Arc::new(message), flags, date)
    }

    /// Where the engine writes a large APPEND before [`Mailstore::stage_append_file`]:
    /// in the user's tree, so the file can be hard-linked into a mailbox.
    pub fn staging_dir(&self, user: &Address) -> PathBuf {
        self.trees.store.user_dir(user).join(STAGING_DIR)
    }

    /// IMAP APPEND of a large message the engine streamed to `path` (in
    /// [`Mailstore::staging_dir`]): already CRLF, `size` bytes, `cache` its precomputed
    /// cache record. The caller has made the file durable (fdatasync, and an fsync of
    /// the staging folder) before calling: the journal record only names it. The file
    /// belongs to the store from here on, also when this fails.
    #[allow(clippy::too_many_arguments)]
    pub fn stage_append_file(
        &mut self,
        user: &Address,
        mailbox: &str,
        path: PathBuf,
        size: u64,
        cache: Vec<u8>,
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        let staged = (|| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|_| path.parent() == Some(self.staging_dir(user).as_path()))
                .filter(|n| !n.starts_with('.'))
                .ok_or_else(|| StoreError::InvalidValue {
                    field: "staged file",
                    reason: format!("{} is not in the staging folder", path.display()),
                })?
                .to_owned();
            flags.validate()?;
            if size > MESSAGE_BYTES_MAX as u64 {
                return Err(StoreError::InvalidValue {
                    field: "message",
                    reason: format!("{size} bytes is over the limit of {MESSAGE_BYTES_MAX}"),
                });
            }
            let entry = self.staged_entry(user, mailbox)?;
            self.quota_check(user, size)?;
            let c = self.trees.counters(user, entry.id)?;
            let uid = c.uid_next;
            c.uid_next += 1;
            c.modseq += 1;
            let op = Op::DeliverFile {
                user: user.clone(),
                mailbox: entry.id,
                uid,
                modseq: c.modseq,
                flags: flags.system,
                keywords: flags.keywords.clone(),
                internaldate: date.unix_secs,
                tz_minutes: date.tz_minutes,
                size,
                name,
            };
            let reserve = self.reservation(user, entry.id)?;
            self.push_reserved(reserve, vec![(op, Some(cache), size)])
        })();
        if staged.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        staged
    }

    fn stage_message(
        &mut self,
        user: &Address,
        mailbox: &str,
        message: &[u8],
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        check_message_size(message.len())?;
        let message = Arc::new(normalize_crlf(message));
        self.stage_normalized(user, mailbox, message, flags, date)
    }

    /// Stages a delivery or APPEND of `message`, CRLF already.
    fn stage_normalized(
        &mut self,
        user: &Address,
        mailbox: &str,
        message: Arc<Vec<u8>>,
        flags: &Flags,
        date: InternalDate,
    ) -> Result<Ticket> {
        flags.validate()?;
        let entry = self.staged_entry(user, mailbox)?;
        self.quota_check(user, message.len() as u64)?;
        let cache = cache_record(&message);
        let c = self.trees.counters(user, entry.id)?;
        let uid = c.uid_next;
        c.uid_next += 1;
        c.modseq += 1;
        let modseq = c.modseq;
        let size = message.len() as u64;
        let op = Op::Deliver {
            user: user.clone(),
            mailbox: entry.id,
            uid,
            modseq,
            flags: flags.system,
            keywords: flags.keywords.clone(),
            internaldate: date.unix_secs,
            tz_minutes: date.tz_minutes,
            message,
        };
        let reserve = self.reservation(user, entry.id)?;
        self.push_reserved(reserve, vec![(op, Some(cache), size)])
    }

    fn copy_op(
        &mut self,
        user: &Address,
        source: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<CopyOp> {
        if uids.len() > UIDS_PER_RECORD_MAX {
            return Err(too_many_uids());
        }
        let src = self.staged_entry(user, source)?;
        let dst = self.staged_entry(user, target)?;
        let view = self.trees.view(user, &src.name)?;
        let mut wanted: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| view.get(*u).is_some())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let bytes: u64 = wanted
            .iter()
            .filter_map(|u| view.get(*u))
            .map(|r| r.size)
            .sum();
        self.quota_check(user, bytes)?;
        let c = self.trees.counters(user, dst.id)?;
        c.modseq += 1;
        let modseq = c.modseq;
        let pairs: Vec<(u32, u32)> = wanted
            .iter()
            .map(|&s| {
                let t = c.uid_next;
                c.uid_next += 1;
                (s, t)
            })
            .collect();
        let op = Op::Copy {
            user: user.clone(),
            source: src.id,
            target: dst.id,
            modseq,
            uids: pairs,
        };
        let reserve = self.reservation(user, dst.id)?;
        Ok(CopyOp {
            op,
            bytes,
            source: src.id,
            uids: wanted,
            reserve,
        })
    }

    /// IMAP COPY within the user: the message files are hard-linked, not copied.
    pub fn stage_copy(
        &mut self,
        user: &Address,
        source: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<Ticket> {
        let c = self.copy_op(user, source, uids, target)?;
        self.push_reserved(c.reserve, vec![(c.op, None, c.bytes)])
    }

    /// IMAP MOVE: a copy and an expunge of the source, flushed together.
    pub fn stage_move(
        &mut self,
        user: &Address,
        source: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<Ticket> {
        let CopyOp {
            op,
            bytes,
            source: src_id,
            uids: wanted,
            reserve,
        } = self.copy_op(user, source, uids, target)?;
        let c = self.trees.counters(user, src_id)?;
        c.modseq += 1;
        let expunge = Op::Expunge {
            user: user.clone(),
            mailbox: src_id,
            modseq: c.modseq,
            uids: wanted,
        };
        // One reservation record carries the whole staged list: the target's bounds (already
        // in `staged`) and the source's.
        let reserve = match self.reservation(user, src_id)? {
            Some(both) => Some(both),
            None => reserve,
        };
        self.push_reserved(reserve, vec![(op, None, bytes), (expunge, None, 0)])
    }

    /// IMAP STORE: add, remove or replace flags on `uids`; changed messages get a new modseq.
    pub fn stage_store_flags(
        &mut self,
        user: &Address,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
    ) -> Result<Ticket> {
        flags.validate()?;
        if uids.len() > UIDS_PER_RECORD_MAX {
            return Err(too_many_uids());
        }
        let entry = self.staged_entry(user, mailbox)?;
        let c = self.trees.counters(user, entry.id)?;
        c.modseq += 1;
        let op = Op::Flags {
            user: user.clone(),
            mailbox: entry.id,
            modseq: c.modseq,
            mode,
            flags: flags.system,
            keywords: flags.keywords.clone(),
            uids: uids.to_vec(),
        };
        let reserve = self.reservation(user, entry.id)?;
        self.push_reserved(reserve, vec![(op, None, 0)])
    }

    /// IMAP EXPUNGE / UID EXPUNGE, POP3 DELE+QUIT: removes `uids` (the caller picks them,
    /// e.g. those with `\Deleted`).
    pub fn stage_expunge(&mut self, user: &Address, mailbox: &str, uids: &[u32]) -> Result<Ticket> {
        if uids.len() > UIDS_PER_RECORD_MAX {
            return Err(too_many_uids());
        }
        let entry = self.staged_entry(user, mailbox)?;
        let c = self.trees.counters(user, entry.id)?;
        c.modseq += 1;
        let op = Op::Expunge {
            user: user.clone(),
            mailbox: entry.id,
            modseq: c.modseq,
            uids: uids.to_vec(),
        };
        let reserve = self.reservation(user, entry.id)?;
        self.push_reserved(reserve, vec![(op, None, 0)])
    }

    fn stage_list(
        &mut self,
        user: &Address,
        change: impl FnOnce(&mut crate::mailbox::MailboxList) -> Result<Vec<u32>>,
    ) -> Result<Ticket> {
        let next_seq = self.journal.next_seq();
        let u = self.trees.user(user)?;
        if let Some(reason) = &u.list_damaged {
            return Err(StoreError::NeedsReconstruct {
                address: user.to_string(),
                name: "mailboxes".into(),
                reason: reason.clone(),
            });
        }
        let mut list = u.staged.clone();
        let removed = change(&mut list)?;
        list.applied_seq = next_seq;
        let op = Op::Mailboxes {
            user: user.clone(),
            list: list.to_bytes()?,
            removed,
        };
        let ticket = self.push(vec![(op, None, 0)])?;
        self.trees.user(user)?.staged = list;
        Ok(ticket)
    }

    /// CREATE (missing parents are created too).
    pub fn stage_create_mailbox(
        &mut self,
        user: &Address,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Ticket> {
        let now = now_secs();
        self.stage_list(user, |l| {
            l.create(name, special_use, now).map(|_| Vec::new())
        })
    }

    /// DELETE (INBOX and mailboxes with children are refused).
    pub fn stage_delete_mailbox(&mut self, user: &Address, name: &str) -> Result<Ticket> {
        self.stage_list(user, |l| l.delete(name).map(|id| vec![id]))
    }

    /// RENAME, children included; INBOX's messages move and a new INBOX appears.
    pub fn stage_rename_mailbox(&mut self, user: &Address, from: &str, to: &str) -> Result<Ticket> {
        let now = now_secs();
        self.stage_list(user, |l| l.rename(from, to, now).map(|()| Vec::new()))
    }

    /// SUBSCRIBE / UNSUBSCRIBE.
    pub fn stage_subscribe(
        &mut self,
        user: &Address,
        name: &str,
        subscribed: bool,
    ) -> Result<Ticket> {
        self.stage_list(user, |l| l.subscribe(name, subscribed).map(|()| Vec::new()))
    }

    /// Sets or clears a special-use attribute.
    pub fn stage_set_special_use(
        &mut self,
        user: &Address,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Ticket> {
        self.stage_list(user, |l| {
            l.set_special_use(name, special_use).map(|()| Vec::new())
        })
    }

    // ---- group commit --------------------------------------------------------------

    /// What to fdatasync next (`None`: nothing new, or a flush is running). It also
    /// carries the message files of the deliveries it covers into mailboxes already open,
    /// for the helper thread to write after the sync (see `journal::MessageWrite`).
    pub fn sync_target(&mut self) -> Result<Option<SyncTarget>> {
        let Some(mut target) = self.journal.sync_target()? else {
            return Ok(None);
        };
        let up_to = target.up_to_seq();
        for p in self.pending.iter().take_while(|p| p.seq <= up_to) {
            if let Op::Deliver {
                user,
                mailbox,
                uid,
                message,
                ..
            } = &p.op
                && let Some(u) = self.trees.users.get(user)
                && u.boxes.contains_key(mailbox)
            {
                let path = crate::mailbox::message_path(&u.dir, *mailbox, *uid);
                target.add_write(p.seq, path, message.clone());
            }
        }
        Ok(Some(target))
    }

    /// A flush returned `Ok`: applies every record it covered, in order, and returns the
    /// ids of the tickets that are now complete.
    pub fn synced(&mut self, target: &SyncTarget) -> Vec<u64> {
        self.journal.synced(target.up_to_seq());
        let mut done = Vec::new();
        while self
            .pending
            .front()
            .is_some_and(|p| p.seq <= self.journal.synced_seq())
        {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.trees.message_written = target.wrote(p.seq);
            let result = self.trees.apply(p.seq, &p.op, p.cache.as_deref());
            if let Err(e) = &result {
                self.space_short |= is_no_space(e);
            }
            if let Some(user) = self.trees.users.get_mut(p.op.user()) {
                user.pending = user.pending.saturating_sub(1);
                user.staged_bytes = user.staged_bytes.saturating_sub(p.staged_bytes);
                if result.is_err() && matches!(p.op, Op::Mailboxes { .. }) {
                    user.staged = user.list.clone();
                }
            }
            let merged = match (self.results.remove(&p.ticket), result) {
                (Some(Err(e)), _) => Some(Err(e)),
                (Some(Ok(first)), Ok(_)) => Some(Ok(first)),
                (None, Ok(_)) if p.silent => None,
                (_, r) => Some(r),
            };
            if let Some(merged) = merged {
                self.results.insert(p.ticket, merged);
            }
            if p.last {
                done.push(p.ticket);
            }
        }
        done
    }

    /// A flush failed: every staged ticket fails and the store refuses new work until the
    /// shard restarts and replays (see `Journal::sync_failed`).
    pub fn sync_failed(&mut self, error: &io::Error) -> Vec<u64> {
        self.journal.sync_failed(error);
        let mut done = Vec::new();
        for p in self.pending.drain(..) {
            self.results.insert(
                p.ticket,
                Err(StoreError::JournalFailed {
                    reason: error.to_string(),
                }),
            );
            if p.last {
                done.push(p.ticket);
            }
        }
        for user in self.trees.users.values_mut() {
            user.pending = 0;
            user.staged_bytes = 0;
        }
        done
    }

    /// The outcome of a ticket once it is durable and applied (`None` before). Taking it
    /// forgets it.
    pub fn complete(&mut self, ticket: &Ticket) -> Option<Result<Outcome>> {
        if self.pending.iter().any(|p| p.ticket == ticket.id) {
            return None;
        }
        self.results.remove(&ticket.id)
    }

    // ---- checkpoint ----------------------------------------------------------------

    /// True when the journal is large enough for a checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        !self.checkpoint_out
            && (self.journal.checkpoint_due()
                || (self.space_short && self.journal.current_bytes() > 32))
    }

    /// Starts (or continues) a checkpoint; `Some` once every record of the retired
    /// segment is applied: the engine then runs `target.run()` off-thread and calls
    /// `finish_checkpoint`.
    pub fn prepare_checkpoint(&mut self) -> Result<Option<CheckpointTarget>> {
        if self.checkpoint_out {
            return Ok(None);
        }
        let up_to = self.journal.begin_checkpoint()?;
        if self.journal.synced_seq() < up_to || self.pending.front().is_some_and(|p| p.seq <= up_to)
        {
            return Ok(None);
        }
        let unlink = std::mem::take(&mut self.trees.unlink_queued);
        self.checkpoint_out = true;
        let mut target = roots_target(&self.trees.store, unlink)?;
        if !self.space_short {
            target.recycle = self.journal.recycle_candidate();
        }
        Ok(Some(target))
    }

    /// The syncfs returned `Ok`: deletes the retired journal segments and the files
    /// expunged before the checkpoint began.
    pub fn finish_checkpoint(&mut self, target: CheckpointTarget) -> Result<()> {
        let files = self.finish_checkpoint_segments(target)?;
        let failed = files.remove();
        self.expunged_removed(failed);
        Ok(())
    }

    /// The first half of [`Mailstore::finish_checkpoint`]: deletes the retired journal
    /// segments and hands over the files expunged before the checkpoint began, to be
    /// removed off the shard thread (thousands of unlinks after an EXPUNGE of a large
    /// mailbox held every session of the shard for up to seconds). No checkpoint starts
    /// until [`Mailstore::expunged_removed`] is called.
    pub fn finish_checkpoint_segments(
        &mut self,
        target: CheckpointTarget,
    ) -> Result<ExpungedFiles> {
        if self.space_short {
            self.journal.drop_spare();
        }
        self.space_short = false;
        let blanked = target.blanked.load(std::sync::atomic::Ordering::Acquire);
        if let Err(e) = self.journal.finish_checkpoint(blanked) {
            // The files stay queued for the next checkpoint.
            self.trees.unlink_queued.extend(target.unlink);
            self.checkpoint_out = false;
            return Err(e);
        }
        Ok(ExpungedFiles {
            paths: target.unlink,
        })
    }

    /// The expunged files are removed, except `failed` (queued again for the next
    /// checkpoint, each a repair line). Compacts the indexes (the records and cache
    /// entries of removed files are dead weight now) and allows the next checkpoint.
    pub fn expunged_removed(&mut self, failed: Vec<(PathBuf, String)>) {
        for (path, reason) in failed {
            self.trees.repairs.push(format!(
                "{}: not removed ({reason}) -> retried at the next checkpoint",
                path.display()
            ));
            self.trees.unlink_queued.push(path);
        }
        // Tombstones of files still queued stay (see `Trees::compact`).
        if let Err(e) = self.trees.compact() {
            self.trees.repairs.push(format!(
                "compaction: failed ({e}) -> retried at the next checkpoint"
            ));
        }
        self.checkpoint_out = false;
    }

    // ---- reading -------------------------------------------------------------------

    /// Opens a mailbox for a session: reads the index only.
    pub fn open_mailbox(&mut self, user: &Address, name: &str) -> Result<MailboxView> {
        self.trees.view(user, name)
    }

    /// SEARCH header lines of messages of a mailbox, kept in memory once read
    /// (`Trees::search_lines`).
    pub fn search_lines(
        &mut self,
        user: &Address,
        name: &str,
        uids: &[u32],
    ) -> Result<Vec<Option<std::rc::Rc<[u8]>>>> {
        self.trees.search_lines(user, name, uids)
    }

    /// STATUS counts.
    pub fn status(&mut self, user: &Address, name: &str) -> Result<Status> {
        Ok(self.trees.view(user, name)?.status())
    }

    /// The applied mailbox list, in id order.
    pub fn list_mailboxes(&mut self, user: &Address) -> Result<Vec<MailboxEntry>> {
        let u = self.trees.user(user)?;
        if let Some(reason) = &u.list_damaged {
            return Err(StoreError::NeedsReconstruct {
                address: user.to_string(),
                name: "mailboxes".into(),
                reason: reason.clone(),
            });
        }
        Ok(u.list.mailboxes.clone())
    }

    /// True when the mailbox has children (`\HasChildren`).
    pub fn has_children(&mut self, user: &Address, name: &str) -> Result<bool> {
        let name = canonical(name)?;
        Ok(self.trees.user(user)?.list.has_children(&name))
    }

    /// Change notifications of this shard (IDLE).
    pub fn notifier(&mut self) -> &mut Notifier {
        &mut self.trees.notifier
    }

    /// Forgets what is cached of a user (after an account change or an offline repair).
    /// Refused while the user has staged records.
    pub fn forget_user(&mut self, user: &Address) -> bool {
        match self.trees.users.get(user) {
            Some(u) if u.pending > 0 => false,
            _ => {
                self.trees.users.remove(user);
                true
            }
        }
    }

    /// The account was deleted (its directory is gone, files and all): its files still
    /// queued for removal are forgotten with its cached state. Otherwise an account
    /// created again under the same address (the same directory, mailbox ids from 1
    /// again) would lose new message files to the old account's expunges at the next
    /// checkpoint.
    pub fn account_deleted(&mut self, user: &Address) {
        let dir = self.trees.store.user_dir(user);
        self.trees.unlink_queued.retain(|p| !p.starts_with(&dir));
        self.forget_user(user);
    }

    /// Online reconstruct, all on the calling thread (see `begin_reconstruct` for the
    /// engine's way, which keeps the shard serving).
    pub fn reconstruct_user(
        &mut self,
        user: &Address,
        progress: impl FnMut(crate::reconstruct::Progress),
    ) -> Result<crate::reconstruct::Report> {
        let seq = self.begin_reconstruct(user)?;
        let report =
            crate::reconstruct::reconstruct_user_at(&self.trees.store, user, Some(seq), progress);
        self.end_reconstruct(user);
        report
    }

    /// Starts an online reconstruct of `user`: refused while the user has staged changes
    /// (or is being reconstructed already); otherwise the user's cached state is dropped and
    /// every access to the user is refused (`MailboxNotAllowed`, "retry") until
    /// `end_reconstruct`. Returns the journal sequence number to give
    /// `reconstruct::reconstruct_user_at`, which the caller runs on a helper thread: it
    /// touches only this user's tree, which nothing on the shard touches meanwhile.
    pub fn begin_reconstruct(&mut self, user: &Address) -> Result<u64> {
        if self.trees.busy.contains(user) || !self.forget_user(user) {
            return Err(StoreError::MailboxNotAllowed {
                action: "reconstruct",
                name: user.to_string(),
                reason: "changes are waiting for the journal or a reconstruct runs; retry",
            });
        }
        self.trees.busy.insert(user.clone());
        Ok(self.journal.written_seq())
    }

    /// Ends an online reconstruct: the user is served again, from the rebuilt files.
    pub fn end_reconstruct(&mut self, user: &Address) {
        self.trees.busy.remove(user);
        self.trees.users.remove(user);
    }

    /// Repairs done since the last call (a damaged index salvaged when a mailbox was
    /// opened), as "what: old -> new" lines for the log.
    pub fn take_repairs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trees.repairs)
    }

    /// Journal bytes in the current segment (metrics).
    pub fn journal_bytes(&self) -> u64 {
        self.journal.current_bytes()
    }
}

/// A staged COPY: its record, the bytes it adds, the source mailbox id and UIDs copied,
/// and the bound reservation to stage before it.
struct CopyOp {
    op: Op,
    bytes: u64,
    source: u32,
    uids: Vec<u32>,
    reserve: Option<Op>,
}

/// `InvalidValue` for a message over `MESSAGE_BYTES_MAX`.
fn check_message_size(len: usize) -> Result<()> {
    if len > MESSAGE_BYTES_MAX {
        return Err(StoreError::InvalidValue {
            field: "message",
            reason: format!("{len} bytes is over the limit of {MESSAGE_BYTES_MAX}"),
        });
    }
    Ok(())
}

/// True for a full file system (ENOSPC) or an exhausted disk quota (EDQUOT).
fn is_no_space(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
}

fn too_many_uids() -> StoreError {
    StoreError::InvalidValue {
        field: "uids",
        reason: format!("more than {UIDS_PER_RECORD_MAX} in one command"),
    }
}

/// Message files and mailbox directories expunged before a checkpoint, to remove once its
/// syncfs completed (see the journal's crash argument, point 5). `Send`: the engine
/// removes them on a thread of its own.
#[derive(Debug)]
pub struct ExpungedFiles {
    paths: Vec<PathBuf>,
}

impl ExpungedFiles {
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The paths, for the caller to queue again when the removing thread is lost.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Removes every file (a directory with its contents). Blocking. Returns the ones
    /// that could not be removed, with the reason; a file already gone is removed.
    pub fn remove(&self) -> Vec<(PathBuf, String)> {
        self.paths
            .iter()
            .filter_map(|p| remove_path(p).err().map(|e| (p.clone(), e.to_string())))
            .collect()
    }
}

/// One open root per file system.
fn roots_target(store: &Store, unlink: Vec<PathBuf>) -> Result<CheckpointTarget> {
    let mut devs = Vec::new();
    let mut roots = Vec::new();
    for root in store.roots() {
        let f = File::open(root).map_err(|e| StoreError::io(root, e))?;
        let dev = f.metadata().map_err(|e| StoreError::io(root, e))?.dev();
        if !devs.contains(&dev) {
            devs.push(dev);
            roots.push(f);
        }
    }
    Ok(CheckpointTarget {
        roots,
        unlink,
        recycle: None,
        blanked: std::sync::atomic::AtomicBool::new(false),
    })
}

fn remove_path(p: &std::path::Path) -> Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(p, e)),
    }
}

#[allow(dead_code)]
fn unused(_: ApplyOutcome) {}
