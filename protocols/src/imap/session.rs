//! The IMAP server session: a state machine over bytes, quinn-proto style.
//!
//! The engine feeds what it reads to [`ImapSession::handle_input`], writes what
//! [`ImapSession::poll_output`] returns and acts on [`ImapSession::poll_event`].
//! No sockets, no clock, no threads: the session is a value, `!Send` like
//! everything bound to a shard. To move it to the owning shard after login it is
//! turned into an [`ImapHandoff`] (which is `Send`) and rebuilt there.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::imap::backend::{
    BackendError, Completion, ImapBackend, ListState, MessageList, MessageMeta, NoBackend, Pending,
};
use crate::imap::command::authenticate::SaslExchange;
use crate::imap::command::fetch::FetchArgs;
use crate::imap::framing::{BufferFull, Frame, Framer, Literal};
use crate::imap::mailbox_name::{self, NameError};
use crate::imap::parser::{Command, ParseError, TaggedCommand, parse_command};
use crate::imap::types::{AString, Secret, Tag};
use crate::limits::{
    IMAP_AUTH_FAILURES_MAX, IMAP_BAD_COMMANDS_MAX, IMAP_COMMAND_BYTES_MAX,
    IMAP_INPUT_BUFFER_BYTES_MAX, IMAP_LINE_BYTES_MAX, IMAP_LITERAL_BYTES_MAX,
    IMAP_PREAUTH_LITERAL_BYTES_MAX,
};
use crate::sasl::{CredentialRequest, Credentials, SaslPolicy};

/// Our name in `ID` answers.
pub const SERVER_PRODUCT_NAME: &str = "msgstore";

/// What the authenticated state implements, for an engine that serves it with a backend
/// (put these in `ImapConfig::capabilities_authenticated`).
pub const AUTHENTICATED_CAPABILITIES: &[&str] = &[
    "IMAP4rev1",
    "IMAP4rev2",
    "LITERAL+",
    "ID",
    "ENABLE",
    "IDLE",
    "UIDPLUS",
    "MOVE",
    "NAMESPACE",
    "UNSELECT",
    "CHILDREN",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "ESEARCH",
    "SEARCHRES",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=REFERENCES",
    "THREAD=ORDEREDSUBJECT",
    "CONDSTORE",
    "QRESYNC",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTASET",
    "BINARY",
    "UTF8=ACCEPT",
    "STATUS=SIZE",
];

/// Commands of IMAP4rev1/rev2 and the extensions we will serve that need the
/// authenticated (or selected) state but are not implemented yet: `NO [CANNOT]`.
const LATER_COMMANDS: &[&str] = &["GETACL", "SETACL", "DELETEACL", "LISTRIGHTS", "MYRIGHTS"];

/// What a session needs to know about its listener. Small, `Clone` and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// Advertised before login. `LOGINDISABLED` is added when `login_allowed` is false.
    /// Shared (`Arc`): the lists are the same for every connection, and each session
    /// keeps its config for its whole life.
    pub capabilities: Arc<[String]>,
    /// Advertised after login (also in the `LOGIN` OK response).
    pub capabilities_authenticated: Arc<[String]>,
    /// Whether `LOGIN` may be used (false on a plaintext connection that requires TLS).
    pub login_allowed: bool,
    /// Host name shown in the greeting.
    pub server_name: String,
    /// Whether `STARTTLS` is offered (a plaintext listener with a certificate).
    /// The session advertises it before login until TLS is on.
    pub starttls_available: bool,
    /// The SASL mechanisms for AUTHENTICATE (`AUTH=` capabilities). Its `tls_on` and
    /// `plaintext_allowed` are ignored: the session sets them from its TLS state and
    /// `login_allowed`. [`SaslPolicy::disabled`] (the default): no AUTHENTICATE.
    pub sasl: SaslPolicy,
}

impl Default for ImapConfig {
    fn default() -> ImapConfig {
        let capabilities: Arc<[String]> = ["IMAP4rev1", "LITERAL+", "ID", "ENABLE"]
            .map(String::from)
            .into();
        ImapConfig {
            capabilities_authenticated: capabilities.clone(),
            capabilities,
            login_allowed: true,
            server_name: SERVER_PRODUCT_NAME.to_owned(),
            starttls_available: false,
            sasl: SaslPolicy::disabled(),
        }
    }
}

/// Something only the engine can do about the connection.
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
    /// An AUTHENTICATE needs a password checked or a stored secret: answer with
    /// [`ImapSession::sasl_credentials`]. No further input is parsed until then.
    SaslCredentials(CredentialRequest),
    /// An AUTHENTICATE is over (`success`: the mechanism accepted the client's
    /// proof; `username`: the identity it gave, if it got that far). Count it like a
    /// LOGIN and answer with [`ImapSession::login_result`]: `Ok` logs in, anything
    /// else is a NO. No further input is parsed until then.
    SaslFinished {
        tag: String,
        username: Option<String>,
        success: bool,
    },
    /// Write the output polled so far as it is, then deflate everything written and
    /// inflate everything read from here on (RFC 4978, raw DEFLATE), and call
    /// [`ImapSession::compress_started`]. Input buffered behind the command was dropped.
    Compress,
}

/// Something the engine does about the store for the authenticated session; polled
/// with [`ImapSession::poll_mailbox_event`]. (A separate enum from [`ImapEvent`] so
/// engines that match that one exhaustively keep building; they may merge.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxEvent {
    /// A mutation was staged; once the group commit made it durable (or failed), call
    /// [`ImapSession::completed`] with this token. Nothing more is parsed until then.
    Wait(Pending),
    /// The client is in IDLE: call [`ImapSession::mailbox_changed`] as soon as the
    /// selected mailbox changes (store notifier), so updates go out at once.
    IdleStarted,
    /// IDLE ended.
    IdleDone,
}

/// A piece of output, in order. Message bytes are named, not copied, so the engine can
/// stream them (io_uring read, splice/sendfile) and a large message is never in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    Bytes(Vec<u8>),
    /// Send bytes `start..end` of message `uid` of `mailbox` (a name from
    /// [`ImapBackend::select`]), exactly `end - start` of them: the literal header
    /// announcing that length has already gone out. A message that shrank is a damaged
    /// store; the engine must then close the connection rather than send short.
    Message {
        mailbox: String,
        uid: u32,
        start: u64,
        end: u64,
    },
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
pub(crate) enum State {
    NotAuthenticated,
    Authenticated {
        user: String,
    },
    /// Close was queued; input is ignored.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    No,
    Bad,
}

/// Extensions the client turned on with ENABLE (or used, for CONDSTORE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
    pub rev2: bool,
}

/// The selected mailbox as this session has announced it to the client.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    pub name: String,
    pub read_only: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// In sequence order (UID order), expunged-but-unannounced ones included. Shared
    /// with the backend and other sessions while it is the mailbox's current state
    /// (see [`MessageList`]); copied on write.
    pub messages: MessageList,
    /// UIDs known expunged but not yet announced (sorted).
    pub expunged: Vec<u32>,
    pub keywords: Vec<String>,
    pub keywords_creatable: bool,
    /// The result of the last `SEARCH … SAVE` (`$`), UIDs.
    pub saved: Vec<u32>,
}

impl Selected {
    /// Position (0-based) of a UID.
    pub fn index_of(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    pub fn uids(&self) -> Vec<u32> {
        self.messages.iter().map(|m| m.uid).collect()
    }

    pub fn is_expunged(&self, uid: u32) -> bool {
        self.expunged.binary_search(&uid).is_ok()
    }
}

/// What to do when a staged mutation completes.
#[derive(Debug)]
pub(crate) enum AfterCommit {
    /// Answer `OK text`.
    Simple(&'static str),
    Append,
    Store(crate::imap::command::store::StoreDone),
    Expunge {
        uid: bool,
        close: bool,
    },
    Copy {
        is_move: bool,
    },
    /// FETCH that set `\Seen` first; answer it now.
    Fetch(Box<FetchArgs>),
}

#[derive(Debug)]
pub(crate) struct Waiting {
    pub tag: Tag,
    pub pending: Pending,
    pub then: AfterCommit,
}

/// All of a session's state. `Send`; wrapped by [`ImapSession`] (not `Send`)
/// and [`ImapHandoff`] (`Send`).
#[derive(Debug)]
pub(crate) struct Core {
    pub config: ImapConfig,
    pub state: State,
    pub framer: Framer,
    pub output: Vec<u8>,
    pub transmit: VecDeque<Transmit>,
    pub events: VecDeque<ImapEvent>,
    pub mailbox_events: VecDeque<MailboxEvent>,
    /// Tag of the `LOGIN` whose event is unanswered; parsing waits while set.
    pub login_pending: Option<Tag>,
    /// Set between `STARTTLS`'s OK and `tls_started`; parsing waits meanwhile.
    pub tls_pending: bool,
    /// TLS is on (implicitly or after STARTTLS).
    pub tls_active: bool,
    pub bad_commands: u32,
    /// Commands read so far (for the engine's per-connection pace).
    pub commands: u64,
    pub auth_failures: u32,
    pub enabled: Enabled,
    pub selected: Option<Selected>,
    /// A staged mutation; parsing waits while set.
    pub waiting: Option<Waiting>,
    /// The tag of the IDLE in progress.
    pub idle: Option<Tag>,
    /// The engine said the selected mailbox changed since the last look.
    pub changed: bool,
    /// An AUTHENTICATE in progress. Boxed, like `append`: both are rare and short, and
    /// inline they made every session (most of them idle) ~370 bytes larger.
    pub sasl: Option<Box<SaslExchange>>,
    /// COMPRESS DEFLATE was accepted (RFC 4978): it cannot be turned on twice.
    pub compress_active: bool,
    /// Between COMPRESS's OK and `compress_started`; parsing waits meanwhile.
    pub compress_pending: bool,
    /// The APPEND whose message literal is streaming to the backend.
    pub append: Option<Box<crate::imap::command::append::AppendStream>>,
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
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            mailbox_events: VecDeque::new(),
            login_pending: None,
            tls_pending: false,
            tls_active: false,
            bad_commands: 0,
            commands: 0,
            auth_failures: 0,
            enabled: Enabled::default(),
            selected: None,
            waiting: None,
            idle: None,
            changed: false,
            sasl: None,
            compress_active: false,
            compress_pending: false,
            append: None,
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
    /// Input after close is ignored. Commands after login are answered
    /// `NO [UNAVAILABLE]`: an engine serving them uses [`ImapSession::handle_input_with`].
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), InputError> {
        self.core.handle_input(data, &mut NoBackend)
    }

    /// [`ImapSession::handle_input`] with the logged-in user's store.
    pub fn handle_input_with(
        &mut self,
        data: &[u8],
        backend: &mut dyn ImapBackend,
    ) -> Result<(), InputError> {
        self.core.handle_input(data, backend)
    }

    /// All output bytes queued so far, in order, up to the first [`Transmit::Message`]
    /// (which only [`ImapSession::poll_transmit`] hands out).
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        match self.core.transmit.front() {
            None => (!self.core.output.is_empty()).then(|| std::mem::take(&mut self.core.output)),
            Some(Transmit::Bytes(_)) => match self.core.transmit.pop_front() {
                Some(Transmit::Bytes(bytes)) => Some(bytes),
                _ => None,
            },
            Some(Transmit::Message { .. }) => None,
        }
    }

    /// The next piece of output: bytes, or message bytes for the engine to stream.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.transmit.pop_front().or_else(|| {
            (!self.core.output.is_empty())
                .then(|| Transmit::Bytes(std::mem::take(&mut self.core.output)))
        })
    }

    /// The next thing the engine must do about the connection.
    pub fn poll_event(&mut self) -> Option<ImapEvent> {
        self.core.events.pop_front()
    }

    /// The next thing the engine must do about the store.
    pub fn poll_mailbox_event(&mut self) -> Option<MailboxEvent> {
        self.core.mailbox_events.pop_front()
    }

    /// Answers the outstanding [`ImapEvent::Login`] and resumes parsing the
    /// buffered input (commands after login are answered `NO [UNAVAILABLE]`; see
    /// [`ImapSession::login_result_with`]). Calling it with no login outstanding is an
    /// engine bug (ignored in release builds).
    pub fn login_result(&mut self, outcome: LoginOutcome) {
        self.core.login_result(outcome, &mut NoBackend);
    }

    /// Answers the outstanding [`ImapEvent::SaslCredentials`] and goes on with the
    /// exchange (and then the buffered input).
    pub fn sasl_credentials(&mut self, credentials: Credentials) {
        self.core.sasl_credentials(credentials);
        self.core.process(&mut NoBackend);
    }

    /// [`ImapSession::login_result`] with the user's store, for commands pipelined
    /// behind the LOGIN.
    pub fn login_result_with(&mut self, outcome: LoginOutcome, backend: &mut dyn ImapBackend) {
        self.core.login_result(outcome, backend);
    }

    /// The group commit holding `pending` is done: answers the waiting command and
    /// resumes parsing. A token the session is not waiting for is ignored.
    pub fn completed(
        &mut self,
        pending: Pending,
        result: Result<Completion, BackendError>,
        backend: &mut dyn ImapBackend,
    ) {
        self.core.completed(pending, result, backend);
    }

    /// The selected mailbox changed (another session, a delivery). In IDLE the
    /// updates go out at once; otherwise with the next command's answer.
    pub fn mailbox_changed(&mut self, backend: &mut dyn ImapBackend) {
        self.core.changed = true;
        if self.core.idle.is_some() {
            self.core.refresh(backend, true);
        }
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
        self.core.process(&mut NoBackend);
    }

    /// The engine has wrapped the connection in DEFLATE after [`ImapEvent::Compress`];
    /// parsing resumes (the input now arrives inflated).
    pub fn compress_started(&mut self) {
        debug_assert!(
            self.core.compress_pending,
            "compress_started without Compress"
        );
        self.core.compress_pending = false;
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

    /// The selected mailbox's name, for the engine's change watch.
    pub fn selected_mailbox(&self) -> Option<&str> {
        self.core.selected.as_ref().map(|s| s.name.as_str())
    }

    /// Commands read so far; the engine paces a connection by it.
    pub fn commands_seen(&self) -> u64 {
        self.core.commands
    }

    /// Whether the client is in IDLE.
    pub fn is_idle(&self) -> bool {
        self.core.idle.is_some()
    }

    /// The mutation the session waits for, if any.
    pub fn waiting_for(&self) -> Option<Pending> {
        self.core.waiting.as_ref().map(|w| w.pending)
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
    fn handle_input(
        &mut self,
        mut data: &[u8],
        backend: &mut dyn ImapBackend,
    ) -> Result<(), InputError> {
        if self.tls_pending {
            // Plaintext that arrives before the TLS switch is an injection attempt.
            return Ok(());
        }
        loop {
            if self.state == State::Closed || self.compress_pending {
                return Ok(());
            }
            let (now, later) = data.split_at(data.len().min(self.framer.room()));
            self.framer.push(now)?;
            data = later;
            self.process(backend);
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

    /// Answers complete commands until input runs out, something waits, or close.
    pub(crate) fn process(&mut self, backend: &mut dyn ImapBackend) {
        while self.login_pending.is_none()
            && !self.sasl_waits_for_engine()
            && !self.tls_pending
            && !self.compress_pending
            && self.waiting.is_none()
            && self.state != State::Closed
        {
            match self.framer.next_frame() {
                Frame::NeedMore => break,
                Frame::Complete if self.sasl_reads_lines() => {
                    let line = self.framer.frame().to_vec();
                    self.framer.consume_frame();
                    self.sasl_line(&line);
                }
                Frame::LiteralAnnounced { .. } if self.sasl_reads_lines() => {
                    self.framer.reject_literal();
                    self.sasl_bad_input("Invalid SASL response");
                }
                Frame::TooLong { .. } if self.sasl_reads_lines() => {
                    self.sasl_bad_input("SASL response too long")
                }
                Frame::Complete if self.idle.is_some() => {
                    let done = matches!(self.framer.frame(), b"DONE\r\n" | b"DONE\n")
                        || self.framer.frame().eq_ignore_ascii_case(b"done\r\n");
                    self.framer.consume_frame();
                    self.idle_done(done, backend);
                }
                Frame::Complete if self.append.is_some() => {
                    let frame = self.framer.frame().to_vec();
                    self.framer.consume_frame();
                    self.append_complete(&frame, backend);
                }
                Frame::StreamData => self.append_stream_data(backend),
                Frame::Complete => {
                    let parsed = parse_command(self.framer.frame());
                    self.framer.consume_frame();
                    self.commands = self.commands.wrapping_add(1);
                    self.dispatch(parsed, backend);
                }
                Frame::LiteralAnnounced { tag, literal } => {
                    self.decide_literal(tag.as_ref(), literal, backend)
                }
                Frame::TooLong { tag } => {
                    self.respond(tag.as_ref(), Status::Bad, "Command line too long")
                }
            }
        }
    }

    fn decide_literal(
        &mut self,
        tag: Option<&Tag>,
        literal: Literal,
        backend: &mut dyn ImapBackend,
    ) {
        let authenticated = matches!(self.state, State::Authenticated { .. });
        let append = authenticated && self.framer.frame_is_command(b"APPEND");
        if append && self.append.is_some() {
            return self.append_second_literal(backend);
        }
        if append
            && let Some(head) = crate::imap::command::append::parse_head(self.framer.frame_so_far())
        {
            return self.append_literal(head, literal, backend);
        }
        let (literal_bytes_max, command_bytes_max) = if authenticated {
            (IMAP_LITERAL_BYTES_MAX, IMAP_COMMAND_BYTES_MAX as u64)
        } else {
            (
                IMAP_PREAUTH_LITERAL_BYTES_MAX,
                IMAP_COMMAND_BYTES_MAX as u64,
            )
        };
        let command_bytes = (self.framer.frame_len() as u64).saturating_add(literal.len);
        if literal.len <= literal_bytes_max && command_bytes <= command_bytes_max {
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

    fn dispatch(
        &mut self,
        parsed: Result<TaggedCommand, ParseError>,
        backend: &mut dyn ImapBackend,
    ) {
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
            Command::Noop | Command::Check if authenticated => {
                self.changed = true;
                self.refresh(backend, true);
                let done = if matches!(command, Command::Noop) {
                    "NOOP completed"
                } else {
                    "CHECK completed"
                };
                self.respond(Some(&tag), Status::Ok, done);
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
            Command::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(tag, &mechanism, initial_response),
            Command::Other { name } if LATER_COMMANDS.contains(&name.as_str()) => {
                if authenticated {
                    let text = format!("[CANNOT] {name} is not available yet");
                    self.respond(Some(&tag), Status::No, &text);
                } else {
                    self.respond(Some(&tag), Status::Bad, "Log in first");
                }
            }
            Command::Other { .. } => self.respond(Some(&tag), Status::Bad, "Unknown command"),
            _ if !authenticated => self.respond(Some(&tag), Status::Bad, "Log in first"),
            command => self.authenticated_command(tag, command, backend),
        }
    }

    /// Commands of the authenticated and selected states.
    fn authenticated_command(&mut self, tag: Tag, command: Command, backend: &mut dyn ImapBackend) {
        let selected_only = matches!(
            command,
            Command::Close
                | Command::Unselect
                | Command::Expunge { .. }
                | Command::Search(_)
                | Command::Sort(_)
                | Command::Thread(_)
                | Command::Fetch(_)
                | Command::Store(_)
                | Command::Copy(_)
        );
        if selected_only && self.selected.is_none() {
            return self.respond(Some(&tag), Status::Bad, "No mailbox selected");
        }
        match command {
            Command::Enable { capabilities } => self.enable(&tag, &capabilities),
            Command::Select(args) => self.select(tag, args, backend),
            Command::Create(args) => self.create(tag, args, backend),
            Command::Delete { mailbox } => self.delete(tag, &mailbox, backend),
            Command::Rename { from, to } => self.rename(tag, &from, &to, backend),
            Command::Subscribe { mailbox, subscribe } => {
                self.subscribe(tag, &mailbox, subscribe, backend)
            }
            Command::List(args) => self.list(&tag, &args, backend),
            Command::Namespace => self.namespace(&tag),
            Command::Status(args) => self.status(&tag, &args, backend),
            Command::Append(args) => self.append(tag, args, backend),
            Command::Close => self.close_mailbox(tag, backend),
            Command::Unselect => {
                self.leave_mailbox(backend);
                self.respond(Some(&tag), Status::Ok, "UNSELECT completed");
            }
            Command::Expunge { uids } => self.expunge(tag, uids.as_ref(), false, backend),
            Command::Search(args) => self.search(&tag, args, backend),
            Command::Sort(args) => self.sort(&tag, args, backend),
            Command::Thread(args) => self.thread(&tag, args, backend),
            Command::Fetch(args) => self.fetch(tag, args, backend),
            Command::Store(args) => self.store(tag, args, backend),
            Command::Copy(args) => self.copy(tag, args, backend),
            Command::Idle => self.idle_start(tag, backend),
            Command::Compress { mechanism } => self.compress(&tag, &mechanism),
            Command::GetQuota { root } => self.get_quota(&tag, &root, backend),
            Command::GetQuotaRoot { mailbox } => self.get_quota_root(&tag, &mailbox, backend),
            Command::SetQuota(args) => self.set_quota(tag, args, backend),
            _ => self.respond(Some(&tag), Status::Bad, "Unknown command"),
        }
    }

    /// Leaves the selected mailbox (no EXPUNGE).
    pub(crate) fn leave_mailbox(&mut self, backend: &mut dyn ImapBackend) {
        if self.selected.take().is_some() {
            backend.unselect();
        }
        self.changed = false;
    }

    /// Stages a mutation: waits for it, or answers NO at once.
    pub(crate) fn wait_for(
        &mut self,
        tag: Tag,
        staged: Result<Pending, BackendError>,
        then: AfterCommit,
    ) {
        match staged {
            Ok(pending) => {
                self.waiting = Some(Waiting { tag, pending, then });
                self.mailbox_events.push_back(MailboxEvent::Wait(pending));
            }
            Err(error) => self.respond(Some(&tag), Status::No, &error.response()),
        }
    }

    fn completed(
        &mut self,
        pending: Pending,
        result: Result<Completion, BackendError>,
        backend: &mut dyn ImapBackend,
    ) {
        match &self.waiting {
            Some(w) if w.pending == pending => {}
            _ => {
                debug_assert!(false, "completed({pending:?}) without a matching Wait");
                return;
            }
        }
        let Some(Waiting { tag, then, .. }) = self.waiting.take() else {
            return;
        };
        if self.state == State::Closed {
            return;
        }
        // Our own change shows in the mailbox like anyone's.
        self.changed = true;
        match result {
            Err(error) => {
                if let AfterCommit::Fetch(args) = then {
                    // \Seen could not be set: answer the FETCH anyway.
                    self.fetch_answer(tag, *args, &[], 0, backend);
                } else {
                    self.refresh(backend, true);
                    self.respond(Some(&tag), Status::No, &error.response());
                }
            }
            Ok(completion) => self.after_commit(tag, then, completion, backend),
        }
        self.process(backend);
    }

    fn after_commit(
        &mut self,
        tag: Tag,
        then: AfterCommit,
        completion: Completion,
        backend: &mut dyn ImapBackend,
    ) {
        match then {
            AfterCommit::Simple(text) => {
                self.refresh(backend, true);
                self.respond(Some(&tag), Status::Ok, text);
            }
            AfterCommit::Append => {
                self.refresh(backend, true);
                let text = match completion {
                    Completion::Appended { uidvalidity, uid } => {
                        format!("[APPENDUID {uidvalidity} {uid}] APPEND completed")
                    }
                    _ => "APPEND completed".into(),
                };
                self.respond(Some(&tag), Status::Ok, &text);
            }
            AfterCommit::Store(done) => self.store_done(tag, done, backend),
            AfterCommit::Expunge { uid, close } => {
                self.expunge_done(tag, uid, close, completion, backend)
            }
            AfterCommit::Copy { is_move } => self.copy_done(tag, is_move, completion, backend),
            AfterCommit::Fetch(args) => {
                let (seen, modseq) = match completion {
                    Completion::FlagsChanged { uids, modseq } => (uids, modseq),
                    _ => (Vec::new(), 0),
                };
                self.fetch_answer(tag, *args, &seen, modseq, backend);
            }
        }
    }

    /// Learns what changed in the selected mailbox and announces it: FETCH FLAGS for
    /// flag changes, then (when `expunges` are allowed now) EXPUNGE or VANISHED, then
    /// EXISTS for new messages.
    pub(crate) fn refresh(&mut self, backend: &mut dyn ImapBackend, expunges: bool) {
        self.refresh_quiet(backend, expunges, &[]);
    }

    /// [`Core::refresh`] without FETCH lines for `quiet` (the command answers for them).
    pub(crate) fn refresh_quiet(
        &mut self,
        backend: &mut dyn ImapBackend,
        expunges: bool,
        quiet: &[u32],
    ) {
        if !self.changed {
            if expunges {
                self.announce_expunges();
            }
            return;
        }
        let Some(selected) = &mut self.selected else {
            self.changed = false;
            return;
        };
        let Ok(changes) = backend.changes(&selected.name, selected.highestmodseq) else {
            return;
        };
        self.changed = false;
        let mut gone: Vec<u32> = changes
            .expunged
            .iter()
            .copied()
            .filter(|&u| selected.index_of(u).is_some())
            .collect();
        if let Some(live) = &changes.live_uids {
            let mut live = live.clone();
            live.sort_unstable();
            gone.extend(
                selected
                    .messages
                    .iter()
                    .map(|m| m.uid)
                    .filter(|u| live.binary_search(u).is_err()),
            );
        }
        for uid in gone {
            if let Err(at) = selected.expunged.binary_search(&uid) {
                selected.expunged.insert(at, uid);
            }
        }
        let state = changes.state();
        let condstore = self.enabled.condstore;
        let uid_item = self.enabled.qresync || self.enabled.rev2;
        // What to announce, worked out over the list as the client knows it (read only:
        // it may be shared).
        let mut fetches = Vec::new();
        let mut updates: Vec<(usize, MessageMeta)> = Vec::new();
        let mut appended: Vec<MessageMeta> = Vec::new();
        for meta in changes.updated {
            if selected.is_expunged(meta.uid) {
                continue;
            }
            match selected.index_of(meta.uid) {
                Some(i) => {
                    let known = &selected.messages[i];
                    let flags_differ = known.flags != meta.flags;
                    let modseq_differs = known.modseq != meta.modseq;
                    if (flags_differ || (condstore && modseq_differs)) && !quiet.contains(&meta.uid)
                    {
                        let mut line = format!("* {} FETCH (", i + 1);
                        if uid_item {
                            line.push_str(&format!("UID {} ", meta.uid));
                        }
                        line.push_str(&format!("FLAGS ({})", meta.flags.to_imap()));
                        if condstore {
                            line.push_str(&format!(" MODSEQ ({})", meta.modseq));
                        }
                        line.push(')');
                        fetches.push(line);
                    }
                    updates.push((i, meta));
                }
                None if appended
                    .last()
                    .or(selected.messages.last())
                    .is_none_or(|m| m.uid < meta.uid) =>
                {
                    for k in &meta.flags.keywords {
                        if !selected.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                            selected.keywords.push(k.clone());
                        }
                    }
                    appended.push(meta);
                }
                None => {}
            }
        }
        selected.highestmodseq = selected.highestmodseq.max(changes.highestmodseq);
        selected.uidnext = selected.uidnext.max(changes.uidnext);
        let new_messages = !appended.is_empty();
        let mine = ListState {
            uidvalidity: selected.uidvalidity,
            uidnext: selected.uidnext,
            highestmodseq: selected.highestmodseq,
        };
        // Everything announced by the end of this refresh: hold the backend's shared list
        // of the mailbox as it is now, if this session's list is now of the same state.
        let announced = expunges || selected.expunged.is_empty();
        let count = (selected.messages.len() + appended.len()).checked_sub(selected.expunged.len());
        let shared = changes
            .current
            .filter(|current| announced && adopts(mine, count, state, current));
        if let Some(current) = &shared {
            debug_assert!(
                applied_equals(
                    &selected.messages,
                    &selected.expunged,
                    &updates,
                    &appended,
                    current,
                ),
                "a session's list applied with the changes is not the mailbox at {state:?}"
            );
        }
        let expunge_lines = if expunges {
            expunge_lines(selected, self.enabled.qresync)
        } else {
            Vec::new()
        };
        match shared {
            Some(current) => {
                selected.messages = current;
                selected.expunged.clear();
            }
            None => {
                let list = Arc::make_mut(&mut selected.messages);
                for (i, meta) in updates {
                    list[i] = meta;
                }
                // Exactly: the list may be shared next, and lives as long as it is.
                list.reserve_exact(appended.len());
                list.extend(appended);
                if expunges {
                    forget_expunged(selected);
                }
                if selected.expunged.is_empty() && mine == state {
                    backend.share(&selected.name, state, &selected.messages);
                }
            }
        }
        let count = selected.messages.len();
        for line in fetches.iter().chain(&expunge_lines) {
            self.text(line);
        }
        if new_messages {
            self.text(&format!("* {count} EXISTS"));
            if !self.enabled.rev2 {
                self.text("* 0 RECENT");
            }
        }
    }

    /// Announces and forgets the messages known expunged.
    pub(crate) fn announce_expunges(&mut self) {
        let Some(selected) = &mut self.selected else {
            return;
        };
        if selected.expunged.is_empty() {
            return;
        }
        let lines = expunge_lines(selected, self.enabled.qresync);
        forget_expunged(selected);
        for line in lines {
            self.text(&line);
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

    fn login_result(&mut self, outcome: LoginOutcome, backend: &mut dyn ImapBackend) {
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
        self.process(backend);
    }

    /// The capability list for the current state.
    pub(crate) fn capabilities(&self) -> String {
        match self.state {
            State::Authenticated { .. } if self.compress_active => self
                .config
                .capabilities_authenticated
                .iter()
                .filter(|c| {
                    !c.eq_ignore_ascii_case(crate::imap::command::compress::COMPRESS_CAPABILITY)
                })
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            State::Authenticated { .. } => self.config.capabilities_authenticated.join(" "),
            _ => {
                let mut list = self.config.capabilities.join(" ");
                if self.config.starttls_available && !self.tls_active {
                    list.push_str(" STARTTLS");
                }
                list.push_str(&self.sasl_capabilities());
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

    /// A client's mailbox name in the server's form; answers BAD/NO when it is not one.
    pub(crate) fn mailbox_name(&mut self, tag: &Tag, name: &AString) -> Option<String> {
        match mailbox_name::from_wire(name.as_bytes(), self.enabled.utf8) {
            Ok(name) => Some(name),
            Err(NameError::Encoding) => {
                self.respond(Some(tag), Status::Bad, "Invalid mailbox name encoding");
                None
            }
            Err(NameError::Control) => {
                self.respond(
                    Some(tag),
                    Status::No,
                    "[CANNOT] Control characters are not allowed in mailbox names",
                );
                None
            }
        }
    }

    /// A mailbox name as the client sees it.
    pub(crate) fn wire_name(&self, name: &str) -> String {
        mailbox_name::to_wire(name, self.enabled.utf8)
    }

    pub(crate) fn untagged(&mut self, text: &str) {
        self.output.extend_from_slice(b"* ");
        self.text(text);
    }

    /// A tagged (or, without a valid tag, untagged) completion. Counts BADs.
    pub(crate) fn respond(&mut self, tag: Option<&Tag>, status: Status, text: &str) {
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
    pub(crate) fn text(&mut self, text: &str) {
        self.output.extend(
            text.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
        self.output.extend_from_slice(b"\r\n");
    }

    /// Writes bytes as they are (FETCH data, literals the session built).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Queues message bytes for the engine to stream, after the output so far.
    pub(crate) fn message_bytes(&mut self, mailbox: &str, uid: u32, start: u64, end: u64) {
        if !self.output.is_empty() {
            let bytes = std::mem::take(&mut self.output);
            self.transmit.push_back(Transmit::Bytes(bytes));
        }
        self.transmit.push_back(Transmit::Message {
            mailbox: mailbox.to_owned(),
            uid,
            start,
            end,
        });
    }

    pub(crate) fn bye(&mut self, text: &str) {
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

/// The EXPUNGE (or VANISHED) lines announcing `selected.expunged`, numbered as removing
/// them one by one in UID order numbers them.
fn expunge_lines(selected: &Selected, qresync: bool) -> Vec<String> {
    if selected.expunged.is_empty() {
        return Vec::new();
    }
    if qresync {
        let set = crate::imap::command::format_set(&selected.expunged);
        return vec![format!("* VANISHED {set}")];
    }
    let mut removed = 0;
    let mut lines = Vec::new();
    for &uid in &selected.expunged {
        if let Some(i) = selected.index_of(uid) {
            lines.push(format!("* {} EXPUNGE", i - removed + 1));
            removed += 1;
        }
    }
    lines
}

/// Removes the announced expunges from the session's list (copying it if shared).
fn forget_expunged(selected: &mut Selected) {
    if selected.expunged.is_empty() {
        return;
    }
    let gone = std::mem::take(&mut selected.expunged);
    Arc::make_mut(&mut selected.messages).retain(|m| gone.binary_search(&m.uid).is_err());
}

/// Whether a session may hold the backend's list `current`, the mailbox at `theirs`,
/// instead of its own: its own state after a refresh is `mine`, everything announced,
/// and its list is then `count` messages long. O(1), where comparing the messages
/// (`applied_equals`, which debug builds still do) is O(messages) for each session at
/// each change.
///
/// Why equal states give equal lists: a session's list, with the messages it knows
/// expunged taken out, is the mailbox at its `highestmodseq` — true at SELECT (the
/// backend's list of that state), and kept by every refresh, which applies all
/// that `ImapBackend::changes` reports (every message changed above that modseq as it
/// is now, every UID expunged since or the live UIDs) and takes the modseq those
/// changes lead to. The only other writes to the list (FETCH's own `\Seen`) touch
/// messages whose modseq is now above the session's, so the next changes replace
/// them. Every change raises the modseq and a recreated mailbox has a new UIDVALIDITY,
/// so a session's list at `theirs` is the mailbox at `theirs`, which `current` is too.
/// The UIDNEXT and the count are compared as well: cheap, and they catch a backend
/// whose changes missed a message before it is numbered wrong.
fn adopts(
    mine: ListState,
    count: Option<usize>,
    theirs: ListState,
    current: &[MessageMeta],
) -> bool {
    mine == theirs && count == Some(current.len())
}

/// Whether `current` is `known` with `updates` applied (by index, in index order), the
/// `gone` UIDs (sorted) removed and `appended` added: what [`adopts`] concludes from the
/// states, checked message by message in debug builds. No allocation; O(messages).
fn applied_equals(
    known: &[MessageMeta],
    gone: &[u32],
    updates: &[(usize, MessageMeta)],
    appended: &[MessageMeta],
    current: &[MessageMeta],
) -> bool {
    if known
        .len()
        .checked_sub(gone.len())
        .map(|n| n + appended.len())
        != Some(current.len())
    {
        return false;
    }
    let mut updates = updates.iter().peekable();
    let mut current = current.iter();
    for (i, m) in known.iter().enumerate() {
        let m = match updates.peek() {
            Some((j, new)) if *j == i => {
                updates.next();
                new
            }
            _ => m,
        };
        if gone.binary_search(&m.uid).is_ok() {
            continue;
        }
        if current.next() != Some(m) {
            return false;
        }
    }
    updates.next().is_none()
        && appended.iter().all(|m| current.next() == Some(m))
        && current.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_list_held_only_once_everything_is_announced() {
        use crate::imap::backend::{FlagMode, Flags, SystemFlags};
        use crate::imap::memory::MemoryBackend;
        let mut backend = MemoryBackend::new();
        for _ in 0..5 {
            backend
                .deliver("INBOX", b"Subject: x\r\n\r\nhi\r\n", Flags::default(), None)
                .expect("delivered");
        }
        let mut session = selected_inbox(&mut backend);
        // Another session expunges 2 and 4 and flags 3.
        backend.remove("INBOX", &[2, 4]).expect("expunged");
        let flagged = Flags {
            system: SystemFlags(SystemFlags::FLAGGED),
            keywords: Vec::new(),
        };
        backend
            .set_flags("INBOX", &[3], FlagMode::Add, &flagged)
            .expect("flagged");
        session.mailbox_changed(&mut backend);
        // FETCH may not announce expunges: the session keeps its own list meanwhile.
        session
            .handle_input_with(b"c FETCH 3 FLAGS\r\n", &mut backend)
            .expect("fits");
        assert_eq!(
            output(&mut session),
            "* 3 FETCH (FLAGS (\\Flagged))\r\n* 3 FETCH (FLAGS (\\Flagged))\r\n\
             c OK FETCH completed\r\n"
        );
        let selected = session.core.selected.as_ref().expect("selected");
        assert_eq!(selected.messages.len(), 5);
        assert_eq!(selected.expunged, vec![2, 4]);
        // NOOP announces them, numbered one removal after the other.
        session
            .handle_input_with(b"d NOOP\r\n", &mut backend)
            .expect("fits");
        assert_eq!(
            output(&mut session),
            "* 2 EXPUNGE\r\n* 3 EXPUNGE\r\nd OK NOOP completed\r\n"
        );
        let selected = session.core.selected.as_ref().expect("selected");
        assert!(selected.expunged.is_empty());
        let uids: Vec<u32> = selected.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![1, 3, 5]);
        // A delivery: caught up, the session holds the backend's list (MemoryBackend
        // offers a fresh one with every change; it is taken only when it matches).
        let own = Arc::as_ptr(&selected.messages);
        backend
            .deliver("INBOX", b"Subject: y\r\n\r\nhi\r\n", Flags::default(), None)
            .expect("delivered");
        session.mailbox_changed(&mut backend);
        session
            .handle_input_with(b"e NOOP\r\n", &mut backend)
            .expect("fits");
        assert_eq!(
            output(&mut session),
            "* 4 EXISTS\r\n* 0 RECENT\r\ne OK NOOP completed\r\n"
        );
        let selected = session.core.selected.as_ref().expect("selected");
        let uids: Vec<u32> = selected.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![1, 3, 5, 6]);
        assert!(!std::ptr::eq(own, Arc::as_ptr(&selected.messages)));
    }

    #[test]
    fn fetch_of_whole_bodies_asks_whether_the_messages_are_there() {
        use crate::imap::backend::Flags;
        use crate::imap::memory::MemoryBackend;
        let message = b"Subject: x\r\n\r\nhello there\r\n";
        let size = message.len() as u64;
        let mut backend = MemoryBackend::new();
        for _ in 0..3 {
            backend
                .deliver("INBOX", message, Flags::default(), None)
                .expect("delivered");
        }
        let mut session = selected_inbox(&mut backend);
        // Another session expunges 2; this one has not heard of it yet.
        backend.remove("INBOX", &[2]).expect("expunged");
        session
            .handle_input_with(
                b"c FETCH 1:2 (RFC822.SIZE BODY.PEEK[])\r\nd FETCH 3 BODY.PEEK[]<5.10>\r\n",
                &mut backend,
            )
            .expect("fits");
        let mut text = String::new();
        let mut messages = Vec::new();
        while let Some(t) = session.poll_transmit() {
            match t {
                Transmit::Bytes(b) => text.push_str(&String::from_utf8_lossy(&b)),
                Transmit::Message {
                    uid, start, end, ..
                } => {
                    text.push_str("<message>");
                    messages.push((uid, start, end));
                }
            }
        }
        assert_eq!(
            text,
            format!(
                "* 1 FETCH (RFC822.SIZE {size} BODY[] {{{size}}}\r\n<message>)\r\n\
                 c NO [EXPUNGEISSUED] Some messages were expunged\r\n\
                 * 3 FETCH (BODY[]<5> {{10}}\r\n<message>)\r\nd OK FETCH completed\r\n"
            )
        );
        assert_eq!(messages, vec![(1, 0, size), (3, 5, 15)]);
    }

    #[test]
    fn applied_equals_checks_every_message() {
        let m = |uid: u32, modseq: u64| MessageMeta {
            uid,
            flags: Default::default(),
            modseq,
            internaldate: Default::default(),
            size: 1,
        };
        let known = vec![m(1, 1), m(2, 1), m(3, 1)];
        let current = vec![m(1, 1), m(3, 5), m(4, 6)];
        let updates = vec![(2, m(3, 5))];
        assert!(applied_equals(&known, &[2], &updates, &[m(4, 6)], &current));
        assert!(!applied_equals(&known, &[2], &[], &[m(4, 6)], &current));
        assert!(!applied_equals(&known, &[], &updates, &[m(4, 6)], &current));
        assert!(!applied_equals(&known, &[2], &updates, &[], &current));
        assert!(!applied_equals(
            &known,
            &[2, 3],
            &updates,
            &[m(4, 6)],
            &current
        ));
    }

    #[test]
    fn a_shared_list_is_adopted_only_at_the_same_state_and_length() {
        let m = |uid: u32| MessageMeta {
            uid,
            flags: Default::default(),
            modseq: 1,
            internaldate: Default::default(),
            size: 1,
        };
        let state = ListState {
            uidvalidity: 7,
            uidnext: 10,
            highestmodseq: 20,
        };
        let current = vec![m(1), m(4), m(9)];
        assert!(adopts(state, Some(3), state, &current));
        // Behind or ahead of the list's state.
        for mine in [
            ListState {
                highestmodseq: 19,
                ..state
            },
            ListState {
                highestmodseq: 21,
                ..state
            },
            ListState {
                uidnext: 11,
                ..state
            },
            // The mailbox was deleted and created again under the same name.
            ListState {
                uidvalidity: 8,
                ..state
            },
        ] {
            assert!(!adopts(mine, Some(3), state, &current), "{mine:?}");
        }
        // Same state, but the session's list would not have as many messages.
        assert!(!adopts(state, Some(2), state, &current));
        assert!(!adopts(state, Some(4), state, &current));
        assert!(!adopts(state, None, state, &current));
    }

    /// A session logged in as bob with INBOX selected (tags a and b), output drained.
    fn selected_inbox(backend: &mut crate::imap::memory::MemoryBackend) -> ImapSession {
        let mut session = ImapSession::new(ImapConfig::default());
        let _ = output(&mut session);
        session.handle_input(b"a LOGIN bob pw\r\n").expect("fits");
        assert!(matches!(
            session.poll_event(),
            Some(ImapEvent::Login { .. })
        ));
        session.login_result_with(LoginOutcome::Ok { user: "bob".into() }, backend);
        session
            .handle_input_with(b"b SELECT INBOX\r\n", backend)
            .expect("fits");
        let _ = output(&mut session);
        session
    }

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
