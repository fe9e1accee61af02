//! Limits of the message precompute, each with its reason (STYLE: limits in one place).
//!
//! A message is accepted whatever its bytes; these caps only bound the work and the
//! size of the cache record. Past a cap the rest is treated as opaque body, never
//! rejected.

/// MIME parts per message. 10 000-part messages must work; beyond this the rest of the
/// message is body text of the part being read (no more boundaries are looked for).
/// Dovecot's own default is 10 000, so up to that count we answer as it does.
pub const PARTS_MAX: usize = 50_000;

/// Nesting of multipart and message/rfc822 parts. Deeper containers are treated as
/// single opaque parts. Same as Dovecot's `max_nested_mime_parts`; also bounds recursion.
pub const NESTING_DEPTH_MAX: usize = 100;

/// Boundary strings are cut to this length (Dovecot's `BOUNDARY_STRING_MAX_LEN`), so a
/// hostile boundary cannot make each line comparison expensive.
pub const BOUNDARY_BYTES_MAX: usize = 80;

/// Bytes of a header value kept for the precomputed SEARCH/SORT fields (subject, names).
/// Header lines themselves have no length cap: they are scanned once, linearly.
pub const SORT_FIELD_BYTES_MAX: usize = 4096;

/// Header bytes handed to the RFC 2047 / date decoder for the SORT fields. The parts
/// table and IMAP strings see the whole header; only the decoded extras are bounded.
pub const SORT_HEADER_BYTES_MAX: usize = 256 * 1024;

/// Bytes of the header lines kept in the cache record for SEARCH (see
/// [`super::SEARCH_HEADER_FIELDS`]). Real From/To/Cc/Bcc/Subject lines are far below
/// this; a message over it keeps none in the cache and SEARCH reads its file instead,
/// so the cap only bounds the record, never changes an answer.
pub const SEARCH_HEADER_BYTES_MAX: usize = 16 * 1024;

/// Addresses parsed per header field: an address list is linear to parse, this only
/// bounds the ENVELOPE we build.
pub const ADDRESSES_PER_FIELD_MAX: usize = 10_000;

/// Message ids kept from References for THREAD. Real threads reference a few dozen
/// ancestors; the cap bounds the cache record and the linking work per message.
pub const THREAD_REFERENCES_MAX: usize = 256;
