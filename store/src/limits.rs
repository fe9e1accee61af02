//! Every limit of the store in one place, each with the reason it exists.

/// RFC 5321 §4.5.3.1.3: a forward-path holds at most 256 octets including `<>`.
pub const ADDRESS_BYTES_MAX: usize = 254;
/// RFC 5321 §4.5.3.1.1: the local part is at most 64 octets.
pub const LOCAL_PART_BYTES_MAX: usize = 64;
/// RFC 1035 §2.3.4: a domain name is at most 253 octets in text form.
pub const DOMAIN_BYTES_MAX: usize = 253;
/// RFC 1035 §2.3.4: a single domain label is at most 63 octets.
pub const DOMAIN_LABEL_BYTES_MAX: usize = 63;
/// A full name is for display; anything longer is a mistake or an attack on the profile.
pub const NAME_BYTES_MAX: usize = 256;
/// Bounds argon2 input work; no human types a password longer than this.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// A profile is a handful of short lines; a bigger file is damaged and is not read whole.
pub const PROFILE_BYTES_MAX: usize = 64 * 1024;
/// The format file is a few short lines; a bigger file is not ours.
pub const FORMAT_BYTES_MAX: usize = 4 * 1024;
/// Three hex levels give 16M leaf directories, more than any store needs (DESIGN §2).
pub const FANOUT_LEVELS_MAX: u8 = 3;
/// A root is a disk; the format file stores the count and the bucket→root map uses u16.
pub const ROOTS_MAX: usize = 256;
/// A PHC argon2 string is about 100 bytes; room for stronger parameters, no more.
pub const PASSWORD_HASH_BYTES_MAX: usize = 512;

// --- mailboxes, index, journal (issue 3) ---

/// RFC 3501 gives no limit; Dovecot caps a mailbox name near this, and every name is a
/// line of the `mailboxes` file that is read whole.
pub const MAILBOX_NAME_BYTES_MAX: usize = 1024;
/// One name component is one word of a folder tree; longer is a mistake or an attack.
pub const MAILBOX_COMPONENT_BYTES_MAX: usize = 255;
/// Deep trees make every LIST walk deep; real clients nest a few levels.
pub const MAILBOX_DEPTH_MAX: usize = 32;
/// Mailboxes per user: the whole list is rewritten on each change, so it must stay small.
pub const MAILBOXES_PER_USER_MAX: usize = 10_000;
/// The `mailboxes` file holds at most this many lines of at most this many bytes.
pub const MAILBOXES_FILE_BYTES_MAX: usize = MAILBOXES_PER_USER_MAX * (MAILBOX_NAME_BYTES_MAX + 64);
/// Keyword slots in an index header: a record holds the keywords as one u64 bitmask.
pub const KEYWORDS_PER_MAILBOX_MAX: usize = 64;
/// A keyword slot is 64 bytes (length, name, crc): a keyword fits in what is left.
pub const KEYWORD_BYTES_MAX: usize = 59;
/// Largest message the store accepts (LMTP SIZE, IMAP APPENDLIMIT): it is held in memory
/// once in the journal record while it waits for the group commit.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A journal record is one message plus its addressing; anything longer is torn or alien.
pub const JOURNAL_RECORD_BYTES_MAX: usize = MESSAGE_BYTES_MAX + 64 * 1024;
/// The journal asks for a checkpoint past this size: replay at start reads at most about
/// this much, which bounds restart time.
pub const JOURNAL_CHECKPOINT_BYTES: u64 = 256 * 1024 * 1024;
/// UIDs one COPY/MOVE/STORE/EXPUNGE record may carry; bounds a record's size and the work
/// one apply does on the shard thread.
pub const UIDS_PER_RECORD_MAX: usize = 100_000;
/// A cache record is precomputed MIME structure; a 10 000-part message stays well below.
pub const CACHE_RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Changes kept per open mailbox for IDLE/NOTIFY readers that fell behind; older readers
/// resynchronise from the index.
pub const CHANGES_PER_MAILBOX_MAX: usize = 4096;
/// Users whose mailbox list and indexes a shard keeps loaded; older ones are dropped.
pub const USERS_CACHED_MAX: usize = 4096;
