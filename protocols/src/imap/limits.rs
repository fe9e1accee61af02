//! Limits of the authenticated and selected states, each with its reason. The crate's
//! `limits.rs` holds the pre-login ones (framing, tags, literals); these live beside the
//! commands they bound until that file can take them.

/// Ranges in one sequence set. A UID set of a fragmented mailbox from a QRESYNC-less
/// client is the longest real case; the line limit bounds it anyway, this bounds the work.
pub const IMAP_SEQUENCE_RANGES_MAX: usize = 16 * 1024;

/// The largest APPEND literal (APPENDLIMIT, with the backend's own limit). The literal
/// is streamed to the backend as it arrives, never held whole, so this bounds disk and
/// time, not memory; the store's `MESSAGE_BYTES_MAX` is the same 64 MiB.
pub const IMAP_APPEND_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Search keys in one SEARCH (after OR/NOT/parentheses): bounds the evaluation cost per
/// message.
pub const IMAP_SEARCH_KEYS_MAX: usize = 256;

/// Header field names in one `HEADER.FIELDS (…)`.
pub const IMAP_HEADER_FIELDS_MAX: usize = 128;

/// FETCH attributes in one command.
pub const IMAP_FETCH_ITEMS_MAX: usize = 64;

/// Bytes of one part the session decodes in memory (BINARY[], SEARCH BODY/TEXT);
/// bigger parts answer `[LIMIT]` for BINARY and are searched in their first bytes.
pub const IMAP_DECODE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Flags (system + keywords) in one STORE/APPEND flag list.
pub const IMAP_FLAGS_MAX: usize = 128;

/// Mailboxes in one LIST answer with RETURN (STATUS …): each costs a STATUS.
pub const IMAP_LIST_STATUS_MAX: usize = 10_000;

/// Patterns in one LIST-EXTENDED `(pattern …)` list.
pub const IMAP_LIST_PATTERNS_MAX: usize = 64;

/// Messages whose structures FETCH asks the backend for at once: the backend reads
/// their cache records together, and the session holds at most this many structures
/// (a few KB each) while it answers.
pub const IMAP_FETCH_LAYOUT_BATCH: usize = 64;
