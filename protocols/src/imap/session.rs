//! The IMAP server session: a state machine over bytes, quinn-proto style.
//!
//! The engine feeds what it reads to [`ImapSession::handle_input`], writes what
//! [`ImapSession::poll_output`] returns and acts on [`ImapSession::poll_event`].
//! No sockets, no clock, no threads: the session is a value, `!Send` like
//! everything bound to a shard. To move it to the owning shard after login it is
//! turned into an [`ImapHandoff`] (which is `Send`) and rebuilt there.

use std::collections::VecDeque;
use std::marker::PhantomData;

use crate::imap::framing::{BufferFull, Frame, Framer, Literal};
use crate::imap::parser::{Command, ParseError, TaggedCommand, parse_command};
use crate::imap::types::{Secret, Tag};
use crate::limits::{
    IMAP_AUTH_FAILURES_MAX, IMAP_BAD_COMMANDS_MAX, IMAP_COMMAND_BYTES_MAX,
    IMAP_INPUT_BUFFER_BYTES_MAX, IMAP_LINE_BYTES_MAX, IMAP_LITERAL_BYTES_MAX,
    IMAP_PREAUTH_LITERAL_BYTES_MAX,
};

/// Our name in `ID` answers.
pub const SERVER_PRODUCT_NAME: &str = "msgstore";

/// Commands of IMAP4rev1/rev2 and the extensions we will serve that need the
/// authenticated (or selected) state; answered `NO [CANNOT]` until implemented.
const LATER_COMMANDS: &[&str] = &[
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "NAMESPACE",
    "STATUS",
    "APPEND",
    "IDLE",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "SORT",
    "THREAD",
    "GETQUOTA",
    "GETQUOTAROOT",
    "SETQUOTA",
    "GETACL",
    "SETACL",
    "DELETEACL",
    "LISTRIGHTS",
    "MYRIGHTS",
    "COMPRESS",
];

/// What a session needs to know about its listener. Small, `Clone` and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// Advertised before login. `LOGINDISABLED` is added when `login_allowed` is false.
    pub capabilities: Vec<String>,
    /// Advertised after login (also in the `LOGIN` OK response).
    pub capabilities_authenticated: Vec<String>,
    /// Whether `LOGIN` may be used (false on a plaintext connection that requires TLS).
    pub login_allowed: bool,
    /// Host name shown in the greeting.
    pub server_name: String,
    /// Whether `STARTTLS` is offered (a plaintext listener with a certificate).
    /// The session advertises it before login until TLS is on.
    pub starttls_available: bool,
}

impl Default for ImapConfig {
    fn default() -> ImapConfig {
        let capabilities: Vec<String> = ["IMAP4rev1", "LITERAL+", "ID", "ENABLE"]
            .map(String::from)
            .into();
        ImapConfig {
            capabilities_authenticated: capabilities.clone(),
            capabilities,
            login_allowed: true,
            server_name: SERVER_PRODUCT_NAME.to_owned(),
            starttls_available: false,
        }
    }
}

/// Something only the engine can do.
#[derive(Debug, PartialEq, Eq)]
pub enum ImapEvent {
    /// Check these credentials and answer with [`ImapSession::login_result`].
    /// No further input is parsed until then.
    Login {
        tag: String,
        username: Vec<u8>,
        password: Secret,
    },
    /// Write the output polled so far in plaintext, then start a TLS server
    /// handshake on the connection and call [`ImapSession::tls_started`]. Input
    /// that arrived with the `STARTTLS` command has been thrown away (RFC 3501
    /// §6.2.1: plaintext pipelined behind it would be a command injection).
    StartTls,
    /// Close the connection once the output polled so far is written.
    Close,
}

/// The engine's answer to [`ImapEvent::Login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Authenticated as `user` (the canonical account name).
    Ok { user: String },
    /// Wrong user name or password (which one is never told).
    Failed,
    /// The account exists but cannot log in now (backend down, account moving).
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The client sent more than the session may hold unparsed. A `* BYE` is
    /// queued and [`ImapEvent::Close`] follows.
    #[error(transparent)]
    BufferFull(#[from] BufferFull),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    NotAuthenticated,
    Authenticated {
        user: String,
    },
    /// Close was queued; input is ignored.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    No,
    Bad,
}

/// All of a session's state. `Send`; wrapped by [`ImapSession`] (not `Send`)
/// and [`ImapHandoff`] (`Send`).
#[derive(Debug)]
struct Core {
    config: ImapConfig,
    state: State,
    framer: Framer,
    output: Vec<u8>,
    events: VecDeque<ImapEvent>,
    /// Tag of the `LOGIN` whose event is unanswered; parsing waits while set.
    login_pending: Option<Tag>,
    /// Set between `STARTTLS`'s OK and `tls_started`; parsing waits meanwhile.
    tls_pending: bool,
    /// TLS is on (implicitly or after STARTTLS).
    tls_active: bool,
    bad_commands: u32,
    auth_failures: u32,
}

/// One IMAP server connection's protocol state. Not `Send`: it belongs to the
/// shard serving it; see [`ImapSession::into_handoff`].
#[derive(Debug)]
pub struct ImapSession {
    core: Core,
    _not_send: PhantomData<*const ()>,
}

/// A session in transit to another shard: everything it holds (state, the
/// pending login's tag, unparsed input, unpolled output and events).
#[derive(Debug)]
pub struct ImapHandoff {
    core: Core,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<ImapHandoff>();
    assert_send::<ImapConfig>();
};

impl ImapSession {
    /// A new connection; the greeting is queued as output.
    pub fn new(config: ImapConfig) -> ImapSession {
        let mut core = Core {
            config,
            state: State::NotAuthenticated,
            framer: Framer::new(IMAP_LINE_BYTES_MAX, IMAP_INPUT_BUFFER_BYTES_MAX),
            output: Vec::new(),
            events: VecDeque::new(),
            login_pending: None,
            tls_pending: false,
            tls_active: false,
            bad_commands: 0,
            auth_failures: 0,
        };
        let greeting = format!(
            "OK [CAPABILITY {}] {} ready.",
            core.capabilities(),
            core.config.server_name
        );
        core.untagged(&greeting);
        ImapSession::wrap(core)
    }

    fn wrap(core: Core) -> ImapSession {
        ImapSession {
            core,
            _not_send: PhantomData,
        }
    }

    /// Takes bytes read from the client and answers every complete command,
    /// stopping while a [`ImapEvent::Login`] is unanswered (later bytes stay
    /// buffered). Fails only when the unparsed input would pass
    /// `IMAP_INPUT_BUFFER_BYTES_MAX`; the session then says `* BYE` and closes.
    /// Input after close is ignored.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), InputError> {
        self.core.handle_input(data)
    }

    /// All output queued so far, in order, as one buffer to write.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.core.output.is_empty()).then(|| std::mem::take(&mut self.core.output))
    }

    /// The next thing the engine must do.
    pub fn poll_event(&mut self) -> Option<ImapEvent> {
        self.core.events.pop_front()
    }

    /// Answers the outstanding [`ImapEvent::Login`] and resumes parsing the
    /// buffered input. Calling it with no login outstanding is an engine bug
    /// (ignored in release builds).
    pub fn login_result(&mut self, outcome: LoginOutcome) {
        self.core.login_result(outcome);
    }

    /// The engine has finished (or at least started) the TLS handshake that
    /// [`ImapEvent::StartTls`] asked for; parsing resumes and `STARTTLS` is no
    /// longer offered.
    pub fn tls_started(&mut self) {
        debug_assert!(self.core.tls_pending, "tls_started without StartTls");
        self.core.tls_pending = false;
        self.core.tls_active = true;
        // LOGIN may have been refused only because the line was plaintext.
        self.core.config.login_allowed = true;
        self.core.process();
    }

    /// Marks a session on an implicit-TLS listener (IMAPS) before its greeting
    /// matters: `STARTTLS` is then never offered.
    pub fn set_tls_active(&mut self) {
        self.core.tls_active = true;
    }

    /// How many bytes `handle_input` can take now without failing: an engine
    /// reads at most this much (and nothing while a login is unanswered).
    pub fn input_room(&self) -> usize {
        self.core.framer.room()
    }

    /// The user, once logged in.
    pub fn user(&self) -> Option<&str> {
        match &self.core.state {
            State::Authenticated { user } => Some(user),
            _ => None,
        }
    }

    /// True once [`ImapEvent::Close`] has been queued.
    pub fn is_closed(&self) -> bool {
        self.core.state == State::Closed
    }

    /// Packs the whole session to be sent to another thread.
    pub fn into_handoff(self) -> ImapHandoff {
        ImapHandoff { core: self.core }
    }

    /// Rebuilds a session on the thread that received the hand-off.
    pub fn from_handoff(handoff: ImapHandoff) -> ImapSession {
        ImapSession::wrap(handoff.core)
    }
}

impl Core {
    fn handle_input(&mut self, mut data: &[u8]) -> Result<(), InputError> {
        if self.tls_pending {
            // Plaintext that arrives before the TLS switch is an injection attempt.
            return Ok(());
        }
        loop {
            if self.state == State::Closed {
                return Ok(());
            }
            let (now, later) = data.split_at(data.len().min(self.framer.room()));
            self.framer.push(now)?;
            data = later;
            self.process();
            if data.is_empty() {
                return Ok(());
            }
            if self.framer.room() == 0 && self.state != State::Closed {
                let error = BufferFull {
                    buffered_bytes: self.framer.buffered_len(),
                    pushed_bytes: data.len(),
                };
                self.bye("[TOOBIG] Too much input without waiting for answers");
                return Err(error.into());
            }
        }
    }

    /// Answers complete commands until input runs out, a login waits, or close.
    fn process(&mut self) {
        while self.login_pending.is_none() && !self.tls_pending && self.state != State::Closed {
            match self.framer.next_frame() {
                Frame::NeedMore => break,
                Frame::Complete => {
                    let parsed = parse_command(self.framer.frame());
                    self.framer.consume_frame();
                    self.dispatch(parsed);
                }
                Frame::LiteralAnnounced { tag, literal } => {
                    self.decide_literal(tag.as_ref(), literal)
                }
                Frame::TooLong { tag } => {
                    self.respond(tag.as_ref(), Status::Bad, "Command line too long")
                }
            }
        }
    }

    fn decide_literal(&mut self, tag: Option<&Tag>, literal: Literal) {
        let literal_bytes_max = match self.state {
            State::Authenticated { .. } => IMAP_LITERAL_BYTES_MAX,
            _ => IMAP_PREAUTH_LITERAL_BYTES_MAX,
        };
        let command_bytes = (self.framer.frame_len() as u64).saturating_add(literal.len);
        if literal.len <= literal_bytes_max && command_bytes <= IMAP_COMMAND_BYTES_MAX as u64 {
            if literal.sync {
                self.output
                    .extend_from_slice(b"+ Ready for literal data\r\n");
            }
            self.framer.accept_literal();
        } else {
            self.framer.reject_literal();
            self.respond(tag, Status::Bad, "[TOOBIG] Literal too big");
        }
    }

    fn dispatch(&mut self, parsed: Result<TaggedCommand, ParseError>) {
        let TaggedCommand { tag, command } = match parsed {
            Ok(command) => command,
            Err(error) => {
                return self.respond(error.tag.as_ref(), Status::Bad, error.kind.message());
            }
        };
        let authenticated = matches!(self.state, State::Authenticated { .. });
        match command {
            Command::Capability => {
                let line = format!("CAPABILITY {}", self.capabilities());
                self.untagged(&line);
                self.respond(Some(&tag), Status::Ok, "CAPABILITY completed");
            }
            Command::Noop => self.respond(Some(&tag), Status::Ok, "NOOP completed"),
            Command::Logout => {
                self.untagged("BYE Logging out");
                self.respond(Some(&tag), Status::Ok, "LOGOUT completed");
                self.close();
            }
            Command::Id { .. } => {
                self.untagged(&format!("ID (\"name\" \"{SERVER_PRODUCT_NAME}\")"));
                self.respond(Some(&tag), Status::Ok, "ID completed");
            }
            Command::Login { .. } | Command::Authenticate { .. } | Command::StartTls
                if authenticated =>
            {
                self.respond(Some(&tag), Status::Bad, "Already authenticated");
            }
            Command::Login { username, password } => {
                self.start_login(tag, username.into_bytes(), password)
            }
            Command::StartTls if self.config.starttls_available && !self.tls_active => {
                self.respond(Some(&tag), Status::Ok, "Begin TLS negotiation now");
                self.framer.discard_buffered();
                self.tls_pending = true;
                self.events.push_back(ImapEvent::StartTls);
            }
            Command::StartTls => self.respond(Some(&tag), Status::Bad, "STARTTLS is not available"),
            Command::Authenticate { .. } => {
                self.respond(
                    Some(&tag),
                    Status::No,
                    "[CANNOT] AUTHENTICATE is not available yet",
                );
            }
            Command::Enable { .. } if authenticated => {
                // No ENABLE-able extension is implemented yet, so none is enabled.
                self.untagged("ENABLED");
                self.respond(Some(&tag), Status::Ok, "ENABLE completed");
            }
            Command::Enable { .. } => self.respond(Some(&tag), Status::Bad, "Log in first"),
            Command::Other { name } if LATER_COMMANDS.contains(&name.as_str()) => {
                if authenticated {
                    let text = format!("[CANNOT] {name} is not available yet");
                    self.respond(Some(&tag), Status::No, &text);
                } else {
                    self.respond(Some(&tag), Status::Bad, "Log in first");
                }
            }
            Command::Other { .. } => self.respond(Some(&tag), Status::Bad, "Unknown command"),
        }
    }

    fn start_login(&mut self, tag: Tag, username: Vec<u8>, password: Secret) {
        if !self.config.login_allowed {
            return self.respond(
                Some(&tag),
                Status::No,
                "[PRIVACYREQUIRED] LOGIN is not allowed here",
            );
        }
        self.bad_commands = 0;
        self.events.push_back(ImapEvent::Login {
            tag: tag.as_str().to_owned(),
            username,
            password,
        });
        self.login_pending = Some(tag);
    }

    fn login_result(&mut self, outcome: LoginOutcome) {
        debug_assert!(
            self.login_pending.is_some(),
            "login_result without a Login event"
        );
        let Some(tag) = self.login_pending.take() else {
            return;
        };
        if self.state == State::Closed {
            return;
        }
        match outcome {
            LoginOutcome::Ok { user } => {
                self.state = State::Authenticated { user };
                let text = format!("[CAPABILITY {}] Logged in", self.capabilities());
                self.respond(Some(&tag), Status::Ok, &text);
            }
            LoginOutcome::Failed => {
                self.respond(
                    Some(&tag),
                    Status::No,
                    "[AUTHENTICATIONFAILED] Authentication failed.",
                );
                self.auth_failures += 1;
                if self.auth_failures >= IMAP_AUTH_FAILURES_MAX {
                    self.bye("Too many authentication failures");
                }
            }
            LoginOutcome::Unavailable => self.respond(
                Some(&tag),
                Status::No,
                "[UNAVAILABLE] Authentication is not available now, try again later.",
            ),
        }
        self.process();
    }

    /// The capability list for the current state.
    fn capabilities(&self) -> String {
        match self.state {
            State::Authenticated { .. } => self.config.capabilities_authenticated.join(" "),
            _ => {
                let mut list = self.config.capabilities.join(" ");
                if self.config.starttls_available && !self.tls_active {
                    list.push_str(" STARTTLS");
                }
                let has_logindisabled = self
                    .config
                    .capabilities
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("LOGINDISABLED"));
                if !self.config.login_allowed && !has_logindisabled {
                    list.push_str(" LOGINDISABLED");
                }
                list
            }
        }
    }

    fn untagged(&mut self, text: &str) {
        self.output.extend_from_slice(b"* ");
        self.text(text);
    }

    /// A tagged (or, without a valid tag, untagged) completion. Counts BADs.
    fn respond(&mut self, tag: Option<&Tag>, status: Status, text: &str) {
        let status_text = match status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        };
        let tag = tag.map_or("*", Tag::as_str);
        self.text(&format!("{tag} {status_text} {text}"));
        if status != Status::Bad {
            self.bad_commands = 0;
            return;
        }
        self.bad_commands += 1;
        if self.bad_commands >= IMAP_BAD_COMMANDS_MAX {
            self.bye("Too many invalid commands");
        }
    }

    /// Writes one response line. Control characters (from configuration) become
    /// spaces, so no text can end a line early.
    fn text(&mut self, text: &str) {
        self.output.extend(
            text.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
        self.output.extend_from_slice(b"\r\n");
    }

    fn bye(&mut self, text: &str) {
        if self.state != State::Closed {
            self.untagged(&format!("BYE {text}"));
            self.close();
        }
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.events.push_back(ImapEvent::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(session: &mut ImapSession) -> String {
        String::from_utf8_lossy(&session.poll_output().unwrap_or_default()).into_owned()
    }

    #[test]
    fn greeting_lists_capabilities_and_logindisabled() {
        let mut session = ImapSession::new(ImapConfig {
            login_allowed: false,
            server_name: "mx\r\n1".into(),
            ..ImapConfig::default()
        });
        assert_eq!(
            output(&mut session),
            "* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE LOGINDISABLED] mx  1 ready.\r\n"
        );
        assert_eq!(session.poll_output(), None);
    }

    #[test]
    fn overflow_while_login_pending_says_bye_and_closes() {
        let mut session = ImapSession::new(ImapConfig::default());
        session.handle_input(b"a LOGIN bob pw\r\n").expect("fits");
        assert!(matches!(
            session.poll_event(),
            Some(ImapEvent::Login { .. })
        ));
        let flood = vec![b'x'; IMAP_INPUT_BUFFER_BYTES_MAX + 1];
        assert!(matches!(
            session.handle_input(&flood),
            Err(InputError::BufferFull(_))
        ));
        assert!(
            output(&mut session)
                .ends_with("* BYE [TOOBIG] Too much input without waiting for answers\r\n")
        );
        assert_eq!(session.poll_event(), Some(ImapEvent::Close));
        session.login_result(LoginOutcome::Ok { user: "bob".into() });
        assert_eq!(session.poll_output(), None);
        assert!(session.handle_input(b"b NOOP\r\n").is_ok());
        assert_eq!(session.poll_output(), None);
    }

    #[test]
    fn large_input_is_taken_in_pieces_when_it_can_be_answered() {
        let mut session = ImapSession::new(ImapConfig::default());
        output(&mut session);
        let many = b"a NOOP\r\n".repeat(IMAP_INPUT_BUFFER_BYTES_MAX / 8 + 100);
        session.handle_input(&many).expect("answered as it goes");
        assert_eq!(
            output(&mut session)
                .matches("a OK NOOP completed\r\n")
                .count(),
            many.len() / 8
        );
    }

    #[test]
    fn auth_failures_end_the_connection() {
        let mut session = ImapSession::new(ImapConfig::default());
        for _ in 0..IMAP_AUTH_FAILURES_MAX {
            session.handle_input(b"a LOGIN bob pw\r\n").expect("fits");
            assert!(matches!(
                session.poll_event(),
                Some(ImapEvent::Login { .. })
            ));
            session.login_result(LoginOutcome::Failed);
        }
        assert!(output(&mut session).ends_with("* BYE Too many authentication failures\r\n"));
        assert_eq!(session.poll_event(), Some(ImapEvent::Close));
    }

    #[test]
    fn login_event_password_is_redacted() {
        let mut session = ImapSession::new(ImapConfig::default());
        session
            .handle_input(b"a LOGIN bob hunter2\r\n")
            .expect("fits");
        let event = session.poll_event().expect("login event");
        assert!(!format!("{event:?}").contains("hunter2"));
    }
}
