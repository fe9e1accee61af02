//! IMAP4rev1/rev2 server side, sans-IO.
//!
//! Input flows `framing` (lines + literals, limits) → `parser` (grammar → typed
//! [`Command`](parser::Command)) → `session` (state machine, responses, events).
//! The engine only talks to [`ImapSession`]:
//!
//! ```
//! use protocols::imap::{ImapConfig, ImapEvent, ImapSession, LoginOutcome};
//!
//! let mut session = ImapSession::new(ImapConfig::default());
//! let greeting = session.poll_output().expect("greeting");
//! assert!(greeting.starts_with(b"* OK [CAPABILITY IMAP4rev1"));
//!
//! // One read holding a LOGIN and a pipelined NOOP.
//! session.handle_input(b"a LOGIN bob secret\r\nb NOOP\r\n")?;
//! let Some(ImapEvent::Login { tag, username, password }) = session.poll_event() else {
//!     panic!("expected a login");
//! };
//! assert_eq!((tag.as_str(), &username[..], password.expose()), ("a", &b"bob"[..], &b"secret"[..]));
//! assert_eq!(session.poll_output(), None); // NOOP waits for the login
//!
//! // Move to the owning shard (ImapHandoff is Send), answer there.
//! let handoff = session.into_handoff();
//! let written = std::thread::spawn(move || {
//!     let mut session = ImapSession::from_handoff(handoff);
//!     session.login_result(LoginOutcome::Ok { user: "bob".into() });
//!     session.poll_output().expect("answers")
//! })
//! .join()
//! .expect("thread");
//! assert_eq!(
//!     written,
//!     b"a OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE] Logged in\r\nb OK NOOP completed\r\n"
//! );
//! # Ok::<(), protocols::imap::InputError>(())
//! ```

pub mod backend;
pub mod command;
pub mod date;
pub mod decode;
pub mod framing;
pub mod limits;
pub mod mailbox_name;
pub mod memory;
pub mod parser;
pub mod search_text;
mod session;
pub mod types;

pub use backend::{ImapBackend, NoBackend, Pending};
pub use session::{
    AUTHENTICATED_CAPABILITIES, ImapConfig, ImapEvent, ImapHandoff, ImapSession, InputError,
    LoginOutcome, MailboxEvent, SERVER_PRODUCT_NAME, Transmit,
};
pub use types::Secret;
