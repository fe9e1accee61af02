//! poppassd, the password-change protocol of Eudora/Mulberry-era clients and
//! many ISP scripts (qpopper's `poppassd`), sans-IO.
//!
//! ```text
//! S: 200 host poppassd
//! C: user bob                 S: 200 Your password please.
//! C: pass old-secret          S: 200 Your new password please.  | 500 Old password is incorrect.
//! C: newpass new-secret       S: 200 Password changed, thank-you. | 500 <reason>
//! C: quit                     S: 200 Bye.
//! ```
//!
//! Verbs are case-insensitive; a password is the rest of its line (spaces
//! allowed). Wrong passwords, refused new passwords and bad commands count
//! toward `POPPASSD_FAILURES_MAX`, after which the connection closes; rate
//! limiting across connections is the engine's (like logins).
//!
//! ```
//! use protocols::poppassd::{
//!     PasswordChange, PasswordCheck, PoppassdConfig, PoppassdEvent, PoppassdSession,
//! };
//!
//! let mut session = PoppassdSession::new(PoppassdConfig::default());
//! session.handle_input(b"user bob\r\npass old\r\nnewpass new one\r\nquit\r\n")?;
//! assert!(matches!(session.poll_event(), Some(PoppassdEvent::CheckPassword { .. })));
//! session.check_result(PasswordCheck::Correct);
//! let Some(PoppassdEvent::ChangePassword { user, new, .. }) = session.poll_event() else {
//!     panic!("expected a change");
//! };
//! assert_eq!((user.as_str(), new.expose()), ("bob", &b"new one"[..]));
//! session.change_result(PasswordChange::Changed);
//! assert_eq!(
//!     session.poll_output().expect("replies"),
//!     b"200 localhost poppassd\r\n200 Your password please.\r\n200 Your new password please.\r\n\
//!       200 Password changed, thank-you.\r\n200 Bye.\r\n"
//! );
//! assert_eq!(session.poll_event(), Some(PoppassdEvent::Close));
//! # Ok::<(), protocols::poppassd::InputError>(())
//! ```

mod session;

pub use crate::line::InputError;
pub use session::{PasswordChange, PasswordCheck, PoppassdConfig, PoppassdEvent, PoppassdSession};
