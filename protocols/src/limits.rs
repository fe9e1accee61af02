//! Every input limit of the protocol codecs, in one place, each with its reason.
//!
//! A violation never panics: the session answers `BAD` (or `BYE` and closes)
//! and the connection stays healthy or ends cleanly (DESIGN §4).

/// A command's line parts (everything except literal data, CRLFs included).
/// RFC 7162 asks servers to accept at least 8192 octets; long UID sets from
/// QRESYNC-less clients are the real-world maximum.
pub const IMAP_LINE_BYTES_MAX: usize = 64 * 1024;

/// One literal before login: only user names, passwords and SASL data live there.
pub const IMAP_PREAUTH_LITERAL_BYTES_MAX: u64 = 8 * 1024;

/// One literal held in memory after login (search strings, mailbox names).
/// APPEND will stream its message instead and carries its own limit.
pub const IMAP_LITERAL_BYTES_MAX: u64 = 64 * 1024;

/// A whole command held in memory: line parts plus all of its literals.
pub const IMAP_COMMAND_BYTES_MAX: usize = 128 * 1024;

/// Unparsed input held per connection: one maximal command plus the start of the
/// next, so a legal command always fits; more means the client ignores our answers.
pub const IMAP_INPUT_BUFFER_BYTES_MAX: usize = IMAP_COMMAND_BYTES_MAX + IMAP_LINE_BYTES_MAX;

/// Consecutive BAD answers before `* BYE`: a client this confused is not a mail client.
pub const IMAP_BAD_COMMANDS_MAX: u32 = 20;

/// Failed logins on one connection before `* BYE`: slows down password guessing.
pub const IMAP_AUTH_FAILURES_MAX: u32 = 5;

/// A command tag. Real clients use a few characters; the tag is echoed in every answer.
pub const IMAP_TAG_BYTES_MAX: usize = 64;

/// Nesting of parenthesised lists; the deepest real use (BODYSTRUCTURE-like
/// search keys) is far below. Bounds the parser's recursion.
pub const IMAP_LIST_DEPTH_MAX: usize = 16;

/// ID field/value pairs, field and value sizes (RFC 2971 §3.3).
pub const IMAP_ID_PAIRS_MAX: usize = 30;
/// RFC 2971 §3.3: fields are at most 30 octets.
pub const IMAP_ID_FIELD_BYTES_MAX: usize = 30;
/// RFC 2971 §3.3: values are at most 1024 octets.
pub const IMAP_ID_VALUE_BYTES_MAX: usize = 1024;

// The input buffer must hold any command the limits above allow.
const _: () = assert!(IMAP_INPUT_BUFFER_BYTES_MAX >= IMAP_COMMAND_BYTES_MAX + IMAP_LINE_BYTES_MAX);
const _: () = assert!(IMAP_LITERAL_BYTES_MAX as usize <= IMAP_COMMAND_BYTES_MAX);
const _: () = assert!(IMAP_PREAUTH_LITERAL_BYTES_MAX <= IMAP_LITERAL_BYTES_MAX);
