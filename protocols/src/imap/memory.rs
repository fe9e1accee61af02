//! An in-memory [`ImapBackend`] for transcripts, property tests and fuzzing. It keeps
//! every mailbox in a map, stages mutations until [`MemoryBackend::commit`] (the "group
//! commit"), and computes a simple MIME layout itself (this crate may not use the store's
//! precompute). Its ENVELOPE and BODYSTRUCTURE are plain but well-formed; byte-exact
//! answers are the store's job and are tested there.

use std::collections::{BTreeMap, BTreeSet};

use crate::imap::backend::{
    BackendError, Changes, Completion, FlagMode, Flags, ImapBackend, InternalDate, MailboxInfo,
    MailboxStatus, MessageLayout, MessageMeta, PartInfo, PartKind, Pending, Quota, QuotaResource,
    SortFields, SortKeys, SpecialUse, SystemFlags, TransferEncoding,
};
use crate::imap::date::parse_rfc5322;

#[derive(Debug, Clone)]
struct Message {
    meta: MessageMeta,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Mailbox {
    uidvalidity: u32,
    uidnext: u32,
    highestmodseq: u64,
    messages: Vec<Message>,
    /// (modseq, uid) of every expunge.
    expunged: Vec<(u64, u32)>,
    special_use: Option<SpecialUse>,
}

#[derive(Debug, Clone)]
enum Op {
    SetQuota(Option<u64>),
    Create(String, Option<SpecialUse>),
    Delete(String),
    Rename(String, String),
    Subscribe(String, bool),
    Append(String, Flags, Option<InternalDate>, Vec<u8>),
    Store(String, Vec<u32>, FlagMode, Flags),
    Expunge(String, Vec<u32>),
    Copy(String, Vec<u32>, String, bool),
}

/// Mailboxes and messages in memory.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    mailboxes: BTreeMap<String, Mailbox>,
    subscribed: BTreeSet<String>,
    staged: Vec<(Pending, Op)>,
    next_pending: u64,
    next_uidvalidity: u32,
    /// APPENDLIMIT; `None` for none.
    pub append_limit: Option<u64>,
    /// STORAGE quota in KiB; `None` for none.
    pub quota_kib: Option<u64>,
    /// Whether the user may SETQUOTA (the manage flag).
    pub may_manage: bool,
    /// The mailbox `select` opened, for tests to check.
    pub selected: Option<String>,
    /// Current time for APPEND without a date.
    pub now: InternalDate,
    /// The literal of a streaming APPEND so far.
    streaming: Option<Vec<u8>>,
}

impl Default for MemoryBackend {
    fn default() -> MemoryBackend {
        MemoryBackend::new()
    }
}

fn canonical(name: &str) -> String {
    match name.split_once('/') {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX/{rest}"),
        _ if name.eq_ignore_ascii_case("INBOX") => "INBOX".into(),
        _ => name.to_owned(),
    }
}

fn check_name(name: &str) -> Result<(), BackendError> {
    if name.is_empty() || name.split('/').any(str::is_empty) {
        return Err(BackendError::InvalidName(
            "empty hierarchy component".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(BackendError::InvalidName("control character".into()));
    }
    Ok(())
}

impl MemoryBackend {
    /// An account with an empty INBOX (UIDVALIDITY 1).
    pub fn new() -> MemoryBackend {
        let mut backend = MemoryBackend {
            mailboxes: BTreeMap::new(),
            subscribed: BTreeSet::new(),
            staged: Vec::new(),
            next_pending: 1,
            next_uidvalidity: 1,
            append_limit: None,
            quota_kib: None,
            may_manage: false,
            selected: None,
            now: InternalDate {
                unix_secs: 1_700_000_000,
                tz_minutes: 0,
            },
            streaming: None,
        };
        backend.add_mailbox("INBOX", None);
        backend.subscribed.insert("INBOX".into());
        backend
    }

    /// Creates a mailbox at once (fixtures).
    pub fn add_mailbox(&mut self, name: &str, special_use: Option<SpecialUse>) {
        let uidvalidity = self.next_uidvalidity;
        self.next_uidvalidity += 1;
        self.mailboxes.insert(
            canonical(name),
            Mailbox {
                uidvalidity,
                uidnext: 1,
                highestmodseq: 1,
                messages: Vec::new(),
                expunged: Vec::new(),
                special_use,
            },
        );
    }

    pub fn set_subscribed(&mut self, name: &str, subscribed: bool) {
        if subscribed {
            self.subscribed.insert(canonical(name));
        } else {
            self.subscribed.remove(&canonical(name));
        }
    }

    /// Delivers a message at once, as another session or LMTP would; returns its UID.
    pub fn deliver(
        &mut self,
        mailbox: &str,
        bytes: &[u8],
        flags: Flags,
        date: Option<InternalDate>,
    ) -> Result<u32, BackendError> {
        let now = self.now;
        let mb = self.mailbox_mut(mailbox)?;
        let uid = mb.uidnext;
        mb.uidnext += 1;
        mb.highestmodseq += 1;
        mb.messages.push(Message {
            meta: MessageMeta {
                uid,
                flags,
                modseq: mb.highestmodseq,
                internaldate: date.unwrap_or(now),
                size: bytes.len() as u64,
            },
            bytes: bytes.to_vec(),
        });
        Ok(uid)
    }

    /// Changes flags at once, as another session would.
    pub fn set_flags(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
    ) -> Result<Completion, BackendError> {
        let mb = self.mailbox_mut(mailbox)?;
        mb.highestmodseq += 1;
        let modseq = mb.highestmodseq;
        let mut changed = Vec::new();
        for m in mb
            .messages
            .iter_mut()
            .filter(|m| uids.contains(&m.meta.uid))
        {
            let old = m.meta.flags.clone();
            let f = &mut m.meta.flags;
            match mode {
                FlagMode::Add => {
                    f.system.0 |= flags.system.0;
                    for k in &flags.keywords {
                        if !f.has_keyword(k) {
                            f.keywords.push(k.clone());
                        }
                    }
                }
                FlagMode::Remove => {
                    f.system.0 &= !flags.system.0;
                    f.keywords.retain(|k| !flags.has_keyword(k));
                }
                FlagMode::Replace => *f = flags.clone(),
            }
            if *f != old {
                m.meta.modseq = modseq;
                changed.push(m.meta.uid);
            }
        }
        Ok(Completion::FlagsChanged {
            modseq,
            uids: changed,
        })
    }

    /// Expunges at once, as another session would.
    pub fn remove(&mut self, mailbox: &str, uids: &[u32]) -> Result<Vec<u32>, BackendError> {
        let mb = self.mailbox_mut(mailbox)?;
        mb.highestmodseq += 1;
        let modseq = mb.highestmodseq;
        let mut removed = Vec::new();
        mb.messages.retain(|m| {
            let gone = uids.contains(&m.meta.uid);
            if gone {
                removed.push(m.meta.uid);
            }
            !gone
        });
        mb.expunged.extend(removed.iter().map(|&u| (modseq, u)));
        Ok(removed)
    }

    /// Makes a staged mutation durable and applies it ("the group commit").
    pub fn commit(&mut self, pending: Pending) -> Result<Completion, BackendError> {
        let at = self
            .staged
            .iter()
            .position(|(p, _)| *p == pending)
            .ok_or(BackendError::Unavailable)?;
        let (_, op) = self.staged.remove(at);
        self.apply(op)
    }

    /// Tokens staged and not yet committed.
    pub fn staged(&self) -> Vec<Pending> {
        self.staged.iter().map(|(p, _)| *p).collect()
    }

    fn apply(&mut self, op: Op) -> Result<Completion, BackendError> {
        match op {
            Op::SetQuota(kib) => {
                self.quota_kib = kib;
                Ok(Completion::Done)
            }
            Op::Create(name, special_use) => {
                if self.mailboxes.contains_key(&name) {
                    return Err(BackendError::AlreadyExists);
                }
                self.add_mailbox(&name, special_use);
                Ok(Completion::Done)
            }
            Op::Delete(name) => {
                self.mailboxes
                    .remove(&name)
                    .ok_or(BackendError::NoSuchMailbox)?;
                Ok(Completion::Done)
            }
            Op::Rename(from, to) => {
                if self.mailboxes.contains_key(&to) {
                    return Err(BackendError::AlreadyExists);
                }
                let prefix = format!("{from}/");
                let moved: Vec<String> = self
                    .mailboxes
                    .keys()
                    .filter(|k| **k == from || k.starts_with(&prefix))
                    .cloned()
                    .collect();
                if moved.is_empty() {
                    return Err(BackendError::NoSuchMailbox);
                }
                for old in moved {
                    if let Some(mut mb) = self.mailboxes.remove(&old) {
                        let new = format!("{to}{}", &old[from.len()..]);
                        if old == "INBOX" {
                            // RFC 9051 §6.3.6: renaming INBOX moves its messages, INBOX stays.
                            self.add_mailbox("INBOX", None);
                        }
                        mb.uidvalidity = self.next_uidvalidity;
                        self.next_uidvalidity += 1;
                        self.mailboxes.insert(new, mb);
                    }
                }
                Ok(Completion::Done)
            }
            Op::Subscribe(name, on) => {
                self.set_subscribed(&name, on);
                Ok(Completion::Done)
            }
            Op::Append(name, flags, date, bytes) => {
                let uid = self.deliver(&name, &bytes, flags, date)?;
                let uidvalidity = self.mailbox_mut(&name)?.uidvalidity;
                Ok(Completion::Appended { uidvalidity, uid })
            }
            Op::Store(name, uids, mode, flags) => self.set_flags(&name, &uids, mode, &flags),
            Op::Expunge(name, uids) => Ok(Completion::Expunged {
                uids: self.remove(&name, &uids)?,
            }),
            Op::Copy(source, uids, target, is_move) => {
                let copies: Vec<Message> = self
                    .mailbox_mut(&source)?
                    .messages
                    .iter()
                    .filter(|m| uids.contains(&m.meta.uid))
                    .cloned()
                    .collect();
                let mut pairs = Vec::new();
                for m in &copies {
                    let new = self.deliver(
                        &target,
                        &m.bytes,
                        m.meta.flags.clone(),
                        Some(m.meta.internaldate),
                    )?;
                    pairs.push((m.meta.uid, new));
                }
                if is_move {
                    let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
                    self.remove(&source, &moved)?;
                }
                let uidvalidity = self.mailbox_mut(&target)?.uidvalidity;
                Ok(Completion::Copied {
                    uidvalidity,
                    uids: pairs,
                })
            }
        }
    }

    fn mailbox_mut(&mut self, name: &str) -> Result<&mut Mailbox, BackendError> {
        self.mailboxes
            .get_mut(&canonical(name))
            .ok_or(BackendError::NoSuchMailbox)
    }

    fn message(&mut self, mailbox: &str, uid: u32) -> Result<&Message, BackendError> {
        self.mailbox_mut(mailbox)?
            .messages
            .iter()
            .find(|m| m.meta.uid == uid)
            .ok_or(BackendError::Expunged)
    }

    fn stage(&mut self, op: Op) -> Pending {
        let pending = Pending(self.next_pending);
        self.next_pending += 1;
        self.staged.push((pending, op));
        pending
    }

    fn exists(&self, name: &str) -> Result<String, BackendError> {
        let name = canonical(name);
        if self.mailboxes.contains_key(&name) {
            Ok(name)
        } else {
            Err(BackendError::NoSuchMailbox)
        }
    }

    fn usage_kib(&self) -> u64 {
        let bytes: u64 = self
            .mailboxes
            .values()
            .flat_map(|mb| mb.messages.iter())
            .map(|m| m.meta.size)
            .sum();
        bytes.div_ceil(1024)
    }
}

impl ImapBackend for MemoryBackend {
    fn list(&mut self) -> Result<Vec<MailboxInfo>, BackendError> {
        let mut out: Vec<MailboxInfo> = self
            .mailboxes
            .iter()
            .map(|(name, mb)| MailboxInfo {
                name: name.clone(),
                noselect: false,
                nonexistent: false,
                special_use: mb.special_use,
                subscribed: self.subscribed.contains(name),
            })
            .collect();
        for name in &self.subscribed {
            if !self.mailboxes.contains_key(name) {
                out.push(MailboxInfo {
                    name: name.clone(),
                    noselect: true,
                    nonexistent: true,
                    special_use: None,
                    subscribed: true,
                });
            }
        }
        Ok(out)
    }

    fn status(&mut self, mailbox: &str) -> Result<MailboxStatus, BackendError> {
        let mb = self.mailbox_mut(mailbox)?;
        Ok(MailboxStatus {
            messages: mb.messages.len() as u32,
            recent: 0,
            uidnext: mb.uidnext,
            uidvalidity: mb.uidvalidity,
            unseen: mb
                .messages
                .iter()
                .filter(|m| !m.meta.flags.system.contains(SystemFlags::SEEN))
                .count() as u32,
            highestmodseq: mb.highestmodseq,
            size: mb.messages.iter().map(|m| m.meta.size).sum(),
        })
    }

    fn create(
        &mut self,
        mailbox: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Pending, BackendError> {
        check_name(mailbox)?;
        let name = canonical(mailbox);
        if self.mailboxes.contains_key(&name) {
            return Err(BackendError::AlreadyExists);
        }
        Ok(self.stage(Op::Create(name, special_use)))
    }

    fn delete(&mut self, mailbox: &str) -> Result<Pending, BackendError> {
        let name = self.exists(mailbox)?;
        if name == "INBOX" {
            return Err(BackendError::NotAllowed("INBOX can't be deleted".into()));
        }
        let prefix = format!("{name}/");
        if self.mailboxes.keys().any(|k| k.starts_with(&prefix)) {
            return Err(BackendError::NotAllowed("Mailbox has children".into()));
        }
        Ok(self.stage(Op::Delete(name)))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<Pending, BackendError> {
        let from = self.exists(from)?;
        check_name(to)?;
        let to = canonical(to);
        if self.mailboxes.contains_key(&to) {
            return Err(BackendError::AlreadyExists);
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(BackendError::NotAllowed(
                "Can't rename a mailbox under itself".into(),
            ));
        }
        Ok(self.stage(Op::Rename(from, to)))
    }

    fn subscribe(&mut self, mailbox: &str, subscribed: bool) -> Result<Pending, BackendError> {
        check_name(mailbox)?;
        if subscribed {
            self.exists(mailbox)?;
        }
        Ok(self.stage(Op::Subscribe(canonical(mailbox), subscribed)))
    }

    fn select(
        &mut self,
        mailbox: &str,
        _read_only: bool,
    ) -> Result<crate::imap::backend::Snapshot, BackendError> {
        let name = self.exists(mailbox)?;
        let mb = self.mailbox_mut(&name)?;
        let mut keywords: Vec<String> = Vec::new();
        for m in &mb.messages {
            for k in &m.meta.flags.keywords {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.clone());
                }
            }
        }
        let snapshot = crate::imap::backend::Snapshot {
            name: name.clone(),
            uidvalidity: mb.uidvalidity,
            uidnext: mb.uidnext,
            highestmodseq: mb.highestmodseq,
            messages: std::sync::Arc::new(mb.messages.iter().map(|m| m.meta.clone()).collect()),
            keywords,
            keywords_creatable: true,
            recent: 0,
            read_only: false,
        };
        self.selected = Some(name);
        Ok(snapshot)
    }

    fn unselect(&mut self) {
        self.selected = None;
    }

    fn changes(&mut self, mailbox: &str, since_modseq: u64) -> Result<Changes, BackendError> {
        let mb = self.mailbox_mut(mailbox)?;
        Ok(Changes {
            uidvalidity: mb.uidvalidity,
            highestmodseq: mb.highestmodseq,
            uidnext: mb.uidnext,
            updated: mb
                .messages
                .iter()
                .filter(|m| m.meta.modseq > since_modseq)
                .map(|m| m.meta.clone())
                .collect(),
            expunged: mb
                .expunged
                .iter()
                .filter(|(modseq, _)| *modseq > since_modseq)
                .map(|(_, uid)| *uid)
                .collect(),
            live_uids: None,
            current: Some(std::sync::Arc::new(
                mb.messages.iter().map(|m| m.meta.clone()).collect(),
            )),
        })
    }

    fn layout(&mut self, mailbox: &str, uid: u32) -> Result<MessageLayout, BackendError> {
        Ok(layout_of(&self.message(mailbox, uid)?.bytes))
    }

    fn sort_keys(&mut self, mailbox: &str, uids: &[u32]) -> Result<Vec<SortKeys>, BackendError> {
        Ok(uids
            .iter()
            .map(|&uid| match self.message(mailbox, uid) {
                Ok(m) => sort_keys_of(&layout_of(&m.bytes).fields),
                Err(_) => SortKeys::default(),
            })
            .collect())
    }

    fn read(
        &mut self,
        mailbox: &str,
        uid: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let bytes = &self.message(mailbox, uid)?.bytes;
        let len = bytes.len() as u64;
        let (start, end) = (start.min(len) as usize, end.min(len) as usize);
        Ok(bytes
            .get(start..end.max(start))
            .unwrap_or_default()
            .to_vec())
    }

    fn append_limit(&self) -> Option<u64> {
        self.append_limit
    }

    fn append_begin(&mut self, mailbox: &str, size: u64) -> Result<(), BackendError> {
        self.exists(mailbox)?;
        if self.append_limit.is_some_and(|l| size > l) {
            return Err(BackendError::TooBig);
        }
        if self
            .quota_kib
            .is_some_and(|q| self.usage_kib() * 1024 + size > q * 1024)
        {
            return Err(BackendError::OverQuota);
        }
        self.streaming = Some(Vec::new());
        Ok(())
    }

    fn append_data(&mut self, data: &[u8]) -> Result<(), BackendError> {
        match &mut self.streaming {
            Some(buf) => {
                buf.extend_from_slice(data);
                Ok(())
            }
            None => Err(BackendError::Unavailable),
        }
    }

    fn append_commit(
        &mut self,
        mailbox: &str,
        flags: &Flags,
        date: Option<InternalDate>,
    ) -> Result<Pending, BackendError> {
        let message = self.streaming.take().ok_or(BackendError::Unavailable)?;
        self.append(mailbox, flags, date, &message)
    }

    fn append_abort(&mut self) {
        self.streaming = None;
    }

    fn append(
        &mut self,
        mailbox: &str,
        flags: &Flags,
        date: Option<InternalDate>,
        message: &[u8],
    ) -> Result<Pending, BackendError> {
        let name = self.exists(mailbox)?;
        if self.append_limit.is_some_and(|l| message.len() as u64 > l) {
            return Err(BackendError::TooBig);
        }
        if self
            .quota_kib
            .is_some_and(|q| self.usage_kib() * 1024 + message.len() as u64 > q * 1024)
        {
            return Err(BackendError::OverQuota);
        }
        Ok(self.stage(Op::Append(name, flags.clone(), date, message.to_vec())))
    }

    fn store_flags(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
    ) -> Result<Pending, BackendError> {
        let name = self.exists(mailbox)?;
        Ok(self.stage(Op::Store(name, uids.to_vec(), mode, flags.clone())))
    }

    fn expunge(&mut self, mailbox: &str, uids: &[u32]) -> Result<Pending, BackendError> {
        let name = self.exists(mailbox)?;
        Ok(self.stage(Op::Expunge(name, uids.to_vec())))
    }

    fn copy(&mut self, mailbox: &str, uids: &[u32], target: &str) -> Result<Pending, BackendError> {
        let name = self.exists(mailbox)?;
        let target = self.exists(target)?;
        Ok(self.stage(Op::Copy(name, uids.to_vec(), target, false)))
    }

    fn move_messages(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<Pending, BackendError> {
        let name = self.exists(mailbox)?;
        let target = self.exists(target)?;
        Ok(self.stage(Op::Copy(name, uids.to_vec(), target, true)))
    }

    fn quota_roots(&mut self, mailbox: &str) -> Result<Vec<Quota>, BackendError> {
        self.exists(mailbox)?;
        Ok(self.quota("").into_iter().collect())
    }

    fn set_quota(&mut self, root: &str, storage_kib: Option<u64>) -> Result<Pending, BackendError> {
        if !self.may_manage {
            return Err(BackendError::NoPermission);
        }
        if !root.is_empty() {
            return Err(BackendError::NoSuchMailbox);
        }
        Ok(self.stage(Op::SetQuota(storage_kib)))
    }

    fn quota(&mut self, root: &str) -> Result<Quota, BackendError> {
        match (root, self.quota_kib) {
            ("", Some(limit)) => Ok(Quota {
                root: String::new(),
                resources: vec![QuotaResource {
                    name: "STORAGE".into(),
                    usage: self.usage_kib(),
                    limit,
                }],
            }),
            _ => Err(BackendError::NoSuchMailbox),
        }
    }
}

// ---------------------------------------------------------------------------
// A small MIME walker: enough structure for sections, BINARY and SEARCH in tests.

/// Header fields of `header` as (lower-case name, unfolded value).
fn header_fields(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut() {
                last.1.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            let value = line[colon + 1..].trim_ascii().to_vec();
            fields.push((name, value));
        }
    }
    fields
}

fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// `type/subtype` lower-cased and the parameters (lower-case names) of a Content-Type.
fn content_type(value: Option<&[u8]>, default: &str) -> (String, Vec<(String, String)>) {
    let Some(value) = value else {
        return (default.into(), Vec::new());
    };
    let text = String::from_utf8_lossy(value);
    let mut pieces = text.split(';');
    let kind = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    if kind.contains('/') {
        (kind, params)
    } else {
        (default.into(), params)
    }
}

fn encoding(value: Option<&[u8]>) -> TransferEncoding {
    match value.map(<[u8]>::to_ascii_lowercase).as_deref() {
        None | Some(b"7bit") => TransferEncoding::SevenBit,
        Some(b"8bit") => TransferEncoding::EightBit,
        Some(b"binary") => TransferEncoding::Binary,
        Some(b"base64") => TransferEncoding::Base64,
        Some(b"quoted-printable") => TransferEncoding::QuotedPrintable,
        Some(_) => TransferEncoding::Other,
    }
}

fn encoding_name(value: Option<&[u8]>) -> String {
    value.map_or_else(
        || "7BIT".into(),
        |v| String::from_utf8_lossy(v).to_ascii_uppercase(),
    )
}

/// Where the header ends (after the blank line), relative to `msg`.
fn header_end(msg: &[u8]) -> usize {
    if msg.starts_with(b"\r\n") {
        return 2;
    }
    memchr::memmem::find(msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4)
}

fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn nstring(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "NIL".into(), quote)
}

/// `((name adl mailbox host))` for an address header, simply.
fn address_list(value: Option<&[u8]>) -> String {
    let Some(value) = value else {
        return "NIL".into();
    };
    let text = String::from_utf8_lossy(value);
    let mut out = String::from("(");
    for item in text.split(',') {
        let item = item.trim();
        let (name, spec) = match (item.find('<'), item.rfind('>')) {
            (Some(open), Some(close)) if open < close => (
                Some(item[..open].trim().trim_matches('"')),
                &item[open + 1..close],
            ),
            _ => (None, item),
        };
        let (local, host) = spec.split_once('@').unwrap_or((spec, ""));
        let name = name.filter(|n| !n.is_empty());
        out.push_str(&format!(
            "({} NIL {} {})",
            nstring(name.map(str::as_bytes)),
            quote(local.as_bytes()),
            quote(host.as_bytes())
        ));
    }
    out.push(')');
    out
}

fn envelope(fields: &[(String, Vec<u8>)]) -> Vec<u8> {
    let from = address_list(field(fields, "from"));
    let sender = field(fields, "sender").map_or_else(|| from.clone(), |v| address_list(Some(v)));
    let reply_to =
        field(fields, "reply-to").map_or_else(|| from.clone(), |v| address_list(Some(v)));
    format!(
        "({} {} {} {} {} {} {} {} {} {})",
        nstring(field(fields, "date")),
        nstring(field(fields, "subject")),
        from,
        sender,
        reply_to,
        address_list(field(fields, "to")),
        address_list(field(fields, "cc")),
        address_list(field(fields, "bcc")),
        nstring(field(fields, "in-reply-to")),
        nstring(field(fields, "message-id")),
    )
    .into_bytes()
}

struct Walk<'a> {
    msg: &'a [u8],
    parts: Vec<PartInfo>,
}

impl Walk<'_> {
    /// Adds the entity at `start..end` and its sub-parts; returns (BODY, BODYSTRUCTURE).
    fn entity(
        &mut self,
        start: usize,
        end: usize,
        path: Vec<u32>,
        default_type: &str,
        depth: usize,
    ) -> (String, String) {
        let bytes = &self.msg[start..end];
        let hdr = header_end(bytes);
        let fields = header_fields(&bytes[..hdr]);
        let (kind, params) = content_type(field(&fields, "content-type"), default_type);
        let enc = encoding(field(&fields, "content-transfer-encoding"));
        let idx = self.parts.len();
        let part_kind = if kind.starts_with("multipart/") && depth < 8 {
            PartKind::Multipart
        } else if kind == "message/rfc822" && depth < 8 {
            PartKind::Message
        } else {
            PartKind::Single
        };
        let charset = params
            .iter()
            .find(|(k, _)| k == "charset")
            .map(|(_, v)| v.to_ascii_lowercase());
        self.parts.push(PartInfo {
            path: path.clone(),
            kind: part_kind,
            header: (start as u64, (start + hdr) as u64),
            body: ((start + hdr) as u64, end as u64),
            encoding: enc,
            subtree_len: 1,
            charset,
            content_type: kind.clone(),
        });
        let (media, subtype) = kind.split_once('/').unwrap_or(("text", "plain"));
        let (media_q, subtype_q) = (
            quote(media.to_ascii_uppercase().as_bytes()),
            quote(subtype.to_ascii_uppercase().as_bytes()),
        );
        let param_list = if params.is_empty() {
            "NIL".to_owned()
        } else {
            let inner: Vec<String> = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{} {}",
                        quote(k.to_ascii_uppercase().as_bytes()),
                        quote(v.as_bytes())
                    )
                })
                .collect();
            format!("({})", inner.join(" "))
        };
        let body_start = start + hdr;
        let result = match part_kind {
            PartKind::Multipart => {
                let boundary = params
                    .iter()
                    .find(|(k, _)| k == "boundary")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let mut children = (String::new(), String::new());
                let mut n = 0u32;
                for (s, e) in split_multipart(self.msg, body_start, end, &boundary) {
                    n += 1;
                    let mut child_path = path.clone();
                    child_path.push(n);
                    let child_default = if kind == "multipart/digest" {
                        "message/rfc822"
                    } else {
                        "text/plain"
                    };
                    let (b, bs) = self.entity(s, e, child_path, child_default, depth + 1);
                    children.0.push_str(&b);
                    children.1.push_str(&bs);
                }
                if n == 0 {
                    let empty = "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)".to_owned();
                    children = (empty.clone(), empty);
                }
                (
                    format!("({} {})", children.0, subtype_q),
                    format!("({} {} {} NIL NIL NIL)", children.1, subtype_q, param_list),
                )
            }
            _ => {
                let size = end - body_start;
                let lines = self.msg[body_start..end]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                let basic = format!(
                    "{} {} {} {} {} {} {}",
                    media_q,
                    subtype_q,
                    param_list,
                    nstring(field(&fields, "content-id")),
                    nstring(field(&fields, "content-description")),
                    quote(encoding_name(field(&fields, "content-transfer-encoding")).as_bytes()),
                    size
                );
                match part_kind {
                    PartKind::Message => {
                        let mut inner_path = path.clone();
                        if inner_path.is_empty() {
                            inner_path.push(1);
                        }
                        let inner_fields = header_fields(
                            &self.msg
                                [body_start..body_start + header_end(&self.msg[body_start..end])],
                        );
                        let env = String::from_utf8_lossy(&envelope(&inner_fields)).into_owned();
                        let (b, bs) =
                            self.entity(body_start, end, inner_path, "text/plain", depth + 1);
                        (
                            format!("({basic} {env} {b} {lines})"),
                            format!("({basic} {env} {bs} {lines} NIL NIL NIL NIL)"),
                        )
                    }
                    _ if media == "text" => (
                        format!("({basic} {lines})"),
                        format!("({basic} {lines} NIL NIL NIL NIL)"),
                    ),
                    _ => (format!("({basic})"), format!("({basic} NIL NIL NIL NIL)")),
                }
            }
        };
        self.parts[idx].subtree_len = (self.parts.len() - idx) as u32;
        result
    }
}

/// The parts of a multipart body between `--boundary` lines.
fn split_multipart(msg: &[u8], start: usize, end: usize, boundary: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if boundary.is_empty() {
        return out;
    }
    let delimiter = format!("--{boundary}");
    let mut positions = Vec::new();
    let mut at = start;
    while at < end {
        let line_end = memchr::memchr(b'\n', &msg[at..end]).map_or(end, |i| at + i + 1);
        let line = &msg[at..line_end];
        if line.starts_with(delimiter.as_bytes()) {
            let closing = line[delimiter.len()..].starts_with(b"--");
            positions.push((at, line_end, closing));
            if closing {
                break;
            }
        }
        at = line_end;
    }
    for pair in positions.windows(2) {
        let (_, content_start, closing) = pair[0];
        if closing {
            break;
        }
        // The CRLF before a delimiter belongs to the delimiter.
        let mut content_end = pair[1].0;
        if msg[..content_end].ends_with(b"\r\n") && content_end - 2 >= content_start {
            content_end -= 2;
        }
        out.push((content_start, content_end));
    }
    out
}

/// The layout of a CRLF message.
pub fn layout_of(msg: &[u8]) -> MessageLayout {
    let mut walk = Walk {
        msg,
        parts: Vec::new(),
    };
    let (body, bodystructure) = walk.entity(0, msg.len(), Vec::new(), "text/plain", 0);
    let fields = header_fields(&msg[..header_end(msg)]);
    let first = |name| {
        field(&fields, name).map(|v| {
            let text = String::from_utf8_lossy(v).into_owned();
            let spec = match (text.find('<'), text.rfind('>')) {
                (Some(o), Some(c)) if o < c => text[o + 1..c].to_owned(),
                _ => text.trim().to_owned(),
            };
            (spec, None)
        })
    };
    let subject = field(&fields, "subject").map(|s| String::from_utf8_lossy(s).into_owned());
    MessageLayout {
        size: msg.len() as u64,
        envelope: envelope(&fields),
        bodystructure: bodystructure.into_bytes(),
        body: body.into_bytes(),
        parts: walk.parts,
        fields: SortFields {
            date: field(&fields, "date").and_then(parse_rfc5322),
            base_subject: subject.clone().unwrap_or_default(),
            subject,
            from: first("from"),
            to: first("to"),
            cc: first("cc"),
            message_id: field(&fields, "message-id").map(<[u8]>::to_vec),
            references: field(&fields, "references").map(<[u8]>::to_vec),
            in_reply_to: field(&fields, "in-reply-to").map(<[u8]>::to_vec),
        },
    }
}

/// SORT/THREAD keys in a simplified form of what the store computes (ASCII upper
/// case, `Re:`/`Fwd:`/`[blob]` leaders and `(fwd)` trailers): enough for transcripts;
/// the store's own keys are checked against Dovecot.
fn sort_keys_of(f: &SortFields) -> SortKeys {
    let upper = |s: &str| s.to_ascii_uppercase();
    let mut subject = upper(&f.subject.clone().unwrap_or_default())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut reply_or_forward = false;
    loop {
        let before = subject.len();
        if let Some(rest) = subject.strip_suffix("(FWD)") {
            subject = rest.trim_end().to_owned();
            reply_or_forward = true;
        }
        for leader in ["RE:", "FWD:", "FW:"] {
            if let Some(rest) = subject.strip_prefix(leader) {
                subject = rest.trim_start().to_owned();
                reply_or_forward = true;
            }
        }
        if subject.starts_with('[')
            && let Some(close) = subject.find(']')
            && close + 1 < subject.len()
        {
            subject = subject[close + 1..].trim_start().to_owned();
        }
        if subject.len() == before {
            break;
        }
    }
    let mailbox = |a: &Option<(String, Option<String>)>| {
        a.as_ref()
            .map(|(spec, _)| upper(spec.split('@').next().unwrap_or_default()))
            .unwrap_or_default()
    };
    let display = |a: &Option<(String, Option<String>)>| {
        a.as_ref()
            .map(|(spec, name)| upper(name.as_deref().unwrap_or(spec)))
            .unwrap_or_default()
    };
    let ids = |v: &Option<Vec<u8>>| -> Vec<String> {
        let text = String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned();
        text.split('<')
            .skip(1)
            .filter_map(|t| t.split_once('>').map(|(id, _)| id.trim().to_owned()))
            .filter(|id| id.contains('@'))
            .collect()
    };
    let mut references = ids(&f.references);
    if references.is_empty() {
        references = ids(&f.in_reply_to).into_iter().take(1).collect();
    }
    SortKeys {
        sent_date: f.date.map_or(0, |d| d.unix_secs as u32),
        subject,
        reply_or_forward,
        from: mailbox(&f.from),
        to: mailbox(&f.to),
        cc: mailbox(&f.cc),
        display_from: display(&f.from),
        display_to: display(&f.to),
        message_id: ids(&f.message_id).into_iter().next(),
        references,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::backend::SectionText;

    #[test]
    fn multipart_layout_finds_sections() {
        let msg = b"Subject: hi\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\npre\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--b--\r\n";
        let layout = layout_of(msg);
        assert_eq!(layout.parts.len(), 3);
        let (s, e) = layout.section(&[1], SectionText::Body).expect("part");
        assert_eq!(&msg[s as usize..e as usize], b"one");
        let (s, e) = layout.section(&[2], SectionText::Mime).expect("part");
        assert_eq!(
            &msg[s as usize..e as usize],
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(layout.section(&[3], SectionText::Body), Some((0, 0)));
    }
}
