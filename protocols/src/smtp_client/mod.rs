//! SMTP client (RFC 5321), sans-IO: how mail leaves the store — external
//! forwards now, Sieve redirect and vacation replies later — from the outbound
//! queue to the configured relay (DESIGN §4, issue 4).
//!
//! One [`SmtpClient`] is one connection delivering one [`Envelope`]:
//!
//! 1. greeting `220` (anything else defers every recipient: a 5xx greeting
//!    refuses the connection, not the message);
//! 2. `EHLO`, falling back to `HELO` on a 5xx;
//! 3. `STARTTLS` when offered and the [`TlsPolicy`] allows: the engine gets
//!    [`SmtpClientEvent::StartTls`], wraps the connection, calls
//!    [`SmtpClient::tls_established`], and the session says `EHLO` again;
//! 4. `MAIL FROM:<…>` with `SIZE=` and `BODY=8BITMIME` when offered (a message
//!    over the server's `SIZE` is refused permanently before MAIL is sent);
//!    `RCPT TO:<…>` for each recipient; `DATA` — all in one go when the server
//!    offers PIPELINING, one by one otherwise;
//! 5. [`SmtpClientEvent::SendData`]: the engine streams the message with
//!    [`SmtpClient::push_data`] (dot-stuffing is done here) and ends it with
//!    [`SmtpClient::finish_data`];
//! 6. [`SmtpClientEvent::Done`] with one [`RecipientResult`] per recipient, in
//!    envelope order; `QUIT`; [`SmtpClientEvent::Close`].
//!
//! Outcomes: a 2xx after the data is [`Outcome::Delivered`]; a 4xx at any
//! stage, a `421`, a lost connection, a timeout reported by the engine or a
//! reply we cannot parse is [`Outcome::Temporary`]; a 5xx (at EHLO+HELO, MAIL,
//! RCPT, DATA or after the data) is [`Outcome::Permanent`]. A refusal at MAIL,
//! DATA or after the data applies to every recipient that was still open.
//!
//! ```
//! use protocols::smtp_client::{
//!     Envelope, Outcome, SmtpClient, SmtpClientConfig, SmtpClientEvent, TlsPolicy,
//! };
//!
//! let config = SmtpClientConfig { helo_name: "store.example".into(), tls: TlsPolicy::Disabled };
//! let envelope = Envelope {
//!     mail_from: "alice@example.com".into(),
//!     recipients: vec!["bob@example.net".into()],
//!     size_bytes: Some(12),
//!     eight_bit: false,
//! };
//! let mut client = SmtpClient::new(config, envelope)?;
//! client.handle_input(b"220 relay ESMTP\r\n").unwrap();
//! assert_eq!(client.poll_output().unwrap(), b"EHLO store.example\r\n");
//! client.handle_input(b"250-relay\r\n250 PIPELINING\r\n").unwrap();
//! assert_eq!(
//!     client.poll_output().unwrap(),
//!     b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"
//! );
//! client.handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n").unwrap();
//! assert_eq!(client.poll_event(), Some(SmtpClientEvent::SendData));
//! client.push_data(b"Subject: x\r\n\r\n.hi\r\n").unwrap();
//! client.finish_data().unwrap();
//! assert_eq!(client.poll_output().unwrap(), b"Subject: x\r\n\r\n..hi\r\n.\r\n");
//! client.handle_input(b"250 2.0.0 queued\r\n").unwrap();
//! let Some(SmtpClientEvent::Done(results)) = client.poll_event() else { panic!() };
//! assert_eq!(results[0].outcome, Outcome::Delivered);
//! assert_eq!(client.poll_output().unwrap(), b"QUIT\r\n");
//! # Ok::<(), protocols::smtp_client::EnvelopeError>(())
//! ```

mod client;
pub mod reply;

pub use crate::line::InputError;
pub use client::{
    Envelope, EnvelopeError, OutOfSequence, Outcome, RecipientResult, SmtpClient, SmtpClientConfig,
    SmtpClientEvent, Stage, TlsPolicy,
};
pub use reply::{ReplyError, SmtpReply};
