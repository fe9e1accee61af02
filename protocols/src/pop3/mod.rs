//! POP3 server side (RFC 1939), sans-IO, with CAPA (RFC 2449), STLS (RFC 2595),
//! SASL (RFC 5034), response codes (RFC 2449 `IN-USE`, RFC 3206 `AUTH`,
//! `SYS/TEMP`, `SYS/PERM`) and PIPELINING.
//!
//! Input flows `parser` (command lines → typed [`Command`](parser::Command)) →
//! `session` (state machine, responses, events). Message bodies never pass
//! through the session: on [`Pop3Event::Retrieve`] the engine streams the file
//! to the socket through a [`DotStuffer`].
//!
//! Deletion: `DELE` only marks; `QUIT` in the TRANSACTION state raises
//! [`Pop3Event::Update`] and the `+OK` is written after the engine made the
//! removal durable. A connection that ends any other way deletes nothing.
//!
//! ```
//! use protocols::pop3::{DotStuffer, LoginOutcome, Pop3Config, Pop3Event, Pop3Session};
//!
//! let mut session = Pop3Session::new(Pop3Config::default());
//! assert!(session.poll_output().expect("greeting").starts_with(b"+OK "));
//! session.handle_input(b"USER bob\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")?;
//! let Some(Pop3Event::Login { user, password }) = session.poll_event() else {
//!     panic!("expected a login");
//! };
//! assert_eq!((user.as_str(), password.expose()), ("bob", &b"secret"[..]));
//!
//! // Move to the owning shard (Pop3Handoff is Send), open the maildrop there.
//! let mut session = Pop3Session::from_handoff(session.into_handoff());
//! session.login_result(LoginOutcome::Ok { user: "bob@example.net".into() });
//! assert!(matches!(session.poll_event(), Some(Pop3Event::OpenMaildrop { .. })));
//! session.maildrop_opened(vec![(9, "1a2b.1".into())]);
//! let Some(Pop3Event::Retrieve { msg: 0, top_lines: None }) = session.poll_event() else {
//!     panic!("expected RETR of the first message");
//! };
//! session.retrieve_started();
//! let mut written = session.poll_output().expect("+OK lines");
//! let mut stuffer = DotStuffer::new();
//! stuffer.push(b".hidden\r\n", &mut written); // the engine streams file chunks
//! stuffer.finish(&mut written);
//! session.retrieve_done();
//! assert!(matches!(session.poll_event(), Some(Pop3Event::Update { deleted }) if deleted.is_empty()));
//! session.update_done(true);
//! written.extend(session.poll_output().expect("sign-off"));
//! assert!(written.ends_with(b"+OK 9 octets\r\n..hidden\r\n.\r\n+OK localhost signing off (1 messages left)\r\n"));
//! # Ok::<(), protocols::pop3::InputError>(())
//! ```

mod dot;
pub mod parser;
mod session;

pub use crate::line::InputError;
pub use dot::DotStuffer;
pub use session::{
    LoginOutcome, MaildropError, POP3_IMPLEMENTATION, Pop3Config, Pop3Event, Pop3Handoff,
    Pop3Session, RetrieveError,
};
