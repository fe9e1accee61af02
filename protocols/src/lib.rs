//! Sans-IO protocol codecs and session state machines (DESIGN §4). Nothing here
//! touches a socket, a file or a clock: bytes in, responses and events out.
#![forbid(unsafe_code)]

pub mod imap;
pub mod limits;
mod line;
pub mod lmtp;
pub mod pop3;
pub mod poppassd;
pub mod sasl;
pub mod secret;
pub mod smtp_client;
pub mod socketmap;

pub use secret::Secret;
