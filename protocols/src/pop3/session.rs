//! The POP3 server session: a state machine over bytes, quinn-proto style.
//!
//! The engine feeds what it reads to [`Pop3Session::handle_input`], writes what
//! [`Pop3Session::poll_output`] returns and acts on [`Pop3Session::poll_event`].
//! Commands are answered in order (PIPELINING, RFC 2449); while an event waits
//! for its answer no further input is parsed. The session is `!Send`; after
//! login it travels to the owning shard as a [`Pop3Handoff`].

use std::collections::VecDeque;
use std::marker::PhantomData;

use base64::Engine as _;

use crate::limits::{
    POP3_AUTH_FAILURES_MAX, POP3_ERRORS_MAX, POP3_INPUT_BUFFER_BYTES_MAX, POP3_LINE_BYTES_MAX,
    POP3_SASL_LINE_BYTES_MAX, POP3_UIDL_BYTES_MAX,
};
use crate::line::{InputError, Line, LineBuffer};
use crate::pop3::parser::{
    Command, MessageNumber, ParseError, decode_sasl, keyword, parse_command,
};
use crate::secret::Secret;

/// Our name in `CAPA IMPLEMENTATION`.
pub const POP3_IMPLEMENTATION: &str = "msgstore";

/// What a session needs to know about its listener. `Clone` and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Config {
    /// Host name in the greeting and sign-off.
    pub server_name: String,
    /// The APOP timestamp `<pid.nonce@host>`, unique per connection (RFC 1939
    /// §7); `None` disables APOP. A value not of that form is not offered.
    pub apop_timestamp: Option<String>,
    /// SASL mechanisms offered (`PLAIN`, `LOGIN`, `CRAM-MD5`, `SCRAM-SHA-256`).
    pub sasl_mechanisms: Vec<String>,
    /// Whether `STLS` is offered (a plaintext listener with a certificate).
    pub stls_available: bool,
    /// Whether passwords may cross in clear (`USER`/`PASS`, `AUTH PLAIN`,
    /// `AUTH LOGIN`) before TLS is on. TLS always allows them.
    pub plaintext_auth_allowed: bool,
}

impl Default for Pop3Config {
    fn default() -> Pop3Config {
        Pop3Config {
            server_name: "localhost".to_owned(),
            apop_timestamp: None,
            sasl_mechanisms: vec!["PLAIN".to_owned()],
            stls_available: false,
            plaintext_auth_allowed: true,
        }
    }
}

/// Something only the engine can do.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop3Event {
    /// `USER`/`PASS`: check and answer with [`Pop3Session::login_result`].
    Login { user: String, password: Secret },
    /// `APOP`: `digest` (lower-case hex) must be MD5(`timestamp` + password);
    /// answer with [`Pop3Session::login_result`].
    LoginApop {
        user: String,
        digest: String,
        timestamp: String,
    },
    /// `AUTH`: start a SASL exchange (`initial` already base64-decoded; an
    /// empty one was sent as `=`). Answer with [`Pop3Session::sasl_challenge`]
    /// or [`Pop3Session::sasl_done`].
    SaslStart {
        mechanism: String,
        initial: Option<Secret>,
    },
    /// The client's answer to the last challenge, base64-decoded.
    SaslResponse { response: Secret },
    /// The client cancelled (`*`) or sent garbage: drop the SASL exchange. No answer.
    SaslAborted,
    /// Authenticated (possibly after a hand-off): lock and list the maildrop
    /// (INBOX) of `user`, then call [`Pop3Session::maildrop_opened`] or
    /// [`Pop3Session::maildrop_failed`].
    OpenMaildrop { user: String },
    /// Write the output polled so far in plaintext, start a TLS server
    /// handshake, then call [`Pop3Session::tls_started`]. Input that arrived
    /// with or after `STLS` has been thrown away (RFC 2595 §4: plaintext
    /// pipelined behind it would be a command injection).
    StartTls,
    /// `RETR`/`TOP` of `msg` (0-based index into the listing given to
    /// `maildrop_opened`): call [`Pop3Session::retrieve_started`], write the
    /// polled `+OK` line, stream the message through a
    /// [`DotStuffer`](crate::pop3::DotStuffer) (`DotStuffer::top(n)` when
    /// `top_lines` is `Some(n)`), then call [`Pop3Session::retrieve_done`]. If
    /// the message cannot be read, call [`Pop3Session::retrieve_failed`] instead.
    Retrieve { msg: usize, top_lines: Option<u32> },
    /// `QUIT` in TRANSACTION: remove `deleted` (0-based indices) durably, unlock
    /// the maildrop, then call [`Pop3Session::update_done`]. Sent also when
    /// nothing is deleted (the lock must go). A connection that ends without
    /// this event deletes nothing.
    Update { deleted: Vec<usize> },
    /// Close the connection once the output polled so far is written (and
    /// unlock the maildrop if it is open: nothing is deleted).
    Close,
}

/// The engine's answer to a login (`Login`, `LoginApop`, or the end of SASL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Authenticated as `user` (canonical). [`Pop3Event::OpenMaildrop`] follows.
    Ok { user: String },
    /// Wrong user name or password (which one is never told): `-ERR [AUTH]`.
    Failed,
    /// Right password, but the account may not use POP3 now (no POP flag,
    /// disabled): `-ERR [AUTH]`, counted like a failure.
    NotPermitted,
    /// Authentication cannot be done now (backend down): `-ERR [SYS/TEMP]`.
    Unavailable,
}

/// Why the maildrop could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaildropError {
    /// Another POP3 session holds it: `-ERR [IN-USE]` (RFC 2449 §8.1.1).
    InUse,
    /// Try again later: `-ERR [SYS/TEMP]` (RFC 3206).
    Temporary,
    /// It will not work without an administrator: `-ERR [SYS/PERM]`.
    Permanent,
}

/// Why a message could not be retrieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrieveError {
    /// Expunged meanwhile (by an IMAP session).
    Gone,
    /// An I/O error worth a retry: `-ERR [SYS/TEMP]`.
    Temporary,
}

/// What an outstanding event waits for; input is parsed only at `None` and
/// `SaslLine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    None,
    Login,
    /// `SaslStart`/`SaslResponse` is with the engine.
    Sasl,
    /// A challenge went out; the next line is the client's response.
    SaslLine,
    Maildrop,
    Tls,
    Retrieve {
        msg: usize,
        top: bool,
        started: bool,
    },
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    size_bytes: u64,
    uidl: String,
    deleted: bool,
}

#[derive(Debug)]
enum State {
    Authorization {
        /// From `USER`, waiting for `PASS`.
        user: Option<String>,
    },
    Transaction {
        user: String,
        messages: Vec<Message>,
    },
    Closed,
}

/// All of a session's state. `Send`; wrapped by [`Pop3Session`] (not `Send`)
/// and [`Pop3Handoff`] (`Send`).
#[derive(Debug)]
struct Core {
    config: Pop3Config,
    state: State,
    wait: Wait,
    /// The user being authenticated, between `OpenMaildrop` and its answer.
    authenticated: Option<String>,
    tls_active: bool,
    input: LineBuffer,
    output: Vec<u8>,
    events: VecDeque<Pop3Event>,
    errors: u32,
    auth_failures: u32,
}

/// One POP3 server connection. Not `Send`: it belongs to the shard serving
/// it; see [`Pop3Session::into_handoff`].
#[derive(Debug)]
pub struct Pop3Session {
    core: Core,
    _not_send: PhantomData<*const ()>,
}

/// A session in transit to another shard: everything it holds (state, what
/// it waits for, unparsed input, unpolled output and events).
#[derive(Debug)]
pub struct Pop3Handoff {
    core: Core,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Pop3Handoff>();
    assert_send::<Pop3Config>();
};

impl Pop3Session {
    /// A new connection; the greeting (with the APOP timestamp) is queued.
    pub fn new(mut config: Pop3Config) -> Pop3Session {
        if let Some(timestamp) = &config.apop_timestamp
            && !valid_timestamp(timestamp)
        {
            debug_assert!(false, "APOP timestamp {timestamp:?} is not <…@…>");
            config.apop_timestamp = None;
        }
        let mut core = Core {
            config,
            state: State::Authorization { user: None },
            wait: Wait::None,
            authenticated: None,
            tls_active: false,
            input: LineBuffer::new(POP3_INPUT_BUFFER_BYTES_MAX),
            output: Vec::new(),
            events: VecDeque::new(),
            errors: 0,
            auth_failures: 0,
        };
        let mut greeting = format!("{} POP3 msgstore ready", core.config.server_name);
        if let Some(timestamp) = &core.config.apop_timestamp {
            greeting = format!("{greeting} {timestamp}");
        }
        core.ok(&greeting);
        Pop3Session::wrap(core)
    }

    fn wrap(core: Core) -> Pop3Session {
        Pop3Session {
            core,
            _not_send: PhantomData,
        }
    }

    /// Takes bytes read from the client and answers every complete command,
    /// stopping while an event waits for its answer (later bytes stay
    /// buffered). Fails only when the unparsed input would pass
    /// `POP3_INPUT_BUFFER_BYTES_MAX`; the session then says `-ERR` and closes.
    /// Input after close, or between `STLS` and `tls_started`, is ignored.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), InputError> {
        self.core.handle_input(data)
    }

    /// All output queued so far, in order, as one buffer to write.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.core.output.is_empty()).then(|| std::mem::take(&mut self.core.output))
    }

    /// The next thing the engine must do.
    pub fn poll_event(&mut self) -> Option<Pop3Event> {
        self.core.events.pop_front()
    }

    /// Answers [`Pop3Event::Login`] or [`Pop3Event::LoginApop`], or ends a SASL
    /// exchange like [`Pop3Session::sasl_done`] (so a session handed to the owning
    /// shard after a successful exchange is answered the same way as after PASS).
    pub fn login_result(&mut self, outcome: LoginOutcome) {
        if self.core.wait == Wait::Sasl || self.core.expect(Wait::Login) {
            self.core.login_outcome(outcome);
        }
    }

    /// The next SASL challenge (raw bytes; sent base64-encoded as `+ …`).
    pub fn sasl_challenge(&mut self, challenge: &[u8]) {
        if self.core.expect(Wait::Sasl) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(challenge);
            self.core
                .output
                .extend_from_slice(format!("+ {encoded}\r\n").as_bytes());
            self.core.wait = Wait::SaslLine;
            self.core.process();
        }
    }

    /// Ends the SASL exchange. To send server data with success (SCRAM's
    /// server-final), send it as a challenge first and call this after the
    /// client's (empty) response.
    pub fn sasl_done(&mut self, outcome: LoginOutcome) {
        if self.core.expect(Wait::Sasl) {
            self.core.login_outcome(outcome);
        }
    }

    /// Answers [`Pop3Event::OpenMaildrop`]: the maildrop is locked and holds
    /// these messages, `(size in bytes, UIDL)` in order. UIDLs must be 1–70
    /// characters 0x21–0x7E (RFC 1939 §7).
    pub fn maildrop_opened(&mut self, listing: Vec<(u64, String)>) {
        if self.core.expect(Wait::Maildrop) {
            self.core.maildrop_opened(listing);
        }
    }

    /// Answers [`Pop3Event::OpenMaildrop`] with a failure; the session stays
    /// in the AUTHORIZATION state.
    pub fn maildrop_failed(&mut self, error: MaildropError) {
        if self.core.expect(Wait::Maildrop) {
            self.core.authenticated = None;
            let text = match error {
                MaildropError::InUse => "[IN-USE] Maildrop is locked by another session",
                MaildropError::Temporary => "[SYS/TEMP] Maildrop is not available now, try later",
                MaildropError::Permanent => "[SYS/PERM] Maildrop cannot be opened",
            };
            self.core.err(text);
            self.core.resume();
        }
    }

    /// The TLS handshake that [`Pop3Event::StartTls`] asked for is under way;
    /// parsing resumes and `STLS` is no longer offered.
    pub fn tls_started(&mut self) {
        if self.core.expect(Wait::Tls) {
            self.core.tls_active = true;
            self.core.resume();
        }
    }

    /// Marks a session on an implicit-TLS listener (POP3S): `STLS` is then
    /// never offered and plaintext passwords are allowed.
    pub fn set_tls_active(&mut self) {
        self.core.tls_active = true;
    }

    /// The message of [`Pop3Event::Retrieve`] is readable: queues the `+OK`
    /// line that precedes it.
    pub fn retrieve_started(&mut self) {
        let Wait::Retrieve {
            msg,
            top,
            started: false,
        } = self.core.wait
        else {
            debug_assert!(self.is_closed(), "retrieve_started without Retrieve");
            return;
        };
        let text = if top {
            "Top of message follows".to_owned()
        } else {
            let size = self.core.message(msg).map_or(0, |m| m.size_bytes);
            format!("{size} octets")
        };
        self.core.ok(&text);
        self.core.wait = Wait::Retrieve {
            msg,
            top,
            started: true,
        };
    }

    /// The message and its final `"." CRLF` are written; parsing resumes. If
    /// streaming fails half-way, close the connection instead: the client
    /// cannot tell a cut message from a whole one otherwise.
    pub fn retrieve_done(&mut self) {
        if matches!(self.core.wait, Wait::Retrieve { started: true, .. }) {
            self.core.resume();
        } else {
            debug_assert!(self.is_closed(), "retrieve_done before retrieve_started");
        }
    }

    /// The message of [`Pop3Event::Retrieve`] cannot be read (before
    /// `retrieve_started`).
    pub fn retrieve_failed(&mut self, error: RetrieveError) {
        let Wait::Retrieve {
            msg,
            started: false,
            ..
        } = self.core.wait
        else {
            debug_assert!(self.is_closed(), "retrieve_failed without Retrieve");
            return;
        };
        let text = match error {
            RetrieveError::Gone => format!("Message {} no longer exists", msg + 1),
            RetrieveError::Temporary => "[SYS/TEMP] Message cannot be read now".to_owned(),
        };
        self.core.err(&text);
        self.core.resume();
    }

    /// Answers [`Pop3Event::Update`]: `true` when the deletions are durable.
    /// The session signs off and closes either way.
    pub fn update_done(&mut self, ok: bool) {
        if !self.core.expect(Wait::Update) {
            return;
        }
        if ok {
            let left = match &self.core.state {
                State::Transaction { messages, .. } => {
                    messages.iter().filter(|m| !m.deleted).count()
                }
                _ => 0,
            };
            let text = format!(
                "{} signing off ({left} messages left)",
                self.core.config.server_name
            );
            self.core.ok(&text);
        } else {
            self.core
                .err("[SYS/TEMP] Some deleted messages were not removed");
        }
        self.core.close();
    }

    /// How many bytes `handle_input` can take now without failing.
    pub fn input_room(&self) -> usize {
        match (&self.core.state, self.core.wait) {
            (State::Closed, _) | (_, Wait::Tls) => 0,
            _ => self.core.input.room(),
        }
    }

    /// The user, once the maildrop is open.
    pub fn user(&self) -> Option<&str> {
        match &self.core.state {
            State::Transaction { user, .. } => Some(user),
            _ => None,
        }
    }

    /// True once [`Pop3Event::Close`] has been queued.
    pub fn is_closed(&self) -> bool {
        matches!(self.core.state, State::Closed)
    }

    /// Packs the whole session to be sent to another thread.
    pub fn into_handoff(self) -> Pop3Handoff {
        Pop3Handoff { core: self.core }
    }

    /// Rebuilds a session on the thread that received the hand-off.
    pub fn from_handoff(handoff: Pop3Handoff) -> Pop3Session {
        Pop3Session::wrap(handoff.core)
    }
}

/// `<` printable-without-space `@` … `>`, as RFC 1939 §7 shows (a msg-id).
fn valid_timestamp(timestamp: &str) -> bool {
    timestamp.len() <= 128
        && timestamp.starts_with('<')
        && timestamp.ends_with('>')
        && timestamp.contains('@')
        && timestamp.bytes().all(|b| b.is_ascii_graphic())
}

impl Core {
    fn handle_input(&mut self, mut data: &[u8]) -> Result<(), InputError> {
        loop {
            if matches!(self.state, State::Closed) || self.wait == Wait::Tls {
                // Plaintext after STLS and before the switch is an injection attempt.
                return Ok(());
            }
            let (now, later) = data.split_at(data.len().min(self.input.room()));
            self.input.push(now);
            data = later;
            self.process();
            if data.is_empty() {
                return Ok(());
            }
            if self.input.room() == 0 && !matches!(self.state, State::Closed) {
                let error = InputError {
                    buffered_bytes: self.input.len(),
                    offered_bytes: data.len(),
                };
                self.err("Too much pipelined input, closing connection");
                self.close();
                return Err(error);
            }
        }
    }

    /// Checks that the engine answers what is outstanding; an answer to
    /// nothing is an engine bug (ignored), except after close.
    fn expect(&mut self, wait: Wait) -> bool {
        let matched = self.wait == wait && !matches!(self.state, State::Closed);
        debug_assert!(
            matched || matches!(self.state, State::Closed),
            "answer for {wait:?} while waiting for {:?}",
            self.wait
        );
        matched
    }

    /// Nothing outstanding any more: back to parsing.
    fn resume(&mut self) {
        self.wait = Wait::None;
        self.process();
    }

    fn process(&mut self) {
        loop {
            if matches!(self.state, State::Closed) {
                return;
            }
            let line = match self.wait {
                Wait::None | Wait::SaslLine => self.input.next_line(POP3_SASL_LINE_BYTES_MAX),
                _ => return,
            };
            match line {
                Line::NeedMore => return,
                Line::TooLong => self.too_long(),
                Line::Complete(line) if self.wait == Wait::SaslLine => self.sasl_line(&line),
                Line::Complete(line) => {
                    // RFC 2449 §4: 255 octets for commands; AUTH lines carry SASL data.
                    if line.len() + 2 > POP3_LINE_BYTES_MAX && keyword(&line) != b"AUTH" {
                        self.too_long();
                    } else {
                        self.command(parse_command(&line));
                    }
                }
            }
        }
    }

    fn too_long(&mut self) {
        if self.wait == Wait::SaslLine {
            self.wait = Wait::None;
            self.events.push_back(Pop3Event::SaslAborted);
        }
        self.refuse("Line too long");
    }

    fn sasl_line(&mut self, line: &[u8]) {
        if line == b"*" {
            self.wait = Wait::None;
            self.events.push_back(Pop3Event::SaslAborted);
            return self.err("Authentication cancelled");
        }
        match decode_sasl(line) {
            Ok(response) => {
                self.wait = Wait::Sasl;
                self.events.push_back(Pop3Event::SaslResponse { response });
            }
            Err(error) => {
                self.wait = Wait::None;
                self.events.push_back(Pop3Event::SaslAborted);
                self.refuse(&error.to_string());
            }
        }
    }

    fn command(&mut self, parsed: Result<Command, ParseError>) {
        let command = match parsed {
            Ok(command) => command,
            Err(error) => return self.refuse(&error.to_string()),
        };
        match (&self.state, command) {
            (_, Command::Capa) => self.capa(),
            (_, Command::Quit) => self.quit(),
            (State::Authorization { .. }, command) => self.authorization(command),
            (State::Transaction { .. }, command) => self.transaction(command),
            (State::Closed, _) => {}
        }
    }

    fn authorization(&mut self, command: Command) {
        match command {
            Command::User(name) => {
                if !self.plaintext_allowed() {
                    return self.refuse(
                        "[AUTH] Plaintext authentication is not allowed without TLS (use STLS)",
                    );
                }
                self.state = State::Authorization { user: Some(name) };
                self.ok("Send PASS");
            }
            Command::Pass(password) => {
                let State::Authorization { user } = &mut self.state else {
                    return;
                };
                let Some(user) = user.take() else {
                    return self.refuse("Send USER first");
                };
                self.wait = Wait::Login;
                self.events.push_back(Pop3Event::Login { user, password });
            }
            Command::Apop { user, digest } => {
                let Some(timestamp) = self.config.apop_timestamp.clone() else {
                    return self.refuse("APOP is not available");
                };
                self.wait = Wait::Login;
                self.events.push_back(Pop3Event::LoginApop {
                    user,
                    digest,
                    timestamp,
                });
            }
            Command::AuthList => {
                let mut text = "+OK Mechanisms follow\r\n".to_owned();
                for mechanism in self.mechanisms() {
                    text.push_str(&format!("{mechanism}\r\n"));
                }
                text.push_str(".\r\n");
                self.output.extend_from_slice(text.as_bytes());
                self.errors = 0;
            }
            Command::Auth { mechanism, initial } => {
                if !self.mechanisms().contains(&mechanism) {
                    return self.refuse("Unsupported authentication mechanism");
                }
                self.wait = Wait::Sasl;
                self.events
                    .push_back(Pop3Event::SaslStart { mechanism, initial });
            }
            Command::Stls if self.config.stls_available && !self.tls_active => {
                self.ok("Begin TLS negotiation");
                self.input.discard_all();
                // RFC 2595 §4: forget what was said in plaintext.
                self.state = State::Authorization { user: None };
                self.wait = Wait::Tls;
                self.events.push_back(Pop3Event::StartTls);
            }
            Command::Stls => self.refuse("STLS is not available"),
            _ => self.refuse("Command not valid in AUTHORIZATION state, log in first"),
        }
    }

    fn login_outcome(&mut self, outcome: LoginOutcome) {
        self.wait = Wait::None;
        match outcome {
            LoginOutcome::Ok { user } => {
                self.wait = Wait::Maildrop;
                self.authenticated = Some(user.clone());
                self.events.push_back(Pop3Event::OpenMaildrop { user });
                return;
            }
            LoginOutcome::Failed => self.auth_failed("[AUTH] Authentication failed"),
            LoginOutcome::NotPermitted => {
                self.auth_failed("[AUTH] POP3 access is not enabled for this account")
            }
            LoginOutcome::Unavailable => {
                self.err("[SYS/TEMP] Authentication is not available now, try later")
            }
        }
        self.process();
    }

    fn auth_failed(&mut self, text: &str) {
        self.err(text);
        self.auth_failures += 1;
        if self.auth_failures >= POP3_AUTH_FAILURES_MAX {
            self.close();
        }
    }

    fn maildrop_opened(&mut self, listing: Vec<(u64, String)>) {
        let user = self.authenticated.take().unwrap_or_default();
        let messages: Vec<Message> = listing
            .into_iter()
            .map(|(size_bytes, uidl)| Message {
                size_bytes,
                uidl: checked_uidl(uidl),
                deleted: false,
            })
            .collect();
        let size: u64 = messages.iter().map(|m| m.size_bytes).sum();
        let text = format!("Maildrop has {} messages ({size} octets)", messages.len());
        self.state = State::Transaction { user, messages };
        self.ok(&text);
        self.resume();
    }

    fn transaction(&mut self, command: Command) {
        match command {
            Command::Stat => {
                let (count, size) = self.totals();
                self.ok(&format!("{count} {size}"));
            }
            Command::List(None) => {
                let (count, size) = self.totals();
                let lines = self.listing(|m| m.size_bytes.to_string());
                self.multiline(&format!("{count} messages ({size} octets)"), &lines);
            }
            Command::List(Some(number)) => {
                if let Some((index, message)) = self.lookup(number) {
                    let text = format!("{} {}", index + 1, message.size_bytes);
                    self.ok(&text);
                }
            }
            Command::Uidl(None) => {
                let lines = self.listing(|m| m.uidl.clone());
                self.multiline("Unique-ID listing follows", &lines);
            }
            Command::Uidl(Some(number)) => {
                if let Some((index, message)) = self.lookup(number) {
                    let text = format!("{} {}", index + 1, message.uidl);
                    self.ok(&text);
                }
            }
            Command::Retr(number) => self.retrieve(number, None),
            Command::Top {
                message,
                body_lines,
            } => self.retrieve(message, Some(body_lines)),
            Command::Dele(number) => {
                if let Some((index, _)) = self.lookup(number) {
                    if let State::Transaction { messages, .. } = &mut self.state {
                        messages[index].deleted = true;
                    }
                    self.ok(&format!("Message {} deleted", index + 1));
                }
            }
            Command::Noop => self.ok("Nothing to do"),
            Command::Rset => {
                if let State::Transaction { messages, .. } = &mut self.state {
                    messages.iter_mut().for_each(|m| m.deleted = false);
                }
                let (count, size) = self.totals();
                self.ok(&format!("Maildrop has {count} messages ({size} octets)"));
            }
            _ => self.refuse("Command not valid in TRANSACTION state"),
        }
    }

    fn retrieve(&mut self, number: MessageNumber, top_lines: Option<u32>) {
        if let Some((msg, _)) = self.lookup(number) {
            self.wait = Wait::Retrieve {
                msg,
                top: top_lines.is_some(),
                started: false,
            };
            self.events
                .push_back(Pop3Event::Retrieve { msg, top_lines });
        }
    }

    /// The message a number names, or `-ERR` (counted) and `None`.
    fn lookup(&mut self, number: MessageNumber) -> Option<(usize, Message)> {
        let State::Transaction { messages, .. } = &self.state else {
            return None;
        };
        let index = (number.0 as usize).checked_sub(1);
        match index.and_then(|i| messages.get(i).map(|m| (i, m))) {
            Some((index, message)) if !message.deleted => Some((index, message.clone())),
            Some((index, _)) => {
                self.refuse(&format!("Message {} is deleted", index + 1));
                None
            }
            None => {
                self.refuse("No such message");
                None
            }
        }
    }

    fn message(&self, index: usize) -> Option<&Message> {
        match &self.state {
            State::Transaction { messages, .. } => messages.get(index),
            _ => None,
        }
    }

    /// Count and size of the messages not marked deleted.
    fn totals(&self) -> (usize, u64) {
        match &self.state {
            State::Transaction { messages, .. } => messages
                .iter()
                .filter(|m| !m.deleted)
                .fold((0, 0), |(n, s), m| (n + 1, s + m.size_bytes)),
            _ => (0, 0),
        }
    }

    /// `number value` lines for the messages not marked deleted.
    fn listing(&self, value: impl Fn(&Message) -> String) -> Vec<String> {
        match &self.state {
            State::Transaction { messages, .. } => messages
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.deleted)
                .map(|(i, m)| format!("{} {}", i + 1, value(m)))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn capa(&mut self) {
        let mut lines = vec!["TOP".to_owned()];
        let authorization = matches!(self.state, State::Authorization { .. });
        if authorization && self.plaintext_allowed() {
            lines.push("USER".to_owned());
        }
        lines.push("UIDL".to_owned());
        let mechanisms = self.mechanisms();
        if authorization && !mechanisms.is_empty() {
            lines.push(format!("SASL {}", mechanisms.join(" ")));
        }
        if authorization && self.config.stls_available && !self.tls_active {
            lines.push("STLS".to_owned());
        }
        lines.extend(
            [
                "RESP-CODES",
                "AUTH-RESP-CODE",
                "PIPELINING",
                &format!("IMPLEMENTATION {POP3_IMPLEMENTATION}"),
            ]
            .map(str::to_owned),
        );
        self.multiline("Capability list follows", &lines);
    }

    fn quit(&mut self) {
        match &self.state {
            State::Transaction { messages, .. } => {
                let deleted = (0..messages.len())
                    .filter(|&i| messages[i].deleted)
                    .collect();
                self.wait = Wait::Update;
                self.events.push_back(Pop3Event::Update { deleted });
            }
            _ => {
                let text = format!("{} signing off", self.config.server_name);
                self.ok(&text);
                self.close();
            }
        }
    }

    fn plaintext_allowed(&self) -> bool {
        self.tls_active || self.config.plaintext_auth_allowed
    }

    /// Mechanisms offered now: PLAIN and LOGIN send the password in clear.
    fn mechanisms(&self) -> Vec<String> {
        let plaintext = self.plaintext_allowed();
        self.config
            .sasl_mechanisms
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .filter(|m| plaintext || (m != "PLAIN" && m != "LOGIN"))
            .collect()
    }

    fn ok(&mut self, text: &str) {
        self.line(&format!("+OK {text}"));
        self.errors = 0;
    }

    /// `-ERR` that is not the client's fault (not counted).
    fn err(&mut self, text: &str) {
        self.line(&format!("-ERR {text}"));
    }

    /// `-ERR` for a bad command: counts toward `POP3_ERRORS_MAX`.
    fn refuse(&mut self, text: &str) {
        self.err(text);
        self.errors += 1;
        if self.errors >= POP3_ERRORS_MAX {
            self.close();
        }
    }

    /// `+OK first`, the lines dot-stuffed, then `.`.
    fn multiline(&mut self, first: &str, lines: &[String]) {
        self.ok(first);
        for line in lines {
            if line.starts_with('.') {
                self.output.push(b'.');
            }
            self.line(line);
        }
        self.output.extend_from_slice(b".\r\n");
    }

    /// One line of our text; control characters become spaces.
    fn line(&mut self, text: &str) {
        self.output.extend(
            text.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
        self.output.extend_from_slice(b"\r\n");
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.wait = Wait::None;
        self.input.discard_all();
        self.events.push_back(Pop3Event::Close);
    }
}

/// RFC 1939 §7: 1–70 characters in 0x21–0x7E. An engine bug otherwise; the
/// listing stays well formed anyway.
fn checked_uidl(uidl: String) -> String {
    let valid = (1..=POP3_UIDL_BYTES_MAX).contains(&uidl.len())
        && uidl.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        return uidl;
    }
    debug_assert!(false, "invalid UIDL {uidl:?}");
    let mut fixed: String = uidl
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .take(POP3_UIDL_BYTES_MAX)
        .collect();
    if fixed.is_empty() {
        fixed.push('?');
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(session: &mut Pop3Session) -> String {
        String::from_utf8_lossy(&session.poll_output().unwrap_or_default()).into_owned()
    }

    #[test]
    fn invalid_timestamp_is_not_offered() {
        let config = Pop3Config {
            apop_timestamp: Some("<1.2@host>".into()),
            ..Pop3Config::default()
        };
        let mut session = Pop3Session::new(config);
        assert_eq!(
            text(&mut session),
            "+OK localhost POP3 msgstore ready <1.2@host>\r\n"
        );
        assert!(!valid_timestamp("<1 2@host>"));
        assert!(!valid_timestamp("1.2@host"));
    }

    #[test]
    fn password_is_redacted_in_events() {
        let mut session = Pop3Session::new(Pop3Config::default());
        session
            .handle_input(b"USER bob\r\nPASS hunter2\r\n")
            .expect("fits");
        let event = session.poll_event().expect("login");
        assert!(!format!("{event:?}").contains("hunter2"));
    }

    #[test]
    fn flood_while_retrieving_closes() {
        let mut session = Pop3Session::new(Pop3Config::default());
        session
            .handle_input(b"USER bob\r\nPASS pw\r\n")
            .expect("fits");
        session.poll_event();
        session.login_result(LoginOutcome::Ok { user: "bob".into() });
        session.poll_event();
        session.maildrop_opened(vec![(10, "a".into())]);
        session.handle_input(b"RETR 1\r\n").expect("fits");
        let flood = vec![b'x'; POP3_INPUT_BUFFER_BYTES_MAX + 1];
        assert!(session.handle_input(&flood).is_err());
        assert!(
            text(&mut session).ends_with("-ERR Too much pipelined input, closing connection\r\n")
        );
        session.retrieve_started();
        assert_eq!(session.poll_output(), None);
    }
}
