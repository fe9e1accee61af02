//! LMTP server side (RFC 2033), sans-IO: the delivery channel from the MTA.
//!
//! Input flows `parser` (command lines → typed [`Command`](parser::Command))
//! and `data` (DATA unstuffing, BDAT chunks) → `session` (state machine,
//! replies, events). The engine only talks to [`LmtpSession`].
//!
//! Extensions: PIPELINING (RFC 2920), ENHANCEDSTATUSCODES (RFC 2034), 8BITMIME
//! (RFC 6152), SIZE (RFC 1870), CHUNKING (RFC 3030). `VRFY`/`EXPN` get
//! `502 5.5.1` (account enumeration); `HELO`/`EHLO` get `500 5.5.1`.
//!
//! - **Recipients** are validated one by one ([`LmtpEvent::ValidateRecipient`]),
//!   so unknown, disabled and over-quota recipients are refused at RCPT time.
//! - **Message data** is streamed out as [`LmtpEvent::Data`] pieces while it
//!   arrives; a message is never held whole by the session. Line ends are made
//!   CRLF and NUL refuses the message: see [`data`] for the exact rule.
//! - **`Return-Path:`** is the engine's job: it prepends
//!   `Return-Path: <mail_from>` CRLF when it stores the message (the session
//!   streams the message bytes unchanged, so it cannot add a header cheaply
//!   before the data is known to be wanted).
//! - After the data, [`LmtpEvent::Deliver`] asks for one reply per accepted
//!   recipient ([`LmtpSession::recipient_result`]), written in RCPT order.
//! - A connection that ends mid-message produces no `Deliver`: the engine drops
//!   whatever `Data` it got since the last `Deliver`/`DiscardData`.
//!
//! ```
//! use protocols::lmtp::{LmtpConfig, LmtpEvent, LmtpSession, RecipientCheck, Reply};
//!
//! let mut session = LmtpSession::new(LmtpConfig::default());
//! assert!(session.poll_output().expect("greeting").starts_with(b"220 "));
//! session.handle_input(b"LHLO mx\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n")?;
//! let Some(LmtpEvent::ValidateRecipient { address, .. }) = session.poll_event() else {
//!     panic!("expected a recipient check");
//! };
//! assert_eq!(address, "bob@example.net");
//! session.recipient_checked(RecipientCheck::Accept);
//! session.handle_input(b"Subject: hi\r\n\r\n..dot\r\n.\r\n")?;
//! let mut message = Vec::new();
//! let recipients = loop {
//!     match session.poll_event() {
//!         Some(LmtpEvent::Data { bytes }) => message.extend(bytes),
//!         Some(LmtpEvent::Deliver { recipients, .. }) => break recipients,
//!         other => panic!("unexpected {other:?}"),
//!     }
//! };
//! assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\n");
//! assert_eq!(recipients, ["bob@example.net"]);
//! session.recipient_result(0, Reply::delivered());
//! let written = session.poll_output().expect("replies");
//! assert!(written.ends_with(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n250 2.0.0 Delivered\r\n"));
//! # Ok::<(), protocols::lmtp::InputError>(())
//! ```

pub mod data;
pub mod parser;
pub mod reply;
mod session;

pub use crate::line::InputError;
pub use parser::{BodyType, MailFrom};
pub use reply::{Reply, ReplyError};
pub use session::{LmtpConfig, LmtpEvent, LmtpSession, RecipientCheck};
