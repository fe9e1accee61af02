//! The SMTP client session: one connection, one envelope, quinn-proto style.
//!
//! The engine connects, feeds what it reads to [`SmtpClient::handle_input`],
//! writes what [`SmtpClient::poll_output`] returns and acts on
//! [`SmtpClient::poll_event`]; I/O failures and timeouts (the session has no
//! clock) come in through [`SmtpClient::connection_failed`] and
//! [`SmtpClient::connection_closed`].

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use crate::limits::{
    SMTP_CLIENT_INPUT_BUFFER_BYTES_MAX, SMTP_CLIENT_RECIPIENTS_MAX,
    SMTP_CLIENT_REPLY_LINE_BYTES_MAX,
};
use crate::line::{InputError, Line, LineBuffer};
use crate::pop3::DotStuffer;
use crate::smtp_client::reply::{ReplyAssembler, ReplyError, SmtpReply};

/// Longest path inside `<>` (RFC 5321 §4.5.3.1.3: 256 octets with the brackets).
const PATH_BYTES_MAX: usize = 254;

/// Whether to use STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// Never (a relay on loopback, tests).
    Disabled,
    /// When the server offers it; plaintext otherwise, or when it refuses.
    #[default]
    Opportunistic,
    /// Only over TLS: a server without STARTTLS gets every recipient deferred.
    Required,
}

/// What the client needs to know besides the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpClientConfig {
    /// Our host name, sent in EHLO/HELO.
    pub helo_name: String,
    pub tls: TlsPolicy,
}

impl Default for SmtpClientConfig {
    fn default() -> SmtpClientConfig {
        SmtpClientConfig {
            helo_name: "localhost".to_owned(),
            tls: TlsPolicy::Opportunistic,
        }
    }
}

/// One message's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path without `<>`; empty for the null sender (bounces).
    pub mail_from: String,
    /// Forward paths without `<>`, 1..=`SMTP_CLIENT_RECIPIENTS_MAX`.
    pub recipients: Vec<String>,
    /// The message's size in bytes, for `SIZE=` (RFC 1870) when the server offers it.
    pub size_bytes: Option<u64>,
    /// The message holds 8-bit bytes: `BODY=8BITMIME` when the server offers it
    /// (sent as is otherwise, as Postfix does).
    pub eight_bit: bool,
}

/// Why [`SmtpClient::new`] refused an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("no recipients")]
    NoRecipients,
    #[error("{0} recipients, at most {SMTP_CLIENT_RECIPIENTS_MAX} per transaction")]
    TooManyRecipients(usize),
    #[error("address {0:?} cannot be sent in an SMTP command")]
    BadAddress(String),
    #[error("helo name {0:?} cannot be sent in an SMTP command")]
    BadHeloName(String),
}

/// How one recipient fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server took responsibility for the message (2xx after the data).
    Delivered,
    /// Try again later: a 4xx, a lost connection, a protocol error.
    Temporary,
    /// Never: a 5xx. The sender gets a bounce.
    Permanent,
}

/// Where in the conversation an outcome was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    /// The reply to the final `.`.
    Message,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO/HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of data",
        })
    }
}

/// The result for one recipient, in envelope order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    pub recipient: String,
    pub outcome: Outcome,
    pub stage: Stage,
    /// The server's reply code when a reply decided it; `None` for our own verdicts
    /// (lost connection, TLS unavailable, message over the server's SIZE).
    pub reply_code: Option<u16>,
    /// RFC 3463 status for a DSN: the server's enhanced code, or one we derived.
    pub status: String,
    /// One line for logs and bounces: the server's reply (`550 5.1.1 User unknown`)
    /// or what went wrong.
    pub diagnostic: String,
}

/// Something only the engine can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpClientEvent {
    /// The server said `220` to STARTTLS: write the output polled so far, run the
    /// TLS handshake on the connection, then call [`SmtpClient::tls_established`]
    /// (or [`SmtpClient::connection_failed`]). Bytes read before the handshake are
    /// dropped by the session (command injection).
    StartTls,
    /// The server waits for the message: [`SmtpClient::push_data`] it in pieces,
    /// then [`SmtpClient::finish_data`].
    SendData,
    /// Every recipient has its outcome (always exactly one `Done` per session).
    Done(Vec<RecipientResult>),
    /// Close the connection once the output polled so far is written.
    Close,
}

/// [`SmtpClient::push_data`] or [`SmtpClient::finish_data`] outside the data phase,
/// or [`SmtpClient::tls_established`] without a `StartTls`: an engine bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SMTP client call out of sequence")]
pub struct OutOfSequence;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// Waiting for the engine's TLS handshake.
    TlsHandshake,
    /// MAIL, RCPT, DATA replies.
    Transaction,
    /// The engine streams the message.
    Data,
    /// `QUIT` sent.
    Quit,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    Dot,
    /// A `.` sent only to end a `354` no recipient wants.
    DotIgnored,
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Extensions {
    pipelining: bool,
    eight_bit_mime: bool,
    starttls: bool,
    /// `SIZE n`; `Some(0)` means no fixed limit.
    size_bytes_max: Option<u64>,
}

impl Extensions {
    fn parse(reply: &SmtpReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines().iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "STARTTLS" => ext.starttls = true,
                "SIZE" => {
                    ext.size_bytes_max =
                        Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                _ => {}
            }
        }
        ext
    }
}

/// One SMTP client connection delivering one envelope. Not `Send`.
#[derive(Debug)]
pub struct SmtpClient {
    config: SmtpClientConfig,
    envelope: Envelope,
    phase: Phase,
    input: LineBuffer,
    assembler: ReplyAssembler,
    output: Vec<u8>,
    events: VecDeque<SmtpClientEvent>,
    expects: VecDeque<Expect>,
    ext: Extensions,
    tls_active: bool,
    results: Vec<Option<RecipientResult>>,
    accepted: Vec<bool>,
    stuffer: Option<DotStuffer>,
    done: bool,
    _not_send: PhantomData<*const ()>,
}

impl SmtpClient {
    /// A session for a fresh connection; it waits for the server's greeting.
    pub fn new(config: SmtpClientConfig, envelope: Envelope) -> Result<SmtpClient, EnvelopeError> {
        check_envelope(&config, &envelope)?;
        let count = envelope.recipients.len();
        Ok(SmtpClient {
            config,
            envelope,
            phase: Phase::Greeting,
            input: LineBuffer::new(SMTP_CLIENT_INPUT_BUFFER_BYTES_MAX),
            assembler: ReplyAssembler::default(),
            output: Vec::new(),
            events: VecDeque::new(),
            expects: VecDeque::new(),
            ext: Extensions::default(),
            tls_active: false,
            results: vec![None; count],
            accepted: vec![false; count],
            stuffer: None,
            done: false,
            _not_send: PhantomData,
        })
    }

    /// How many more bytes [`SmtpClient::handle_input`] takes now.
    pub fn input_room(&self) -> usize {
        self.input.room()
    }

    /// Takes bytes read from the server and acts on every complete reply.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        if matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            return Ok(());
        }
        if bytes.len() > self.input.room() {
            let error = InputError {
                buffered_bytes: self.input.len(),
                offered_bytes: bytes.len(),
            };
            self.abort(Stage::Connect, "server sent more than the client buffers");
            return Err(error);
        }
        self.input.push(bytes);
        while !matches!(self.phase, Phase::Closed | Phase::TlsHandshake) {
            let line = match self.input.next_line(SMTP_CLIENT_REPLY_LINE_BYTES_MAX) {
                Line::NeedMore => break,
                Line::TooLong => Err(ReplyError::LineTooLong),
                Line::Complete(line) => self.assembler.push(&line),
            };
            match line {
                Ok(None) => {}
                Ok(Some(reply)) => self.on_reply(reply),
                Err(e) => {
                    let stage = self.stage();
                    self.abort(stage, &format!("protocol error: {e}"));
                }
            }
        }
        Ok(())
    }

    /// Bytes to write to the server, if any.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The next thing for the engine to do.
    pub fn poll_event(&mut self) -> Option<SmtpClientEvent> {
        self.events.pop_front()
    }

    /// The TLS handshake after [`SmtpClientEvent::StartTls`] succeeded: EHLO again.
    pub fn tls_established(&mut self) -> Result<(), OutOfSequence> {
        if self.phase != Phase::TlsHandshake {
            return Err(OutOfSequence);
        }
        self.tls_active = true;
        self.ext = Extensions::default();
        self.send_ehlo();
        Ok(())
    }

    /// The next piece of the message (after [`SmtpClientEvent::SendData`]), as
    /// stored: CRLF line ends; dot-stuffing is done here.
    pub fn push_data(&mut self, chunk: &[u8]) -> Result<(), OutOfSequence> {
        let stuffer = self.stuffer.as_mut().ok_or(OutOfSequence)?;
        stuffer.push(chunk, &mut self.output);
        Ok(())
    }

    /// Ends the message (`CRLF` if missing, then `.` CRLF).
    pub fn finish_data(&mut self) -> Result<(), OutOfSequence> {
        let stuffer = self.stuffer.take().ok_or(OutOfSequence)?;
        stuffer.finish(&mut self.output);
        self.phase = Phase::Transaction;
        self.expects.push_back(Expect::Dot);
        Ok(())
    }

    /// The server closed the connection: recipients without an outcome are deferred.
    pub fn connection_closed(&mut self) {
        let stage = self.stage();
        self.abort(stage, &format!("connection closed by server at {stage}"));
    }

    /// The connection failed (connect error, timeout, TLS handshake failure, I/O
    /// error): recipients without an outcome are deferred with `reason`.
    pub fn connection_failed(&mut self, reason: &str) {
        let stage = self.stage();
        self.abort(stage, reason);
    }

    /// True once the session asked for the connection to close.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    fn stage(&self) -> Stage {
        match self.phase {
            Phase::Greeting => Stage::Greeting,
            Phase::Ehlo | Phase::Helo => Stage::Ehlo,
            Phase::StartTls | Phase::TlsHandshake => Stage::StartTls,
            Phase::Transaction => match self.expects.front() {
                Some(Expect::Mail) => Stage::Mail,
                Some(Expect::Rcpt(_)) => Stage::Rcpt,
                Some(Expect::Data) => Stage::Data,
                Some(Expect::Dot | Expect::DotIgnored) | None => Stage::Message,
            },
            Phase::Data | Phase::Quit | Phase::Closed => Stage::Message,
        }
    }

    fn on_reply(&mut self, reply: SmtpReply) {
        if reply.code() == 421 && self.phase != Phase::Quit {
            // The server is shutting the channel (RFC 5321 §3.8): no QUIT.
            let stage = self.stage();
            self.resolve_unresolved(&reply, stage);
            self.close();
            return;
        }
        match self.phase {
            Phase::Greeting => self.on_greeting(reply),
            Phase::Ehlo => self.on_ehlo(reply),
            Phase::Helo => self.on_helo(reply),
            Phase::StartTls => self.on_starttls(reply),
            Phase::Transaction => self.on_transaction(reply),
            Phase::Data => self.abort(
                Stage::Data,
                &format!("unexpected reply during data: {reply}"),
            ),
            Phase::Quit => self.close(),
            Phase::TlsHandshake | Phase::Closed => {}
        }
    }

    fn on_greeting(&mut self, reply: SmtpReply) {
        if reply.code() == 220 {
            self.send_ehlo();
        } else {
            // A 5xx greeting refuses this connection, not the message: defer
            // (Postfix's `smtp_skip_5xx_greeting`).
            self.resolve_as(&reply, Stage::Greeting, Outcome::Temporary);
            self.quit();
        }
    }

    fn send_ehlo(&mut self) {
        let line = format!("EHLO {}\r\n", self.config.helo_name);
        self.output.extend_from_slice(line.as_bytes());
        self.phase = Phase::Ehlo;
    }

    fn on_ehlo(&mut self, reply: SmtpReply) {
        if reply.is_positive() {
            self.ext = Extensions::parse(&reply);
            self.after_hello();
        } else if reply.is_transient() {
            self.resolve_unresolved(&reply, Stage::Ehlo);
            self.quit();
        } else {
            let line = format!("HELO {}\r\n", self.config.helo_name);
            self.output.extend_from_slice(line.as_bytes());
            self.phase = Phase::Helo;
        }
    }

    fn on_helo(&mut self, reply: SmtpReply) {
        if reply.is_positive() {
            self.ext = Extensions::default();
            self.after_hello();
        } else {
            self.resolve_unresolved(&reply, Stage::Ehlo);
            self.quit();
        }
    }

    fn after_hello(&mut self) {
        let want_tls = !self.tls_active && self.config.tls != TlsPolicy::Disabled;
        if want_tls && self.ext.starttls {
            self.output.extend_from_slice(b"STARTTLS\r\n");
            self.phase = Phase::StartTls;
        } else if !self.tls_active && self.config.tls == TlsPolicy::Required {
            self.defer_all(
                Stage::StartTls,
                "4.7.0",
                "TLS required but not offered by the server",
            );
        } else {
            self.start_transaction();
        }
    }

    fn on_starttls(&mut self, reply: SmtpReply) {
        if reply.code() == 220 {
            // Anything the server sent after 220 came before TLS: drop it.
            self.input.discard_all();
            self.phase = Phase::TlsHandshake;
            self.events.push_back(SmtpClientEvent::StartTls);
        } else if self.config.tls == TlsPolicy::Required {
            self.defer_all(
                Stage::StartTls,
                "4.7.0",
                &format!("TLS required but STARTTLS was refused: {reply}"),
            );
        } else {
            self.start_transaction();
        }
    }

    fn defer_all(&mut self, stage: Stage, status: &str, diagnostic: &str) {
        self.resolve_synthetic(stage, Outcome::Temporary, status, diagnostic);
        self.quit();
    }

    fn start_transaction(&mut self) {
        self.phase = Phase::Transaction;
        if let (Some(size), Some(max)) = (self.envelope.size_bytes, self.ext.size_bytes_max)
            && max > 0
            && size > max
        {
            let diagnostic =
                format!("message of {size} bytes is over the server's SIZE limit of {max}");
            self.resolve_synthetic(Stage::Mail, Outcome::Permanent, "5.3.4", &diagnostic);
            self.quit();
            return;
        }
        let mut mail = format!("MAIL FROM:<{}>", self.envelope.mail_from);
        if let (Some(size), Some(_)) = (self.envelope.size_bytes, self.ext.size_bytes_max) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if self.envelope.eight_bit && self.ext.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        mail.push_str("\r\n");
        self.output.extend_from_slice(mail.as_bytes());
        self.expects.push_back(Expect::Mail);
        if self.ext.pipelining {
            for index in 0..self.envelope.recipients.len() {
                self.send_rcpt(index);
            }
            self.output.extend_from_slice(b"DATA\r\n");
            self.expects.push_back(Expect::Data);
        }
    }

    fn send_rcpt(&mut self, index: usize) {
        let line = format!("RCPT TO:<{}>\r\n", self.envelope.recipients[index]);
        self.output.extend_from_slice(line.as_bytes());
        self.expects.push_back(Expect::Rcpt(index));
    }

    fn on_transaction(&mut self, reply: SmtpReply) {
        let Some(expect) = self.expects.pop_front() else {
            self.abort(Stage::Message, &format!("unexpected reply: {reply}"));
            return;
        };
        let pipelining = self.ext.pipelining;
        match expect {
            Expect::Mail => {
                if !reply.is_positive() {
                    self.resolve_unresolved(&reply, Stage::Mail);
                } else if !pipelining {
                    self.send_rcpt(0);
                }
            }
            Expect::Rcpt(index) => {
                if self.results[index].is_some() {
                    // Refused already (MAIL failed before this pipelined RCPT).
                } else if reply.is_positive() {
                    self.accepted[index] = true;
                } else {
                    self.results[index] = Some(self.result_of(index, &reply, Stage::Rcpt));
                }
                if !pipelining {
                    if index + 1 < self.envelope.recipients.len() {
                        self.send_rcpt(index + 1);
                    } else if self.accepted.contains(&true) {
                        self.output.extend_from_slice(b"DATA\r\n");
                        self.expects.push_back(Expect::Data);
                    }
                }
            }
            Expect::Data => self.on_data_reply(reply),
            Expect::Dot => {
                let reply = if reply.code() < 300 {
                    reply
                } else {
                    demote_positive(reply)
                };
                self.resolve_unresolved(&reply, Stage::Message);
            }
            Expect::DotIgnored => {}
        }
        if self.phase == Phase::Transaction && self.expects.is_empty() {
            self.quit();
        }
    }

    fn on_data_reply(&mut self, reply: SmtpReply) {
        let wanted = self.accepted.contains(&true) && self.results.iter().any(Option::is_none);
        if reply.code() == 354 && wanted {
            self.phase = Phase::Data;
            self.stuffer = Some(DotStuffer::new());
            self.events.push_back(SmtpClientEvent::SendData);
        } else if reply.code() == 354 {
            // Pipelined DATA although every recipient was refused: end it at once.
            self.output.extend_from_slice(b".\r\n");
            self.expects.push_back(Expect::DotIgnored);
        } else {
            let reply = demote_positive(reply);
            self.resolve_unresolved(&reply, Stage::Data);
        }
    }

    /// The outcome a reply gives: 2xx delivered, 4xx temporary, 5xx permanent.
    fn result_of(&self, index: usize, reply: &SmtpReply, stage: Stage) -> RecipientResult {
        let outcome = match reply.code() {
            200..=399 => Outcome::Delivered,
            400..=499 => Outcome::Temporary,
            _ => Outcome::Permanent,
        };
        RecipientResult {
            recipient: self.envelope.recipients[index].clone(),
            outcome,
            stage,
            reply_code: Some(reply.code()),
            status: reply.status(),
            diagnostic: reply.to_string(),
        }
    }

    /// Gives every recipient still without an outcome the one `reply` says.
    fn resolve_unresolved(&mut self, reply: &SmtpReply, stage: Stage) {
        for index in 0..self.results.len() {
            if self.results[index].is_none() {
                self.results[index] = Some(self.result_of(index, reply, stage));
            }
        }
    }

    /// As `resolve_unresolved`, but with the outcome forced (a 5xx greeting defers).
    fn resolve_as(&mut self, reply: &SmtpReply, stage: Stage, outcome: Outcome) {
        let status = match outcome {
            Outcome::Temporary => format!("4{}", &reply.status()[1..]),
            _ => reply.status(),
        };
        self.resolve_synthetic(stage, outcome, &status, &reply.to_string());
        for result in self.results.iter_mut().flatten() {
            if result.stage == stage {
                result.reply_code = Some(reply.code());
            }
        }
    }

    fn resolve_synthetic(
        &mut self,
        stage: Stage,
        outcome: Outcome,
        status: &str,
        diagnostic: &str,
    ) {
        for (index, slot) in self.results.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = Some(RecipientResult {
                    recipient: self.envelope.recipients[index].clone(),
                    outcome,
                    stage,
                    reply_code: None,
                    status: status.to_owned(),
                    diagnostic: diagnostic.to_owned(),
                });
            }
        }
    }

    /// Ends the session at once: unresolved recipients deferred with `reason`.
    fn abort(&mut self, stage: Stage, reason: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.resolve_synthetic(stage, Outcome::Temporary, "4.4.2", reason);
        self.close();
    }

    /// Reports the results (once) and says `QUIT`.
    fn quit(&mut self) {
        self.report();
        self.output.extend_from_slice(b"QUIT\r\n");
        self.phase = Phase::Quit;
        self.expects.clear();
    }

    fn close(&mut self) {
        self.report();
        self.phase = Phase::Closed;
        self.stuffer = None;
        self.expects.clear();
        self.input.discard_all();
        self.events.push_back(SmtpClientEvent::Close);
    }

    fn report(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        // Every path that ends a session resolves all recipients first; a gap would
        // be a bug here, and deferring is the safe answer to it.
        self.resolve_synthetic(Stage::Message, Outcome::Temporary, "4.0.0", "no outcome");
        let results = self.results.iter().flatten().cloned().collect();
        self.events.push_back(SmtpClientEvent::Done(results));
    }
}

/// A 2xx/3xx where a refusal or a final answer was due (`250` to `DATA`, `354`
/// after the data): the server does not speak SMTP as we do; defer.
fn demote_positive(reply: SmtpReply) -> SmtpReply {
    if reply.code() >= 400 {
        return reply;
    }
    let mut assembler = ReplyAssembler::default();
    let text = format!("451 4.5.0 unexpected reply {reply}");
    match assembler.push(text.as_bytes()) {
        Ok(Some(demoted)) => demoted,
        _ => reply,
    }
}

fn check_envelope(config: &SmtpClientConfig, envelope: &Envelope) -> Result<(), EnvelopeError> {
    let helo_ok = !config.helo_name.is_empty()
        && config.helo_name.len() <= PATH_BYTES_MAX
        && config.helo_name.bytes().all(|b| b.is_ascii_graphic());
    if !helo_ok {
        return Err(EnvelopeError::BadHeloName(config.helo_name.clone()));
    }
    if envelope.recipients.is_empty() {
        return Err(EnvelopeError::NoRecipients);
    }
    if envelope.recipients.len() > SMTP_CLIENT_RECIPIENTS_MAX {
        return Err(EnvelopeError::TooManyRecipients(envelope.recipients.len()));
    }
    let path_ok = |path: &str| {
        path.len() <= PATH_BYTES_MAX
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>'))
    };
    if !envelope.mail_from.is_empty() && !path_ok(&envelope.mail_from) {
        return Err(EnvelopeError::BadAddress(envelope.mail_from.clone()));
    }
    for rcpt in &envelope.recipients {
        if rcpt.is_empty() || !path_ok(rcpt) {
            return Err(EnvelopeError::BadAddress(rcpt.clone()));
        }
    }
    Ok(())
}
