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

// ---------------------------------------------------------------------------
// LMTP (RFC 2033)

/// A command line, CRLF included. RFC 5321 §4.5.3.1.4 asks for 512; SIZE/BODY
/// parameters and quoted local parts push real lines past that, so we allow 2048
/// (Postfix's own `line_length_limit` is 2048).
pub const LMTP_LINE_BYTES_MAX: usize = 2048;

/// A reverse-path or forward-path with its angle brackets (RFC 5321 §4.5.3.1.3).
pub const LMTP_PATH_BYTES_MAX: usize = 256;

/// RCPT commands in one transaction. RFC 5321 §4.5.3.1.8 requires 100; Postfix
/// sends at most `lmtp_destination_recipient_limit` (default 50) and its own
/// `smtpd_recipient_limit` is 1000. More gets `452 4.5.3` and the MTA retries
/// the rest in another transaction.
pub const LMTP_RECIPIENTS_MAX: usize = 1000;

/// Default largest message accepted (after dot-unstuffing); configurable per
/// listener (`LmtpConfig::message_bytes_max`). Postfix's `message_size_limit`
/// defaults to 10 MB, large ISPs allow up to 50 MB of attachments plus base64.
pub const LMTP_MESSAGE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Consecutive refused commands (syntax, sequence) before `421` and close: an
/// MTA that errs this often is not speaking LMTP (Postfix `smtpd_hard_error_limit`).
pub const LMTP_ERRORS_MAX: u32 = 20;

/// Unparsed input held while the engine answers (RCPT validation, delivery):
/// a whole pipelined MAIL + RCPT… + DATA group of short lines fits; an engine
/// that reads at most `input_room()` never hits it.
pub const LMTP_INPUT_BUFFER_BYTES_MAX: usize = 64 * 1024;

const _: () = assert!(LMTP_INPUT_BUFFER_BYTES_MAX >= 2 * LMTP_LINE_BYTES_MAX);
const _: () = assert!(LMTP_PATH_BYTES_MAX < LMTP_LINE_BYTES_MAX);

// ---------------------------------------------------------------------------
// POP3 (RFC 1939, RFC 2449)

/// A command line, CRLF included: RFC 2449 §4 says 255 octets.
pub const POP3_LINE_BYTES_MAX: usize = 255;

/// An `AUTH` line with its initial response, or a SASL continuation line
/// (RFC 5034 §4 puts no 255-octet bound on those): enough for SCRAM and PLAIN
/// with long names; Kerberos tickets would need more and are not offered.
pub const POP3_SASL_LINE_BYTES_MAX: usize = 8 * 1024;

/// Consecutive `-ERR` answers to bad commands before the session closes.
pub const POP3_ERRORS_MAX: u32 = 20;

/// Failed logins on one connection before it closes: slows password guessing.
pub const POP3_AUTH_FAILURES_MAX: u32 = 3;

/// A unique-id listing entry: RFC 1939 §7 says 1 to 70 characters 0x21–0x7E.
pub const POP3_UIDL_BYTES_MAX: usize = 70;

/// Unparsed input held while the engine answers (login, RETR streaming):
/// a pipelined batch of RETR/DELE commands; an engine that reads at most
/// `input_room()` never hits it.
pub const POP3_INPUT_BUFFER_BYTES_MAX: usize = 32 * 1024;

const _: () = assert!(POP3_INPUT_BUFFER_BYTES_MAX >= 2 * POP3_SASL_LINE_BYTES_MAX);
const _: () = assert!(POP3_LINE_BYTES_MAX <= POP3_SASL_LINE_BYTES_MAX);

// ---------------------------------------------------------------------------
// poppassd (Eudora/qpopper password change)

/// A command line, CRLF included: `newpass` plus a long passphrase.
pub const POPPASSD_LINE_BYTES_MAX: usize = 512;

/// Failures (wrong old password, refused new password, bad commands) on one
/// connection before it closes: the service is a password oracle otherwise.
pub const POPPASSD_FAILURES_MAX: u32 = 3;

/// Unparsed input held while the engine checks a password.
pub const POPPASSD_INPUT_BUFFER_BYTES_MAX: usize = 4 * 1024;

const _: () = assert!(POPPASSD_INPUT_BUFFER_BYTES_MAX >= 2 * POPPASSD_LINE_BYTES_MAX);

// ---------------------------------------------------------------------------
// Postfix socketmap (socketmap_table(5))

/// A request netstring's payload (`<map> <key>`): an address key is at most 256
/// bytes (RFC 5321) and a map name a word; room for odd keys, no more.
pub const SOCKETMAP_REQUEST_BYTES_MAX: usize = 4096;

/// A reply netstring's payload: Postfix's `socketmap_max_reply_size` default;
/// a longer reply is refused by Postfix, so we never send one.
pub const SOCKETMAP_REPLY_BYTES_MAX: usize = 100_000;

/// Unparsed input held while the engine answers a lookup: Postfix sends one
/// request and waits, so a few pipelined requests are already generous.
pub const SOCKETMAP_INPUT_BUFFER_BYTES_MAX: usize = 16 * 1024;

const _: () = assert!(SOCKETMAP_INPUT_BUFFER_BYTES_MAX >= 2 * (SOCKETMAP_REQUEST_BYTES_MAX + 8));

// ---------------------------------------------------------------------------
// SMTP client (outbound queue to the relay)

/// One reply line from the relay, CRLF included. RFC 5321 §4.5.3.1.5 says 512;
/// servers with long EHLO keywords or texts go past it, so allow more.
pub const SMTP_CLIENT_REPLY_LINE_BYTES_MAX: usize = 4096;

/// Lines of one multi-line reply (an EHLO answer has a dozen); more is a server
/// that will not stop talking.
pub const SMTP_CLIENT_REPLY_LINES_MAX: usize = 128;

/// Unparsed input held: a pipelined batch of replies to MAIL, many RCPTs and DATA.
pub const SMTP_CLIENT_INPUT_BUFFER_BYTES_MAX: usize = 256 * 1024;

/// Recipients of one transaction: RFC 5321 §4.5.3.1.8 requires servers to take
/// 100; more are sent anyway (a 452 leaves them temporary for the next try).
pub const SMTP_CLIENT_RECIPIENTS_MAX: usize = 1000;

const _: () = assert!(SMTP_CLIENT_INPUT_BUFFER_BYTES_MAX >= 2 * SMTP_CLIENT_REPLY_LINE_BYTES_MAX);
