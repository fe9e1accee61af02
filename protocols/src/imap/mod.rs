//! IMAP4rev1/rev2 server side, sans-IO.
//!
//! Input flows `framing` (lines + literals, limits) → `parser` (grammar → typed
//! [`Command`](parser::Command)) → `session` (state machine, responses, events).
//! The engine only talks to [`ImapSession`].

pub mod framing;
pub mod parser;
mod session;
pub mod types;

pub use session::{
    ImapConfig, ImapEvent, ImapHandoff, ImapSession, InputError, LoginOutcome, SERVER_PRODUCT_NAME,
};
pub use types::Secret;
