//! Messages: normalised at delivery, parsed once, and precomputed into what FETCH,
//! SEARCH, SORT and THREAD need (DESIGN §3 "Precompute at delivery"), kept in a
//! checksummed, versioned cache record.
//!
//! ```
//! use store::message::{normalize_crlf, precompute, SectionText, cache};
//! let msg = normalize_crlf(b"Subject: hi\n\nhello\n");
//! let pre = precompute(&msg);
//! assert_eq!(pre.size, 22);
//! let text = pre.section(&[], SectionText::Text).and_then(|r| r.to_range());
//! assert_eq!(text.map(|r| &msg[r]), Some(&b"hello\r\n"[..]));
//! assert_eq!(cache::decode(&cache::encode(&pre)).ok(), Some(pre));
//! ```
//!
//! The ENVELOPE, BODY and BODYSTRUCTURE strings and every section's bytes match what
//! Dovecot 2.3 answers for the same message (tests/dovecot_parity.rs).

mod address;
pub mod cache;
mod imap_string;
pub mod limits;
mod mime;
mod normalize;
mod precompute;
mod rfc822;
mod sort_keys;
mod structure;

pub use normalize::normalize_crlf;
pub use precompute::{
    ByteRange, HeaderDate, HeaderFields, Mailbox, Part, PartKind, Precomputed,
    SEARCH_HEADER_FIELDS, SectionText, TransferEncoding, base_subject, precompute,
    search_header_lines,
};
pub use sort_keys::{SortKeys, base_subject_cased, message_ids, parse_date, titlecase};
