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
/// The profile's `password_hash` value: a bare PHC argon2 string (~100 bytes, older
/// profiles) or the whole `Verifiers` line (argon2 + SCRAM keys + a sealed CRAM-MD5
/// secret), so the same bound as [`VERIFIERS_BYTES_MAX`].
pub const PASSWORD_HASH_BYTES_MAX: usize = VERIFIERS_BYTES_MAX;

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
/// One read of several cache records (FETCH or SEARCH over a range): records lie in
/// delivery order, so a range of messages is mostly one stretch of the file. A read
/// covers at most this many bytes, and skips at most [`CACHE_READ_GAP_BYTES`] of
/// records nobody asked for; anything else is read on its own.
pub const CACHE_READ_SPAN_BYTES: u64 = 256 * 1024;
/// See [`CACHE_READ_SPAN_BYTES`].
pub const CACHE_READ_GAP_BYTES: u64 = 8 * 1024;
/// Changes kept per open mailbox for IDLE/NOTIFY readers that fell behind; older readers
/// resynchronise from the index.
pub const CHANGES_PER_MAILBOX_MAX: usize = 4096;
/// Users whose mailbox list and indexes a shard keeps loaded; older ones are dropped.
pub const USERS_CACHED_MAX: usize = 4096;
/// UIDs reserved at a time in the mailbox list (`mailbox::list`, `uid_bound`): one list
/// write per this many deliveries to a mailbox, and at most this many UIDs skipped when a
/// lost index is rebuilt.
pub const UID_RESERVE_STEP: u32 = 1024;
/// Modseqs reserved at a time in the mailbox list (`modseq_bound`), for the same reason.
pub const MODSEQ_RESERVE_STEP: u64 = 4096;
/// A mailbox is compacted (after a checkpoint) once this many expunged records are dead
/// weight and they are a quarter of its records: below that the rewrite costs more than
/// the space it gives back.
pub const COMPACT_DEAD_MIN: usize = 64;
/// ... or once its cache is at least this big and half of it is dead bytes.
pub const COMPACT_CACHE_BYTES_MIN: u64 = 256 * 1024;

// --- forwarding database, outbound queue (issue 4) ---

/// Targets of one forwarding entry: mailing lists belong in a list manager, and every
/// target costs a lookup (and maybe an outbound delivery) per message.
pub const FORWARD_TARGETS_MAX: usize = 100;
/// A forwarding file is a few short lines: `FORWARD_TARGETS_MAX` addresses fit easily;
/// a bigger file is damaged and is not read whole.
pub const FORWARD_FILE_BYTES_MAX: usize = 64 * 1024;
/// Hops a forwarding chain may take (a→b→c is 2). Issue 4 asks for 10; Postfix's
/// virtual alias expansion stops at `virtual_alias_recursion_limit` = 1000 but real
/// chains are one or two hops, so a long one is a misconfiguration to bounce.
pub const FORWARD_HOPS_MAX: usize = 10;
/// Addresses one resolution may produce (or visit): bounds the work of a fan-out of
/// fan-outs (100 targets × 100 targets…) on the shard thread.
pub const FORWARD_RESOLVED_MAX: usize = 1000;
/// Recipients of one queued outbound message; more would make the envelope file large
/// and one relay transaction too long (RFC 5321 asks servers for at least 100).
pub const OUTBOUND_RECIPIENTS_MAX: usize = 1000;
/// A queue envelope file: `OUTBOUND_RECIPIENTS_MAX` lines of address plus diagnostic.
pub const OUTBOUND_ENVELOPE_BYTES_MAX: usize = 2 * 1024 * 1024;
/// One remembered SMTP diagnostic (the last reply for a recipient); longer replies are
/// cut, they only go into the bounce text.
pub const OUTBOUND_DIAGNOSTIC_BYTES_MAX: usize = 512;
/// Original headers quoted in a bounce (`text/rfc822-headers`); a message with a bigger
/// header is quoted up to here.
pub const BOUNCE_HEADER_BYTES_MAX: usize = 64 * 1024;
/// How long an outbound message is retried before it bounces (Postfix
/// `maximal_queue_lifetime` is 5 days too).
pub const OUTBOUND_RETRY_WINDOW_SECS_DEFAULT: u64 = 5 * 24 * 3600;
/// Waits after the 1st, 2nd, … failed attempt; the last one repeats. Grows fast at first
/// (greylisting answers within minutes), then caps so a relay back up is used soon.
pub const OUTBOUND_BACKOFF_SECS_DEFAULT: [u64; 6] = [60, 300, 900, 3600, 2 * 3600, 4 * 3600];

// --- authentication (issue 7) ---

/// RFC 7677 §4: SCRAM-SHA-256 iterations are at least 4096; fewer makes stolen keys
/// cheap to attack.
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;
/// Every login costs the client (and `matches_password` the server) this many HMACs;
/// more than this is a typo or an attack on clients through a forged passwd-file.
pub const SCRAM_ITERATIONS_MAX: u32 = 1_000_000;
/// Salt of new SCRAM keys: 128 bits (RFC 5802 leaves the length open; Dovecot uses 16).
pub const SCRAM_SALT_BYTES: usize = 16;
/// The serialised verifiers of one password: argon2 (~100 B), SCRAM (~140 B) and a
/// sealed CRAM secret of a maximal password (4/3 × `PASSWORD_BYTES_MAX` + 60 B).
pub const VERIFIERS_BYTES_MAX: usize = 2048;
/// One passwd-file or shadow line: a user, a hash and Dovecot's extra fields.
pub const PASSWD_LINE_BYTES_MAX: usize = 8 * 1024;
/// A passwd-file or shadow file is read line by line on each login; a bigger one
/// belongs in LDAP.
pub const PASSWD_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// An upload file in a staging folder is taken for an orphan when it was last written
/// this long before the store opened (see `mailbox::apply::sweep_staging`): file times
/// come from a coarse clock, and an upload begun right after the open must stay.
pub const STAGING_SWEEP_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// SEARCH header lines a shard keeps in memory for all its open mailboxes together
/// (`Trees::search_lines`): about 200 000 messages' From/To/Cc/Bcc/Subject lines.
/// Past it they are all dropped and read from the cache records again.
pub const SEARCH_LINES_BYTES_MAX: usize = 32 * 1024 * 1024;
/// What one kept entry costs besides its bytes (map slot, box header), for the count.
pub const SEARCH_LINES_ENTRY_BYTES: usize = 40;
