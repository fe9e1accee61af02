//! The IMAP session's view of the store (`protocols::imap::ImapBackend`) for one
//! logged-in user, on the shard that owns the user. Synchronous, like the store:
//! mutations are staged and return a `Pending`; the driver commits the ticket
//! (group commit) and hands the outcome back to the session.

use std::collections::HashMap;
use std::rc::Rc;

use protocols::imap::backend as b;
use store::delivery::{Flags, InternalDate, Outcome, Ticket};
use store::journal::record::FlagMode;
use store::mailbox::SpecialUse;
use store::message::{PartKind, TransferEncoding};
use store::{Address, StoreError};

use crate::admin::proto::AdminRequest;
use crate::shard::Shard;

/// `Pending` numbers of account changes (SETQUOTA) have this bit set, so they never
/// collide with the store's ticket numbers.
const ADMIN_PENDING: u64 = 1 << 63;

pub struct StoreBackend {
    shard: Rc<Shard>,
    user: Address,
    /// Staged mutations by the number handed to the session.
    tickets: HashMap<u64, Ticket>,
    /// Account changes (SETQUOTA) the driver sends to the account's owning shard.
    admin: HashMap<u64, AdminRequest>,
    next_admin: u64,
    /// The selected mailbox: name and id (for change notifications).
    selected: Option<(String, u32)>,
    /// The selected mailbox's folder, for the message files FETCH sends (ids are never
    /// reused within a user, so it stays the mailbox's while selected, renamed or not).
    selected_dir: Option<std::path::PathBuf>,
    /// The streaming APPEND in progress, and large ones waiting to be staged.
    appending: Option<crate::services::imap_append::Staging>,
    deferred: HashMap<u64, crate::services::imap_append::Deferred>,
    deferred_count: u64,
}

/// `Pending` numbers of deferred (large, staged) APPENDs have this bit set: apart from
/// the store's tickets and from `ADMIN_PENDING`.
const DEFERRED_PENDING: u64 = 1 << 62;

impl StoreBackend {
    pub fn new(shard: Rc<Shard>, user: Address) -> StoreBackend {
        StoreBackend {
            shard,
            user,
            tickets: HashMap::new(),
            admin: HashMap::new(),
            next_admin: 0,
            selected: None,
            selected_dir: None,
            appending: None,
            deferred: HashMap::new(),
            deferred_count: 0,
        }
    }

    /// A large APPEND the session waits for, still to be made durable and staged
    /// (`imap_append::stage_deferred`) before its commit.
    pub fn take_deferred(
        &mut self,
        p: b::Pending,
    ) -> Option<crate::services::imap_append::Deferred> {
        self.deferred.remove(&p.0)
    }

    /// APPENDLIMIT: the session's literal limit and the store's message limit.
    pub const APPEND_LIMIT: u64 = {
        let store = store::limits::MESSAGE_BYTES_MAX as u64;
        let imap = protocols::imap::limits::IMAP_APPEND_BYTES_MAX;
        if store < imap { store } else { imap }
    };

    pub fn user(&self) -> &Address {
        &self.user
    }

    /// The file of message `uid` of `mailbox`: from the selected mailbox's folder without
    /// opening the mailbox again when it is the selected one (FETCH of a body).
    pub fn message_path(&self, mailbox: &str, uid: u32) -> Result<std::path::PathBuf, StoreError> {
        if let (Some((name, _)), Some(dir)) = (&self.selected, &self.selected_dir)
            && name == mailbox
        {
            return Ok(dir.join(uid.to_string()));
        }
        self.shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
            .map(|v| v.message_path(uid))
    }

    /// The selected mailbox's id, for waiting on its changes.
    pub fn selected_id(&self) -> Option<u32> {
        self.selected.as_ref().map(|(_, id)| *id)
    }

    /// The ticket behind a `Pending` the session is waiting for.
    pub fn take_ticket(&mut self, p: b::Pending) -> Option<Ticket> {
        self.tickets.remove(&p.0)
    }

    /// The account change behind a `Pending` the session is waiting for.
    pub fn take_admin(&mut self, p: b::Pending) -> Option<AdminRequest> {
        self.admin.remove(&p.0)
    }

    /// A message's precomputed record from the cache; a record of an older version
    /// (written before the SORT keys existed) is computed again from the message file.
    fn precomputed(
        &self,
        view: &store::mailbox::MailboxView,
        uid: u32,
    ) -> Result<store::message::Precomputed, b::BackendError> {
        let record = view.cache_record(uid).map_err(map_err)?;
        self.decode_record(view, uid, &record)
    }

    /// A cache record decoded (rebuilt from the message file when it is of an older
    /// version).
    fn decode_record(
        &self,
        view: &store::mailbox::MailboxView,
        uid: u32,
        record: &[u8],
    ) -> Result<store::message::Precomputed, b::BackendError> {
        store::message::cache::decode_or_rebuild(record, || {
            std::fs::read(view.message_path(uid)).ok()
        })
        .map_err(|e| {
            tracing::warn!("{} uid {uid}: cache record: {e:?}", self.user);
            b::BackendError::Unavailable
        })
    }

    /// `f` of each live message's cache record, one answer per UID in order, with one
    /// mailbox open and one read per stretch of the cache file (`layouts`, `envelopes`).
    /// A UID no longer live answers `Expunged`.
    fn per_record<T>(
        &self,
        mailbox: &str,
        uids: &[u32],
        f: impl Fn(&Self, &store::mailbox::MailboxView, u32, &[u8]) -> Result<T, b::BackendError>,
    ) -> Vec<Result<T, b::BackendError>> {
        let view = match self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
        {
            Ok(view) => view,
            Err(e) => {
                let e = map_err(e);
                return uids.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let mut out: Vec<Result<T, b::BackendError>> = uids
            .iter()
            .map(|_| Err(b::BackendError::Expunged))
            .collect();
        view.cache_records(uids, |i, record| {
            if view.get(uids[i]).is_some() {
                out[i] = record
                    .map_err(map_err)
                    .and_then(|record| f(self, &view, uids[i], record));
            }
        });
        out
    }

    fn pending(&mut self, t: Result<Ticket, StoreError>) -> Result<b::Pending, b::BackendError> {
        let t = t.map_err(map_err)?;
        let id = t.id();
        self.tickets.insert(id, t);
        Ok(b::Pending(id))
    }
}

/// The session's view of a precomputed message (fields moved, not copied).
fn to_layout(p: store::message::Precomputed) -> b::MessageLayout {
    let mailbox = |m: Option<store::message::Mailbox>| m.map(|m| (m.addr_spec, m.display_name));
    b::MessageLayout {
        size: p.size,
        parts: p
            .parts
            .into_iter()
            .map(|part| b::PartInfo {
                path: part.path,
                kind: match part.kind {
                    PartKind::Multipart => b::PartKind::Multipart,
                    PartKind::Message => b::PartKind::Message,
                    PartKind::Single => b::PartKind::Single,
                },
                header: (part.header.start, part.header.end),
                body: (part.body.start, part.body.end),
                encoding: match part.encoding {
                    TransferEncoding::SevenBit => b::TransferEncoding::SevenBit,
                    TransferEncoding::EightBit => b::TransferEncoding::EightBit,
                    TransferEncoding::Binary => b::TransferEncoding::Binary,
                    TransferEncoding::Base64 => b::TransferEncoding::Base64,
                    TransferEncoding::QuotedPrintable => b::TransferEncoding::QuotedPrintable,
                    TransferEncoding::Other => b::TransferEncoding::Other,
                },
                subtree_len: part.subtree_len,
                charset: part.charset,
                content_type: part.content_type,
            })
            .collect(),
        fields: b::SortFields {
            date: p.fields.date.map(|d| b::InternalDate {
                unix_secs: d.unix_seconds,
                tz_minutes: d.tz_minutes,
            }),
            subject: p.fields.subject,
            base_subject: p.fields.base_subject,
            from: mailbox(p.fields.from),
            to: mailbox(p.fields.to),
            cc: mailbox(p.fields.cc),
            message_id: p.fields.message_id,
            references: p.fields.references,
            in_reply_to: p.fields.in_reply_to,
        },
        envelope: p.envelope,
        bodystructure: p.bodystructure,
        body: p.body,
    }
}

impl Drop for StoreBackend {
    fn drop(&mut self) {
        <Self as b::ImapBackend>::unselect(self);
    }
}

pub fn map_err(e: StoreError) -> b::BackendError {
    match e {
        StoreError::NoSuchMailbox { .. } => b::BackendError::NoSuchMailbox,
        StoreError::MailboxExists { .. } => b::BackendError::AlreadyExists,
        StoreError::InvalidMailboxName { .. } => b::BackendError::InvalidName(e.to_string()),
        StoreError::MailboxNotAllowed { .. } => b::BackendError::NotAllowed(e.to_string()),
        StoreError::OverQuota { .. } => b::BackendError::OverQuota,
        StoreError::InvalidValue { .. } => b::BackendError::Limit(e.to_string()),
        other => {
            tracing::warn!("imap store error: {other}");
            b::BackendError::Unavailable
        }
    }
}

pub fn completion(o: Outcome) -> b::Completion {
    match o {
        Outcome::Delivered { uidvalidity, uid } => b::Completion::Appended { uidvalidity, uid },
        Outcome::Copied { uidvalidity, uids } => b::Completion::Copied { uidvalidity, uids },
        Outcome::FlagsChanged { modseq, uids } => b::Completion::FlagsChanged { modseq, uids },
        Outcome::Expunged { uids } => b::Completion::Expunged { uids },
        Outcome::MailboxesChanged => b::Completion::Done,
    }
}

fn special_to_imap(s: SpecialUse) -> b::SpecialUse {
    match s {
        SpecialUse::Sent => b::SpecialUse::Sent,
        SpecialUse::Drafts => b::SpecialUse::Drafts,
        SpecialUse::Trash => b::SpecialUse::Trash,
        SpecialUse::Junk => b::SpecialUse::Junk,
        SpecialUse::Archive => b::SpecialUse::Archive,
    }
}

fn special_from_imap(s: b::SpecialUse) -> Result<SpecialUse, b::BackendError> {
    match s {
        b::SpecialUse::Sent => Ok(SpecialUse::Sent),
        b::SpecialUse::Drafts => Ok(SpecialUse::Drafts),
        b::SpecialUse::Trash => Ok(SpecialUse::Trash),
        b::SpecialUse::Junk => Ok(SpecialUse::Junk),
        b::SpecialUse::Archive => Ok(SpecialUse::Archive),
        b::SpecialUse::All | b::SpecialUse::Flagged => Err(b::BackendError::Unsupported),
    }
}

fn flags(f: &b::Flags) -> Flags {
    Flags {
        system: f.system.0,
        keywords: f.keywords.clone(),
    }
}

/// The message lists sessions share (`b::MessageList`), one per mailbox state, on this
/// shard's thread: sessions that selected or caught up with the same mailbox at the same
/// state hold one list instead of one copy each. Weak: a list lives as long as a session
/// holds it.
#[derive(Default)]
struct SharedLists {
    lists: HashMap<(Address, u32), SharedList, ahash::RandomState>,
}

struct SharedList {
    /// The state the list is of: any change (append, flags, expunge) raises the modseq.
    uidvalidity: u32,
    uidnext: u32,
    highest_modseq: u64,
    list: std::sync::Weak<Vec<b::MessageMeta>>,
}

/// Entries past this many are pruned of lists no session holds any more.
const SHARED_LISTS_PRUNE: usize = 1024;

thread_local! {
    static SHARED_LISTS: std::cell::RefCell<SharedLists> = Default::default();
}

/// The state `view` is at.
fn state_of(view: &store::mailbox::MailboxView) -> b::ListState {
    b::ListState {
        uidvalidity: view.uidvalidity(),
        uidnext: view.uidnext(),
        highestmodseq: view.highest_modseq(),
    }
}

/// The shared list of the live messages of `view` as it is, if a session holds one.
fn shared_list_cached(
    user: &Address,
    view: &store::mailbox::MailboxView,
) -> Option<b::MessageList> {
    let state = state_of(view);
    SHARED_LISTS.with_borrow(|s| {
        s.lists
            .get(&(user.clone(), view.id()))
            .filter(|e| {
                e.uidvalidity == state.uidvalidity
                    && e.uidnext == state.uidnext
                    && e.highest_modseq == state.highestmodseq
            })
            .and_then(|e| e.list.upgrade())
    })
}

/// The live messages of `view` as a list shared with other sessions on this shard.
fn shared_list(user: &Address, view: &store::mailbox::MailboxView) -> b::MessageList {
    if let Some(list) = shared_list_cached(user, view) {
        return list;
    }
    // Sized first: collecting from the filtered records grew the vector by doubling,
    // copying the list over and over (a third of building it).
    let mut list = Vec::with_capacity(view.records().count());
    list.extend(view.records().map(|r| meta_of(view, r)));
    let list: b::MessageList = std::sync::Arc::new(list);
    tracing::debug!(
        "{user} mailbox {}: list of {} messages at modseq {} built",
        view.id(),
        list.len(),
        view.highest_modseq()
    );
    remember_list(user, view, &list);
    list
}

/// Whether `list` is the live messages of `view` (UIDs, flags, keyword counts,
/// modseqs, dates and sizes compared; keyword names not, they follow the bits). What
/// the state a session shares its list at proves; checked in debug builds.
fn list_is_view(list: &[b::MessageMeta], view: &store::mailbox::MailboxView) -> bool {
    let mut list = list.iter();
    view.records().all(|r| {
        list.next().is_some_and(|m| {
            m.uid == r.uid
                && m.flags.system.0 == r.flags.0
                && m.flags.keywords.len() == r.keywords.count_ones() as usize
                && m.modseq == r.modseq
                && m.internaldate.unix_secs == r.internaldate
                && m.internaldate.tz_minutes == r.tz_minutes
                && m.size == r.size
        })
    }) && list.next().is_none()
}

/// Offers `list`, the live messages of `view`, to later sessions.
fn remember_list(user: &Address, view: &store::mailbox::MailboxView, list: &b::MessageList) {
    let key = (user.clone(), view.id());
    SHARED_LISTS.with_borrow_mut(|s| {
        if s.lists.len() >= SHARED_LISTS_PRUNE {
            s.lists.retain(|_, e| e.list.strong_count() > 0);
        }
        s.lists.insert(
            key,
            SharedList {
                uidvalidity: view.uidvalidity(),
                uidnext: view.uidnext(),
                highest_modseq: view.highest_modseq(),
                list: std::sync::Arc::downgrade(list),
            },
        );
    });
}

/// A live record as the session sees it.
fn meta_of(
    view: &store::mailbox::MailboxView,
    r: &store::mailbox::index::Record,
) -> b::MessageMeta {
    b::MessageMeta {
        uid: r.uid,
        flags: b::Flags {
            system: b::SystemFlags(r.flags.0),
            keywords: view.keyword_names(r),
        },
        modseq: r.modseq,
        internaldate: b::InternalDate {
            unix_secs: r.internaldate,
            tz_minutes: r.tz_minutes,
        },
        size: r.size,
    }
}

fn meta(info: store::mailbox::MessageInfo) -> b::MessageMeta {
    b::MessageMeta {
        uid: info.uid,
        flags: b::Flags {
            system: b::SystemFlags(info.flags.0),
            keywords: info.keywords,
        },
        modseq: info.modseq,
        internaldate: b::InternalDate {
            unix_secs: info.internaldate,
            tz_minutes: info.tz_minutes,
        },
        size: info.size,
    }
}

impl b::ImapBackend for StoreBackend {
    fn list(&mut self) -> Result<Vec<b::MailboxInfo>, b::BackendError> {
        let list = self
            .shard
            .mail
            .with(|ms| ms.list_mailboxes(&self.user))
            .map_err(map_err)?;
        Ok(list
            .into_iter()
            .map(|m| b::MailboxInfo {
                name: m.name,
                noselect: false,
                nonexistent: false,
                special_use: m.special_use.map(special_to_imap),
                subscribed: m.subscribed,
            })
            .collect())
    }

    fn status(&mut self, mailbox: &str) -> Result<b::MailboxStatus, b::BackendError> {
        let s = self
            .shard
            .mail
            .with(|ms| ms.status(&self.user, mailbox))
            .map_err(map_err)?;
        Ok(b::MailboxStatus {
            messages: s.messages,
            recent: 0,
            uidnext: s.uidnext,
            uidvalidity: s.uidvalidity,
            unseen: s.unseen,
            highestmodseq: s.highest_modseq,
            size: s.size,
        })
    }

    fn create(
        &mut self,
        mailbox: &str,
        special_use: Option<b::SpecialUse>,
    ) -> Result<b::Pending, b::BackendError> {
        let su = special_use.map(special_from_imap).transpose()?;
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_create_mailbox(&self.user, mailbox, su));
        self.pending(t)
    }

    fn delete(&mut self, mailbox: &str) -> Result<b::Pending, b::BackendError> {
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_delete_mailbox(&self.user, mailbox));
        self.pending(t)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<b::Pending, b::BackendError> {
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_rename_mailbox(&self.user, from, to));
        self.pending(t)
    }

    fn subscribe(
        &mut self,
        mailbox: &str,
        subscribed: bool,
    ) -> Result<b::Pending, b::BackendError> {
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_subscribe(&self.user, mailbox, subscribed));
        self.pending(t)
    }

    fn select(&mut self, mailbox: &str, read_only: bool) -> Result<b::Snapshot, b::BackendError> {
        self.unselect();
        let view = self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
            .map_err(map_err)?;
        let messages = shared_list(&self.user, &view);
        let id = view.id();
        let highest = view.highest_modseq();
        self.shard
            .mail
            .with(|ms| ms.notifier().watch(&self.user, id, highest));
        self.selected = Some((view.name().to_owned(), id));
        self.selected_dir = Some(view.dir().to_owned());
        Ok(b::Snapshot {
            name: view.name().to_owned(),
            uidvalidity: view.uidvalidity(),
            uidnext: view.uidnext(),
            highestmodseq: highest,
            messages,
            keywords: view.defined_keywords(),
            keywords_creatable: true,
            recent: 0,
            read_only,
        })
    }

    fn unselect(&mut self) {
        self.selected_dir = None;
        if let Some((_, id)) = self.selected.take() {
            self.shard
                .mail
                .with(|ms| ms.notifier().unwatch(&self.user, id));
        }
    }

    /// From the shard's change log (`store::notify`) when it reaches back to
    /// `since_modseq`: O(changes), however big the mailbox. When it does not (truncated,
    /// or not watched), the whole live state as `live_uids`.
    fn changes(&mut self, mailbox: &str, since_modseq: u64) -> Result<b::Changes, b::BackendError> {
        let view = self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
            .map_err(map_err)?;
        let logged = self.shard.mail.with(|ms| {
            ms.notifier()
                .changes_since(&self.user, view.id(), since_modseq)
        });
        let c = view.changes_since(logged, since_modseq);
        Ok(b::Changes {
            highestmodseq: view.highest_modseq(),
            uidnext: view.uidnext(),
            updated: c.updated.into_iter().map(meta).collect(),
            expunged: c.expunged,
            live_uids: c.live,
            uidvalidity: view.uidvalidity(),
            current: shared_list_cached(&self.user, &view),
        })
    }

    /// Kept for later sessions when the mailbox is still at `state`: the session's list
    /// is then the mailbox as it is (`Changes::current` says why), which debug builds
    /// check against the index; the check is O(messages), the state O(1).
    fn share(&mut self, mailbox: &str, state: b::ListState, list: &b::MessageList) {
        let Ok(view) = self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
        else {
            return;
        };
        if state_of(&view) != state || shared_list_cached(&self.user, &view).is_some() {
            return;
        }
        debug_assert!(
            list_is_view(list, &view),
            "{} mailbox {}: a session's list at {state:?} is not the index",
            self.user,
            view.id()
        );
        remember_list(&self.user, &view, list);
    }

    fn layout(&mut self, mailbox: &str, uid: u32) -> Result<b::MessageLayout, b::BackendError> {
        let view = self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
            .map_err(map_err)?;
        if view.get(uid).is_none() {
            return Err(b::BackendError::Expunged);
        }
        Ok(to_layout(self.precomputed(&view, uid)?))
    }

    /// One mailbox open and one read per stretch of the cache file for the batch.
    fn layouts(
        &mut self,
        mailbox: &str,
        uids: &[u32],
    ) -> Vec<Result<b::MessageLayout, b::BackendError>> {
        self.per_record(mailbox, uids, |this, view, uid, record| {
            this.decode_record(view, uid, record).map(to_layout)
        })
    }

    /// Like `layouts`, but only the envelope of each record is read
    /// (`store::message::cache::envelope`); a record of a version that must be rebuilt
    /// goes through the full decode.
    fn envelopes(&mut self, mailbox: &str, uids: &[u32]) -> Vec<Result<Vec<u8>, b::BackendError>> {
        self.per_record(mailbox, uids, |this, view, uid, record| {
            match store::message::cache::envelope(record) {
                Ok(envelope) => Ok(envelope.to_vec()),
                Err(_) => this.decode_record(view, uid, record).map(|p| p.envelope),
            }
        })
    }

    /// One mailbox open, no cache record read.
    fn live(&mut self, mailbox: &str, uids: &[u32]) -> Vec<bool> {
        match self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
        {
            Ok(view) => uids.iter().map(|&uid| view.get(uid).is_some()).collect(),
            Err(_) => vec![false; uids.len()],
        }
    }

    /// One mailbox open for the whole set: SORT and THREAD read nothing but the
    /// cache records.
    fn sort_keys(
        &mut self,
        mailbox: &str,
        uids: &[u32],
    ) -> Result<Vec<b::SortKeys>, b::BackendError> {
        let view = self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(uids.len());
        for &uid in uids {
            let keys = match view.get(uid) {
                None => b::SortKeys::default(),
                Some(_) => {
                    let k = self.precomputed(&view, uid)?.sort;
                    b::SortKeys {
                        sent_date: k.sent_date,
                        subject: k.subject,
                        reply_or_forward: k.reply_or_forward,
                        from: k.from,
                        to: k.to,
                        cc: k.cc,
                        display_from: k.display_from,
                        display_to: k.display_to,
                        message_id: k.message_id,
                        references: k.references,
                    }
                }
            };
            out.push(keys);
        }
        Ok(out)
    }

    fn search_header_fields(&self) -> &'static [&'static str] {
        store::message::SEARCH_HEADER_FIELDS
    }

    /// From the store's in-memory copy, or the cache records read together
    /// (`Mailstore::search_lines`); no message file is opened. Records without the lines (version 2, or damaged: the
    /// file read reports that) answer `None` and SEARCH reads the file.
    fn search_header(
        &mut self,
        mailbox: &str,
        uids: &[u32],
    ) -> Result<Vec<Option<std::rc::Rc<[u8]>>>, b::BackendError> {
        self.shard
            .mail
            .with(|ms| ms.search_lines(&self.user, mailbox, uids))
            .map_err(map_err)
    }

    /// Small reads the session makes itself (HEADER.FIELDS, BINARY decoding,
    /// SEARCH); whole bodies go out through `Transmit::Message`, streamed.
    fn read(
        &mut self,
        mailbox: &str,
        uid: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, b::BackendError> {
        use std::io::{Read, Seek, SeekFrom};
        let view = self
            .shard
            .mail
            .with(|ms| ms.open_mailbox(&self.user, mailbox))
            .map_err(map_err)?;
        if view.get(uid).is_none() {
            return Err(b::BackendError::Expunged);
        }
        let mut f =
            std::fs::File::open(view.message_path(uid)).map_err(|_| b::BackendError::Expunged)?;
        let len = end.saturating_sub(start);
        let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.take(len).read_to_end(&mut out))
            .map_err(|_| b::BackendError::Unavailable)?;
        Ok(out)
    }

    fn append_limit(&self) -> Option<u64> {
        Some(Self::APPEND_LIMIT)
    }

    fn append_begin(&mut self, mailbox: &str, size: u64) -> Result<(), b::BackendError> {
        self.shard
            .mail
            .with(|ms| {
                ms.open_mailbox(&self.user, mailbox)?;
                ms.check_quota(&self.user, size)
            })
            .map_err(map_err)?;
        self.appending = Some(crate::services::imap_append::Staging::for_literal(size));
        Ok(())
    }

    fn append_data(&mut self, data: &[u8]) -> Result<(), b::BackendError> {
        let Some(staging) = self.appending.as_mut() else {
            return Err(b::BackendError::Unavailable);
        };
        let (shard, user) = (&self.shard, &self.user);
        staging
            .push(|| shard.mail.with(|ms| ms.staging_dir(user)), data)
            .map_err(|e| {
                tracing::warn!("{user} append: {e}");
                b::BackendError::Unavailable
            })
    }

    fn append_commit(
        &mut self,
        mailbox: &str,
        f: &b::Flags,
        date: Option<b::InternalDate>,
    ) -> Result<b::Pending, b::BackendError> {
        use crate::services::imap_append::{Deferred, Staged};
        let staging = self.appending.take().ok_or(b::BackendError::Unavailable)?;
        let staged = staging.finish().map_err(|e| {
            tracing::warn!("{} append: {e}", self.user);
            b::BackendError::Unavailable
        })?;
        match staged {
            Staged::Inline(message) => {
                let date = date.map_or_else(InternalDate::now, |d| InternalDate {
                    unix_secs: d.unix_secs,
                    tz_minutes: d.tz_minutes,
                });
                let t = self.shard.mail.with(|ms| {
                    ms.stage_append_owned(&self.user, mailbox, message, &flags(f), date)
                });
                self.pending(t)
            }
            Staged::File(file, path, size) => {
                let id = DEFERRED_PENDING | (self.deferred_count & (DEFERRED_PENDING - 1));
                self.deferred_count += 1;
                let date = date.map_or_else(InternalDate::now, |d| InternalDate {
                    unix_secs: d.unix_secs,
                    tz_minutes: d.tz_minutes,
                });
                self.deferred.insert(
                    id,
                    Deferred {
                        mailbox: mailbox.to_owned(),
                        flags: flags(f),
                        date,
                        path,
                        file,
                        size,
                    },
                );
                Ok(b::Pending(id))
            }
        }
    }

    fn append_abort(&mut self) {
        self.appending = None;
    }

    fn append(
        &mut self,
        mailbox: &str,
        f: &b::Flags,
        date: Option<b::InternalDate>,
        message: &[u8],
    ) -> Result<b::Pending, b::BackendError> {
        let date = date
            .map(|d| InternalDate {
                unix_secs: d.unix_secs,
                tz_minutes: d.tz_minutes,
            })
            .unwrap_or_else(InternalDate::now);
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_append(&self.user, mailbox, message, &flags(f), date));
        self.pending(t)
    }

    fn store_flags(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        mode: b::FlagMode,
        f: &b::Flags,
    ) -> Result<b::Pending, b::BackendError> {
        let mode = match mode {
            b::FlagMode::Add => FlagMode::Add,
            b::FlagMode::Remove => FlagMode::Remove,
            b::FlagMode::Replace => FlagMode::Replace,
        };
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_store_flags(&self.user, mailbox, uids, mode, &flags(f)));
        self.pending(t)
    }

    fn expunge(&mut self, mailbox: &str, uids: &[u32]) -> Result<b::Pending, b::BackendError> {
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_expunge(&self.user, mailbox, uids));
        self.pending(t)
    }

    fn copy(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<b::Pending, b::BackendError> {
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_copy(&self.user, mailbox, uids, target));
        self.pending(t)
    }

    fn move_messages(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<b::Pending, b::BackendError> {
        let t = self
            .shard
            .mail
            .with(|ms| ms.stage_move(&self.user, mailbox, uids, target));
        self.pending(t)
    }

    fn quota_roots(&mut self, _mailbox: &str) -> Result<Vec<b::Quota>, b::BackendError> {
        Ok(vec![self.quota("")?])
    }

    /// Quota roots: `""` is the user's own mail, an address another account's. The
    /// change goes through the same admin path as `msgstore account set --quota`, on
    /// the account's owning shard.
    fn set_quota(
        &mut self,
        root: &str,
        storage_kib: Option<u64>,
    ) -> Result<b::Pending, b::BackendError> {
        let me = self.shard.store.account(&self.user).map_err(map_err)?;
        if !me.flags.manage {
            return Err(b::BackendError::NoPermission);
        }
        let target = if root.is_empty() {
            self.user.clone()
        } else {
            Address::parse(root).map_err(|_| b::BackendError::NoSuchMailbox)?
        };
        let quota_bytes = match storage_kib {
            // 0 = no limit in the profile; a limit of 0 KiB would refuse everything,
            // which is what a client asking for it means: keep it at 1 byte.
            Some(kib) => kib.saturating_mul(1024).max(1),
            None => 0,
        };
        let id = ADMIN_PENDING | self.next_admin;
        self.next_admin += 1;
        self.admin.insert(
            id,
            AdminRequest::AccountSet {
                address: target.to_string(),
                name: None,
                quota_bytes: Some(quota_bytes),
                flags: None,
                password_hash: None,
                drop_cram: false,
            },
        );
        Ok(b::Pending(id))
    }

    fn quota(&mut self, root: &str) -> Result<b::Quota, b::BackendError> {
        if !root.is_empty() {
            return Err(b::BackendError::NoSuchMailbox);
        }
        let usage = self
            .shard
            .mail
            .with(|ms| ms.usage(&self.user))
            .map_err(map_err)?;
        let limit = self
            .shard
            .store
            .account(&self.user)
            .map_err(map_err)?
            .quota_bytes;
        let mut resources = Vec::new();
        if limit > 0 {
            resources.push(b::QuotaResource {
                name: "STORAGE".into(),
                usage: usage.bytes.div_ceil(1024),
                limit: limit / 1024,
            });
        }
        Ok(b::Quota {
            root: String::new(),
            resources,
        })
    }
}
