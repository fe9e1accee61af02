//! The boundary between the IMAP session and the message store.
//!
//! The engine implements [`ImapBackend`] over the shard's store for the logged-in user
//! (the store is synchronous on the shard thread, so every call is a plain call). The
//! session never holds a backend: the engine passes `&mut dyn ImapBackend` into
//! [`ImapSession::handle_input_with`](super::ImapSession::handle_input_with) and the
//! other driving calls, so the session stays a `Send` value that can be handed off.
//!
//! # Reads and mutations
//!
//! Reads (`list`, `status`, `select`, `changes`, `layout`, `read`, `quota`) answer at
//! once. Mutations are durable only after the shard's group commit: they return a
//! [`Pending`] token; the session then emits `ImapEvent::Wait(token)`, parses nothing
//! more, and resumes when the engine calls
//! [`ImapSession::completed`](super::ImapSession::completed) with the [`Completion`].
//!
//! # Change tracking
//!
//! The session keeps its own list of the selected mailbox's messages (UID, flags,
//! modseq) so sequence numbers stay stable between the updates it announces. It asks
//! for [`ImapBackend::changes`] since the highest modseq it knows whenever the engine
//! told it the mailbox changed (`ImapSession::mailbox_changed`, driven by
//! `store::notify`) and after its own mutations complete, and announces the difference
//! (EXISTS / EXPUNGE or VANISHED / FETCH FLAGS) when the RFC allows it. The session
//! diffs against what it knows, so a change reported twice is announced once.
//!
//! # SEARCH
//!
//! SEARCH is done inside the session over the message metadata, the precomputed
//! [`MessageLayout`] and [`ImapBackend::read`] for header and body text (decoded
//! base64 / quoted-printable, case-insensitive UTF-8 matching), so every backend
//! searches alike. A backend may later offer an index; the session would ask it first.
//!
//! # SORT and THREAD
//!
//! Also in the session, over [`SortKeys`] the store precomputed at delivery (titlecased
//! base subject, address keys, sent date, message ids), fetched for the matching
//! messages with one [`ImapBackend::sort_keys`] call: a SORT or THREAD compares
//! ready strings and numbers and never reads a message.
//!
//! # Names
//!
//! Mailbox names cross this boundary as UTF-8 with `/` as the hierarchy separator,
//! `INBOX` in upper case; the session converts from and to modified UTF-7. A name may
//! belong to another user or shard (shared folders): resolving it is the backend's job.

use std::fmt;

/// A mutation staged for the next group commit. The backend chooses the number; the
/// session hands it back in [`ImapSession::completed`](super::ImapSession::completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pending(pub u64);

/// Why the backend refused. A small closed set, each mapped once to an IMAP response
/// code (RFC 5530) by [`BackendError::response`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Missing or not visible to this user (existence does not leak).
    #[error("no such mailbox")]
    NoSuchMailbox,
    #[error("mailbox already exists")]
    AlreadyExists,
    /// The name is not acceptable to the store (empty component, too long…).
    #[error("invalid mailbox name: {0}")]
    InvalidName(String),
    /// Not allowed on this mailbox (delete INBOX, delete a parent with children…).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("over quota")]
    OverQuota,
    /// A message is larger than the store takes.
    #[error("too big")]
    TooBig,
    /// A store limit (UIDs per record, keywords per mailbox…).
    #[error("limit: {0}")]
    Limit(String),
    /// A message went away while the command ran.
    #[error("message expunged")]
    Expunged,
    /// Try again later (store busy, shard moving, disk error).
    #[error("unavailable")]
    Unavailable,
    /// Not supported by this backend.
    #[error("not supported")]
    Unsupported,
    /// The user may not do this (SETQUOTA without the manage flag).
    #[error("permission denied")]
    NoPermission,
}

impl BackendError {
    /// The response code and text of the tagged `NO`.
    pub fn response(&self) -> String {
        match self {
            BackendError::NoSuchMailbox => "[NONEXISTENT] Mailbox doesn't exist".into(),
            BackendError::AlreadyExists => "[ALREADYEXISTS] Mailbox already exists".into(),
            BackendError::InvalidName(why) => format!("[CANNOT] Invalid mailbox name: {why}"),
            BackendError::NotAllowed(why) => format!("[CANNOT] {why}"),
            BackendError::OverQuota => "[OVERQUOTA] Quota exceeded".into(),
            BackendError::TooBig => "[TOOBIG] Message too big".into(),
            BackendError::Limit(why) => format!("[LIMIT] {why}"),
            BackendError::Expunged => "[EXPUNGEISSUED] Some messages were expunged".into(),
            BackendError::Unavailable => "[UNAVAILABLE] Try again later".into(),
            BackendError::Unsupported => "[CANNOT] Not supported".into(),
            BackendError::NoPermission => "[NOPERM] Permission denied".into(),
        }
    }
}

/// System flags as bits (the same bits as the store's index).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SystemFlags(pub u8);

impl SystemFlags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    pub const ALL: u8 = 31;
    /// In the order IMAP lists them.
    pub const NAMES: [(u8, &'static str); 5] = [
        (SystemFlags::ANSWERED, "\\Answered"),
        (SystemFlags::FLAGGED, "\\Flagged"),
        (SystemFlags::DELETED, "\\Deleted"),
        (SystemFlags::SEEN, "\\Seen"),
        (SystemFlags::DRAFT, "\\Draft"),
    ];

    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit == bit
    }

    /// The bit of `\Name` (case-insensitive), if it is a settable system flag.
    pub fn from_name(name: &str) -> Option<u8> {
        SystemFlags::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(bit, _)| *bit)
    }
}

impl fmt::Debug for SystemFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = SystemFlags::NAMES
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "SystemFlags({})", names.join(" "))
    }
}

/// A message's flags: system flags and keywords (IMAP atoms, case kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: SystemFlags,
    pub keywords: Vec<String>,
}

impl Flags {
    /// `\Answered \Seen $Forwarded`, the inside of a FLAGS list.
    pub fn to_imap(&self) -> String {
        let mut out: Vec<&str> = SystemFlags::NAMES
            .iter()
            .filter(|(bit, _)| self.system.contains(*bit))
            .map(|(_, n)| *n)
            .collect();
        out.extend(self.keywords.iter().map(String::as_str));
        out.join(" ")
    }

    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
    }
}

/// INTERNALDATE: seconds since the epoch and the zone it was given in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InternalDate {
    pub unix_secs: i64,
    /// Minutes east of UTC.
    pub tz_minutes: i16,
}

/// The messages of a mailbox in UID order, as one state of it. Shared: sessions that
/// selected the same mailbox at the same state hold one list (the backend hands out the
/// same `Arc`, see [`Snapshot::messages`] and [`Changes::current`]), so an idle session
/// costs no memory per message; a session copies the list only while it must differ
/// (expunges it may not announce yet).
pub type MessageList = std::sync::Arc<Vec<MessageMeta>>;

/// What the session keeps of each message of the selected mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    pub internaldate: InternalDate,
    /// RFC822.SIZE: the stored (CRLF) size.
    pub size: u64,
}

/// RFC 6154 special uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    pub fn as_imap(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    pub fn from_imap(name: &str) -> Option<SpecialUse> {
        [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ]
        .into_iter()
        .find(|u| u.as_imap().eq_ignore_ascii_case(name))
    }
}

/// One mailbox as LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// UTF-8, `/`-separated.
    pub name: String,
    /// `\Noselect`: a name that only holds children (or a subscription to a deleted mailbox
    /// when `nonexistent`).
    pub noselect: bool,
    /// `\NonExistent`: only a subscription remains.
    pub nonexistent: bool,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
}

/// STATUS items (RFC 9051 §6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub recent: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub unseen: u32,
    pub highestmodseq: u64,
    pub size: u64,
}

/// A mailbox as SELECT/EXAMINE opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The canonical name, used in later calls about this mailbox.
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// Live messages in UID order. A backend should hand sessions that select the
    /// mailbox at the same state the same list.
    pub messages: MessageList,
    /// Keywords defined in the mailbox (FLAGS / PERMANENTFLAGS).
    pub keywords: Vec<String>,
    /// Whether clients may create new keywords (`\*` in PERMANENTFLAGS).
    pub keywords_creatable: bool,
    /// Messages new since the last session looked (rev1 `RECENT`); 0 if not tracked.
    pub recent: u32,
    /// The user may only read (ACL): SELECT answers `[READ-ONLY]`.
    pub read_only: bool,
}

/// The state of a mailbox a [`MessageList`] is of. Every change raises the modseq
/// (flags, appends, expunges) and a recreated mailbox has a new UIDVALIDITY, so two
/// lists of one mailbox at one state hold the same messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListState {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
}

/// What changed in a mailbox since a modseq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The state the changes lead to (with `highestmodseq` and `uidnext`).
    pub uidvalidity: u32,
    pub highestmodseq: u64,
    pub uidnext: u32,
    /// New messages and messages whose flags changed, with their current state, UID order.
    pub updated: Vec<MessageMeta>,
    /// Messages removed since.
    pub expunged: Vec<u32>,
    /// When the backend can no longer tell what was expunged since (its change log was
    /// truncated): every live UID. The session treats any UID it knows and this lacks
    /// as expunged; `updated` must then hold every message changed since.
    pub live_uids: Option<Vec<u32>>,
    /// The live messages as they are now (exactly the state `uidvalidity`, `uidnext`,
    /// `highestmodseq` name), when the backend has such a list at hand to share (it need
    /// not build one: see [`ImapBackend::share`]): a session that has announced
    /// everything up to now holds this instead of its own copy. It takes it by state,
    /// not by comparing messages: a session's list applied with every change since its
    /// modseq is the mailbox at the new state, and so is this list (the rule and why it
    /// holds: `session::adopts`).
    pub current: Option<MessageList>,
}

impl Changes {
    /// The state these changes lead to.
    pub fn state(&self) -> ListState {
        ListState {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highestmodseq: self.highestmodseq,
        }
    }
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMode {
    Add,
    Remove,
    Replace,
}

/// The result of a mutation once durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// CREATE/DELETE/RENAME/SUBSCRIBE.
    Done,
    /// APPEND: `[APPENDUID uidvalidity uid]`.
    Appended { uidvalidity: u32, uid: u32 },
    /// COPY/MOVE: `[COPYUID uidvalidity source target]` in source order.
    Copied {
        uidvalidity: u32,
        uids: Vec<(u32, u32)>,
    },
    /// STORE: the messages whose flags changed and their new modseq.
    FlagsChanged { modseq: u64, uids: Vec<u32> },
    /// EXPUNGE: the messages removed.
    Expunged { uids: Vec<u32> },
}

/// A QUOTA resource (RFC 9208), usage and limit in the resource's unit
/// (STORAGE in KiB, MESSAGE in messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaResource {
    pub name: String,
    pub usage: u64,
    pub limit: u64,
}

/// A quota root and its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub root: String,
    pub resources: Vec<QuotaResource>,
}

/// What a MIME part is, for section lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// multipart/*: its parts follow it.
    Multipart,
    /// message/rfc822 (or global): the next part is the message it holds.
    Message,
    /// A leaf.
    Single,
}

/// Content-Transfer-Encoding of a part, for BINARY and SEARCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    SevenBit,
    EightBit,
    Binary,
    Base64,
    QuotedPrintable,
    /// Anything else: BINARY answers `[UNKNOWN-CTE]`.
    Other,
}

/// One MIME part, in preorder (a part's sub-parts follow it; `subtree_len` counts
/// itself and them). `parts[0]` is the message; the message a message/rfc822 part holds
/// is the entry right after it. Mirrors `store::message::Part` field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub path: Vec<u32>,
    pub kind: PartKind,
    /// MIME header, blank line included: `start..end` byte offsets in the message.
    pub header: (u64, u64),
    pub body: (u64, u64),
    pub encoding: TransferEncoding,
    pub subtree_len: u32,
    /// `charset` parameter of a text part, lower-cased (for SEARCH decoding).
    pub charset: Option<String>,
    /// `type/subtype`, lower-cased.
    pub content_type: String,
}

/// What a section of BODY[...] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionText {
    Body,
    Mime,
    Header,
    Text,
}

/// Header values SEARCH, SORT and THREAD use, precomputed at delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortFields {
    /// The Date header, when it parses.
    pub date: Option<InternalDate>,
    /// Subject decoded (RFC 2047).
    pub subject: Option<String>,
    /// RFC 5256 base subject.
    pub base_subject: String,
    /// First address of From/To/Cc: addr-spec and display name.
    pub from: Option<(String, Option<String>)>,
    pub to: Option<(String, Option<String>)>,
    pub cc: Option<(String, Option<String>)>,
    pub message_id: Option<Vec<u8>>,
    pub references: Option<Vec<u8>>,
    pub in_reply_to: Option<Vec<u8>>,
}

/// What SORT and THREAD compare of one message, precomputed at delivery the way
/// Dovecot computes it (mirrors `store::message::SortKeys`): the session sorts and
/// threads these and never parses a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeys {
    /// The Date header in UTC seconds, truncated to 32 bits as Dovecot keeps it; 0 when
    /// missing or invalid (the internal date is used then).
    pub sent_date: u32,
    /// RFC 5256 base subject, decoded and titlecased: compared as bytes.
    pub subject: String,
    /// The subject was a reply or forward (THREAD=REFERENCES step 5).
    pub reply_or_forward: bool,
    /// addr-mailbox of the first From/To/Cc address, titlecased.
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957 display name of the first From/To address, titlecased.
    pub display_from: String,
    pub display_to: String,
    /// The first valid Message-ID, normalised (no angle brackets).
    pub message_id: Option<String>,
    /// References' message ids in order, or else In-Reply-To's first.
    pub references: Vec<String>,
}

/// The precomputed structure of one message (`store::message::Precomputed`): FETCH
/// answers ENVELOPE, BODY and BODYSTRUCTURE from it and finds every section's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLayout {
    pub size: u64,
    /// The ENVELOPE value, parentheses included, ready to send.
    pub envelope: Vec<u8>,
    /// The BODYSTRUCTURE value (extension data included).
    pub bodystructure: Vec<u8>,
    /// The BODY value (no extension data).
    pub body: Vec<u8>,
    pub parts: Vec<PartInfo>,
    pub fields: SortFields,
}

impl MessageLayout {
    /// A layout that holds only `envelope`: for a FETCH whose only item needing the
    /// layout is ENVELOPE ([`ImapBackend::envelopes`]).
    pub fn of_envelope(envelope: Vec<u8>) -> MessageLayout {
        MessageLayout {
            size: 0,
            envelope,
            bodystructure: Vec::new(),
            body: Vec::new(),
            parts: Vec::new(),
            fields: SortFields::default(),
        }
    }

    /// The part a section path names (Dovecot's resolution: `.1` of a single part is that
    /// part; a number after a message/rfc822 part goes into the message it holds).
    pub fn find_part(&self, path: &[u32]) -> Option<usize> {
        let mut idx = 0usize;
        for (i, &n) in path.iter().enumerate() {
            let part = self.parts.get(idx)?;
            if part.kind == PartKind::Multipart {
                let mut child = idx + 1;
                let end = idx.checked_add(part.subtree_len as usize)?;
                for _ in 1..n {
                    child = child.checked_add(self.parts.get(child)?.subtree_len.max(1) as usize)?;
                    if child >= end {
                        return None;
                    }
                }
                if n == 0 || child >= end {
                    return None;
                }
                idx = child;
            } else if n != 1 {
                return None;
            }
            if self.parts.get(idx)?.kind == PartKind::Message && i + 1 < path.len() {
                idx += 1;
                self.parts.get(idx)?;
            }
        }
        Some(idx)
    }

    /// The byte range answering BODY[path.text]; an empty range for a part that does not
    /// exist (as Dovecot answers), `None` only for a layout with no parts.
    pub fn section(&self, path: &[u32], text: SectionText) -> Option<(u64, u64)> {
        let clamp = |(s, e): (u64, u64)| (s.min(self.size), e.min(self.size).max(s.min(self.size)));
        if path.is_empty() {
            let root = self.parts.first()?;
            return Some(clamp(match text {
                SectionText::Body => (0, self.size),
                SectionText::Header | SectionText::Mime => root.header,
                SectionText::Text => root.body,
            }));
        }
        let Some(idx) = self.find_part(path) else {
            return Some((0, 0));
        };
        let part = self.parts.get(idx)?;
        Some(clamp(match text {
            SectionText::Body => part.body,
            SectionText::Mime => part.header,
            SectionText::Header | SectionText::Text if part.kind == PartKind::Message => {
                let inner = self.parts.get(idx + 1)?;
                if text == SectionText::Header {
                    inner.header
                } else {
                    inner.body
                }
            }
            SectionText::Header | SectionText::Text => (0, 0),
        }))
    }
}

/// The logged-in user's view of the store, implemented by the engine (and by
/// [`MemoryBackend`](super::memory::MemoryBackend) for tests). `mailbox` arguments are
/// UTF-8 names; for calls about the selected mailbox, the name [`Snapshot::name`] gave.
pub trait ImapBackend {
    /// Every mailbox the user may see, subscriptions to missing ones included.
    fn list(&mut self) -> Result<Vec<MailboxInfo>, BackendError>;
    fn status(&mut self, mailbox: &str) -> Result<MailboxStatus, BackendError>;
    fn create(
        &mut self,
        mailbox: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Pending, BackendError>;
    fn delete(&mut self, mailbox: &str) -> Result<Pending, BackendError>;
    fn rename(&mut self, from: &str, to: &str) -> Result<Pending, BackendError>;
    fn subscribe(&mut self, mailbox: &str, subscribed: bool) -> Result<Pending, BackendError>;

    /// Opens a mailbox for this session; the engine starts watching it for changes
    /// (`store::notify`) until [`ImapBackend::unselect`] or the next `select`.
    fn select(&mut self, mailbox: &str, read_only: bool) -> Result<Snapshot, BackendError>;
    /// The session left the selected mailbox.
    fn unselect(&mut self);
    /// Changes of `mailbox` with a modseq above `since_modseq`.
    fn changes(&mut self, mailbox: &str, since_modseq: u64) -> Result<Changes, BackendError>;
    /// The session has caught up with `mailbox` as of `state` (what the last
    /// [`ImapBackend::changes`] said), has announced everything, and `list` is its
    /// messages now: the mailbox at that state (see [`Changes::current`] for why). A
    /// backend may hand the same list to other sessions ([`Snapshot::messages`],
    /// [`Changes::current`]) while the mailbox is at that state, rather than build one.
    /// Not required.
    fn share(&mut self, _mailbox: &str, _state: ListState, _list: &MessageList) {}

    /// The precomputed structure of a message.
    fn layout(&mut self, mailbox: &str, uid: u32) -> Result<MessageLayout, BackendError>;
    /// The structures of several messages, one answer per UID in order (FETCH over a
    /// range asks for a batch at a time; a backend may read them together).
    fn layouts(&mut self, mailbox: &str, uids: &[u32]) -> Vec<Result<MessageLayout, BackendError>> {
        uids.iter().map(|&uid| self.layout(mailbox, uid)).collect()
    }
    /// The ENVELOPE of each message, one answer per UID in order: what a FETCH whose
    /// only item needing the structure is ENVELOPE asks (a client's message list, FLAGS
    /// ENVELOPE), so a backend may read just that. The default takes it from the layouts.
    fn envelopes(&mut self, mailbox: &str, uids: &[u32]) -> Vec<Result<Vec<u8>, BackendError>> {
        self.layouts(mailbox, uids)
            .into_iter()
            .map(|l| l.map(|l| l.envelope))
            .collect()
    }
    /// Whether each message is still there, one answer per UID in order: what a FETCH
    /// of whole messages needs (their size is in the session's list) before it names
    /// their bytes, where other items need the layout. The default reads the layouts.
    fn live(&mut self, mailbox: &str, uids: &[u32]) -> Vec<bool> {
        self.layouts(mailbox, uids)
            .iter()
            .map(Result::is_ok)
            .collect()
    }
    /// SORT/THREAD keys of messages, one per UID in the same order; a message expunged
    /// meanwhile gets empty keys.
    fn sort_keys(&mut self, mailbox: &str, uids: &[u32]) -> Result<Vec<SortKeys>, BackendError>;
    /// Header fields (lower case) whose lines [`ImapBackend::search_header`] can give
    /// without reading message files. None by default.
    fn search_header_fields(&self) -> &'static [&'static str] {
        &[]
    }
    /// For SEARCH: per UID of `uids` (same order), the top-level header lines of the
    /// [`ImapBackend::search_header_fields`], each with its continuation lines and
    /// CRLF, in message order, as they are in the message; `None` where the backend
    /// does not have them at hand (SEARCH then reads the message's header).
    fn search_header(
        &mut self,
        _mailbox: &str,
        uids: &[u32],
    ) -> Result<Vec<Option<std::rc::Rc<[u8]>>>, BackendError> {
        Ok(vec![None; uids.len()])
    }
    /// Bytes `start..end` of a message (clamped to its size). The session calls it only
    /// for what it must look at (HEADER.FIELDS, BINARY, SEARCH); plain sections go out
    /// as `Transmit::Message` for the engine to stream.
    fn read(
        &mut self,
        mailbox: &str,
        uid: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, BackendError>;

    /// The largest message APPEND takes (APPENDLIMIT), if any.
    fn append_limit(&self) -> Option<u64>;

    /// Streaming APPEND: a literal of `size` bytes for `mailbox` is announced. Refuse
    /// here (no such mailbox, over quota, too big) and the client never sends it.
    /// Otherwise its bytes follow with [`ImapBackend::append_data`], in order, as they
    /// arrive, and the command ends with [`ImapBackend::append_commit`] or
    /// [`ImapBackend::append_abort`]. One streaming APPEND at a time per session.
    fn append_begin(&mut self, _mailbox: &str, _size: u64) -> Result<(), BackendError> {
        Err(BackendError::Unavailable)
    }
    /// The next piece of the announced literal (as the client sent it: bare LFs are
    /// the backend's to normalise).
    fn append_data(&mut self, _data: &[u8]) -> Result<(), BackendError> {
        Err(BackendError::Unavailable)
    }
    /// The literal is complete: stage the message like [`ImapBackend::append`].
    fn append_commit(
        &mut self,
        _mailbox: &str,
        _flags: &Flags,
        _date: Option<InternalDate>,
    ) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    /// The streaming APPEND ended without a commit (bad command, connection gone).
    fn append_abort(&mut self) {}
    fn append(
        &mut self,
        mailbox: &str,
        flags: &Flags,
        date: Option<InternalDate>,
        message: &[u8],
    ) -> Result<Pending, BackendError>;
    fn store_flags(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
    ) -> Result<Pending, BackendError>;
    fn expunge(&mut self, mailbox: &str, uids: &[u32]) -> Result<Pending, BackendError>;
    fn copy(&mut self, mailbox: &str, uids: &[u32], target: &str) -> Result<Pending, BackendError>;
    /// Copy and expunge in one durable step (RFC 6851).
    fn move_messages(
        &mut self,
        mailbox: &str,
        uids: &[u32],
        target: &str,
    ) -> Result<Pending, BackendError>;

    /// The quota roots of a mailbox and their quotas (GETQUOTAROOT).
    fn quota_roots(&mut self, mailbox: &str) -> Result<Vec<Quota>, BackendError>;
    /// One quota root (GETQUOTA); `NoSuchMailbox` for an unknown root.
    fn quota(&mut self, root: &str) -> Result<Quota, BackendError>;
    /// SETQUOTA: sets the STORAGE limit of a quota root in KiB (`None` removes it).
    /// Only accounts allowed to manage may; others get `NoPermission`.
    fn set_quota(
        &mut self,
        _root: &str,
        _storage_kib: Option<u64>,
    ) -> Result<Pending, BackendError> {
        Err(BackendError::NoPermission)
    }
}

/// A backend that refuses everything with `[UNAVAILABLE]`: what
/// [`ImapSession::handle_input`](super::ImapSession::handle_input) uses, for engines
/// that do not serve the authenticated state yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBackend;

impl ImapBackend for NoBackend {
    fn list(&mut self) -> Result<Vec<MailboxInfo>, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn status(&mut self, _: &str) -> Result<MailboxStatus, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn create(&mut self, _: &str, _: Option<SpecialUse>) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn delete(&mut self, _: &str) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn rename(&mut self, _: &str, _: &str) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn subscribe(&mut self, _: &str, _: bool) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn select(&mut self, _: &str, _: bool) -> Result<Snapshot, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn unselect(&mut self) {}
    fn changes(&mut self, _: &str, _: u64) -> Result<Changes, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn layout(&mut self, _: &str, _: u32) -> Result<MessageLayout, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn sort_keys(&mut self, _: &str, _: &[u32]) -> Result<Vec<SortKeys>, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn read(&mut self, _: &str, _: u32, _: u64, _: u64) -> Result<Vec<u8>, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn append_limit(&self) -> Option<u64> {
        None
    }
    fn append(
        &mut self,
        _: &str,
        _: &Flags,
        _: Option<InternalDate>,
        _: &[u8],
    ) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn store_flags(
        &mut self,
        _: &str,
        _: &[u32],
        _: FlagMode,
        _: &Flags,
    ) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn expunge(&mut self, _: &str, _: &[u32]) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn copy(&mut self, _: &str, _: &[u32], _: &str) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn move_messages(&mut self, _: &str, _: &[u32], _: &str) -> Result<Pending, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn quota_roots(&mut self, _: &str) -> Result<Vec<Quota>, BackendError> {
        Err(BackendError::Unavailable)
    }
    fn quota(&mut self, _: &str) -> Result<Quota, BackendError> {
        Err(BackendError::Unavailable)
    }
}
