//! The LMTP server session: a state machine over bytes, quinn-proto style.
//!
//! The engine feeds what it reads to [`LmtpSession::handle_input`], writes what
//! [`LmtpSession::poll_output`] returns and acts on [`LmtpSession::poll_event`].
//! Commands are answered in order; while an event waits for its answer
//! (recipient validation, delivery) no further input is parsed, so pipelined
//! commands and the bytes after a `DATA`/`BDAT` boundary stay buffered.

use std::collections::VecDeque;
use std::marker::PhantomData;

use crate::limits::{
    LMTP_ERRORS_MAX, LMTP_INPUT_BUFFER_BYTES_MAX, LMTP_LINE_BYTES_MAX, LMTP_MESSAGE_BYTES_DEFAULT,
    LMTP_RECIPIENTS_MAX,
};
use crate::line::{InputError, Line, LineBuffer};
use crate::lmtp::data::{ChunkDecoder, DotDecoder};
use crate::lmtp::parser::{BodyType, Command, CommandError, MailFrom, parse_command};
use crate::lmtp::reply::Reply;

/// What a session needs to know about its listener. `Clone` and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmtpConfig {
    /// Host name in the greeting and the LHLO answer.
    pub server_name: String,
    /// Largest message accepted (after unstuffing), advertised as `SIZE`.
    pub message_bytes_max: u64,
}

impl Default for LmtpConfig {
    fn default() -> LmtpConfig {
        LmtpConfig {
            server_name: "localhost".to_owned(),
            message_bytes_max: LMTP_MESSAGE_BYTES_DEFAULT,
        }
    }
}

/// Something only the engine can do.
#[derive(Debug, PartialEq, Eq)]
pub enum LmtpEvent {
    /// May this recipient receive mail now? Answer with
    /// [`LmtpSession::recipient_checked`]; nothing further is parsed until then.
    ValidateRecipient {
        /// As sent, source route removed (`local@domain`, or `Postmaster`);
        /// the engine canonicalises it (case, `+subaddress`).
        address: String,
        /// `MAIL FROM … SIZE=`, for the "this message alone exceeds the quota" check.
        mail_size: Option<u64>,
    },
    /// The next piece of the current message (dot-unstuffed, line ends made
    /// CRLF). Append it to the message being received; no answer.
    Data { bytes: Vec<u8> },
    /// The current message is refused (too big, NUL byte) or abandoned (RSET,
    /// LHLO, QUIT, close): drop the `Data` received for it. No `Deliver`
    /// follows for it. Every data phase (from `354` or the first `BDAT` chunk
    /// of a transaction with recipients) ends with exactly one `Deliver` or one
    /// `DiscardData` — except when the client simply disconnects.
    DiscardData,
    /// The message is complete: the `Data` pieces since the last
    /// `Deliver`/`DiscardData` are the whole message (none for an empty one).
    /// Prepend `Return-Path: <mail_from>` CRLF, store it durably for each
    /// recipient, then answer every recipient, in any order, with
    /// [`LmtpSession::recipient_result`].
    Deliver {
        /// The reverse path; empty for `<>` (`Return-Path: <>`).
        mail_from: String,
        /// Accepted recipients, in RCPT order; indices for `recipient_result`.
        recipients: Vec<String>,
        body: BodyType,
        /// Message bytes (the sum of the `Data` pieces).
        size_bytes: u64,
    },
    /// Close the connection once the output polled so far is written. If a
    /// message was being received, its data is dropped (a `DiscardData` came first).
    Close,
}

/// The engine's answer to [`LmtpEvent::ValidateRecipient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientCheck {
    /// `250 2.1.5`: the recipient is added to the transaction.
    Accept,
    /// `550 5.1.1`: no such account or forwarding entry.
    Unknown,
    /// `550 5.2.1`: the account exists but is disabled.
    Disabled,
    /// `452 4.2.2`: the mailbox is over quota now; the MTA retries later.
    OverQuota,
    /// `552 5.2.2`: `SIZE=` alone exceeds the recipient's quota.
    MessageOverQuota,
    /// `451 4.3.0`: the owner shard or the store cannot answer now.
    TemporaryFailure,
    /// Any other refusal, written as given (an accepting 2xx reply is treated
    /// as `Accept` with this text).
    Reply(Reply),
}

/// One LMTP server connection. Not `Send`: it belongs to the shard serving it.
#[derive(Debug)]
pub struct LmtpSession {
    core: Core,
    _not_send: PhantomData<*const ()>,
}

#[derive(Debug)]
enum Phase {
    /// Reading command lines.
    Commands,
    /// A `ValidateRecipient` event waits for its answer.
    Validating {
        address: String,
    },
    /// After `354`: message data up to `CRLF.CRLF`.
    Data(DotDecoder),
    /// Inside a `BDAT` chunk's data.
    Chunk {
        remaining_bytes: u64,
        last: bool,
        /// `Some`: the chunk is refused (no transaction…); it is read and
        /// dropped, then this reply is written.
        refused: Option<Reply>,
    },
    /// A `Deliver` event waits for one reply per recipient.
    Delivering {
        replies: Vec<Option<Reply>>,
        written: usize,
    },
    Closed,
}

/// Why the current message will be refused once its data has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataFailure {
    TooBig,
    Nul,
}

impl DataFailure {
    fn reply(self) -> Reply {
        match self {
            DataFailure::TooBig => Reply::fixed(552, "5.3.4", "Message too big for system"),
            DataFailure::Nul => Reply::fixed(554, "5.6.0", "Message contains NUL bytes"),
        }
    }
}

/// From `MAIL` to the end of the data (or `RSET`).
#[derive(Debug)]
struct Transaction {
    mail: MailFrom,
    recipients: Vec<String>,
    /// RCPT commands sent to validation, accepted or not.
    rcpt_commands: usize,
    /// Message bytes decoded so far.
    size_bytes: u64,
    /// Set by the first `BDAT`; `DATA` is refused after it.
    chunks: Option<ChunkDecoder>,
    failure: Option<DataFailure>,
    /// The data phase began (`354` sent, or a `BDAT` chunk taken): it ends with
    /// exactly one `Deliver` or `DiscardData`.
    data_started: bool,
}

#[derive(Debug)]
struct Core {
    config: LmtpConfig,
    phase: Phase,
    /// The `LHLO` argument, once greeted.
    client: Option<String>,
    transaction: Option<Transaction>,
    /// The sender of the latest accepted `MAIL FROM` (see `LmtpSession::mail_from`).
    sender: String,
    input: LineBuffer,
    output: Vec<u8>,
    events: VecDeque<LmtpEvent>,
    errors: u32,
}

impl LmtpSession {
    /// A new connection; the `220` greeting is queued as output.
    pub fn new(config: LmtpConfig) -> LmtpSession {
        let mut core = Core {
            config,
            phase: Phase::Commands,
            client: None,
            transaction: None,
            sender: String::new(),
            input: LineBuffer::new(LMTP_INPUT_BUFFER_BYTES_MAX),
            output: Vec::new(),
            events: VecDeque::new(),
            errors: 0,
        };
        let greeting = format!("220 {} LMTP msgstore ready", core.config.server_name);
        core.line(&greeting);
        LmtpSession {
            core,
            _not_send: PhantomData,
        }
    }

    /// Takes bytes read from the client and answers every complete command,
    /// stopping while an event waits for its answer (later bytes stay
    /// buffered). Fails only when the unparsed input would pass
    /// `LMTP_INPUT_BUFFER_BYTES_MAX`; the session then says `421` and closes.
    /// Input after close is ignored.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), InputError> {
        self.core.handle_input(data)
    }

    /// All output queued so far, in order, as one buffer to write.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.core.output.is_empty()).then(|| std::mem::take(&mut self.core.output))
    }

    /// The next thing the engine must do.
    pub fn poll_event(&mut self) -> Option<LmtpEvent> {
        self.core.events.pop_front()
    }

    /// Answers the outstanding [`LmtpEvent::ValidateRecipient`] and resumes
    /// parsing. Without one outstanding this is an engine bug (ignored).
    pub fn recipient_checked(&mut self, check: RecipientCheck) {
        self.core.recipient_checked(check);
    }

    /// The delivery outcome for recipient `index` of the outstanding
    /// [`LmtpEvent::Deliver`]. Replies are written in recipient order as soon
    /// as all earlier ones are known; after the last, parsing resumes. An index
    /// out of range or answered twice is an engine bug (ignored).
    pub fn recipient_result(&mut self, index: usize, reply: Reply) {
        self.core.recipient_result(index, reply);
    }

    /// How many bytes `handle_input` can take now without failing.
    pub fn input_room(&self) -> usize {
        match self.core.phase {
            Phase::Closed => 0,
            _ => self.core.input.room(),
        }
    }

    /// The `LHLO` name the client gave, once it has.
    pub fn client_name(&self) -> Option<&str> {
        self.core.client.as_deref()
    }

    /// The sender (empty for `<>`) of the latest accepted `MAIL FROM`. Input stops
    /// while an event waits for its answer, so when the engine takes an
    /// [`LmtpEvent::Data`] this is the sender of that data's transaction — also when
    /// the data's end was read with it and the transaction is over: the engine starts
    /// the stored message (its `Return-Path:` line) with the first piece.
    pub fn mail_from(&self) -> &str {
        &self.core.sender
    }

    /// True once [`LmtpEvent::Close`] has been queued.
    pub fn is_closed(&self) -> bool {
        matches!(self.core.phase, Phase::Closed)
    }
}

impl Core {
    fn handle_input(&mut self, mut data: &[u8]) -> Result<(), InputError> {
        loop {
            if matches!(self.phase, Phase::Closed) {
                return Ok(());
            }
            let (now, later) = data.split_at(data.len().min(self.input.room()));
            self.input.push(now);
            data = later;
            self.process();
            if data.is_empty() {
                return Ok(());
            }
            if self.input.room() == 0 && !matches!(self.phase, Phase::Closed) {
                let error = InputError {
                    buffered_bytes: self.input.len(),
                    offered_bytes: data.len(),
                };
                self.close_with("421 4.7.0 Too much pipelined input, closing connection");
                return Err(error);
            }
        }
    }

    /// Works through buffered input until it runs out, an event waits, or close.
    fn process(&mut self) {
        loop {
            let progressed = match self.phase {
                Phase::Commands => match self.input.next_line(LMTP_LINE_BYTES_MAX) {
                    Line::NeedMore => false,
                    Line::TooLong => {
                        self.refuse(&Reply::fixed(500, "5.5.2", "Line too long"));
                        true
                    }
                    Line::Complete(line) => {
                        self.command(&line);
                        true
                    }
                },
                Phase::Data(_) => self.data(),
                Phase::Chunk { .. } => self.chunk(),
                Phase::Validating { .. } | Phase::Delivering { .. } | Phase::Closed => false,
            };
            if !progressed {
                return;
            }
        }
    }

    fn command(&mut self, line: &[u8]) {
        let command = match parse_command(line, self.config.message_bytes_max) {
            Ok(command) => command,
            Err(CommandError {
                reply,
                counts_as_error,
            }) => {
                return if counts_as_error {
                    self.refuse(&reply)
                } else {
                    self.reply(&reply)
                };
            }
        };
        match command {
            Command::Lhlo { client } => self.lhlo(client),
            Command::Mail(mail) => self.mail(mail),
            Command::Rcpt { address } => self.rcpt(address),
            Command::Data => self.data_command(),
            Command::Bdat { size_bytes, last } => self.bdat(size_bytes, last),
            Command::Rset => {
                self.abandon_transaction();
                self.reply(&Reply::fixed(250, "2.0.0", "Ok"));
            }
            Command::Noop => self.reply(&Reply::fixed(250, "2.0.0", "Ok")),
            Command::Quit => {
                self.line("221 2.0.0 Bye");
                self.close();
            }
            // Refused rather than `252`: VRFY/EXPN would let anyone who reaches
            // the port enumerate accounts, and RCPT already tells the MTA.
            Command::Vrfy => self.reply(&Reply::fixed(502, "5.5.1", "VRFY is not supported")),
            Command::Expn => self.reply(&Reply::fixed(502, "5.5.1", "EXPN is not supported")),
            Command::Help => self.reply(&Reply::fixed(
                214,
                "2.0.0",
                "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT",
            )),
            Command::SmtpGreeting => self.refuse(&Reply::fixed(
                500,
                "5.5.1",
                "This is LMTP (RFC 2033): use LHLO",
            )),
        }
    }

    fn lhlo(&mut self, client: String) {
        self.abandon_transaction();
        self.client = Some(client);
        let lines = [
            self.config.server_name.clone(),
            "PIPELINING".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "8BITMIME".to_owned(),
            format!("SIZE {}", self.config.message_bytes_max),
            "CHUNKING".to_owned(),
        ];
        for (index, text) in lines.iter().enumerate() {
            let separator = if index + 1 == lines.len() { ' ' } else { '-' };
            self.line(&format!("250{separator}{text}"));
        }
        self.errors = 0;
    }

    fn mail(&mut self, mail: MailFrom) {
        if self.client.is_none() {
            return self.refuse(&Reply::fixed(503, "5.5.1", "Send LHLO first"));
        }
        if self.transaction.is_some() {
            return self.refuse(&Reply::fixed(503, "5.5.1", "Nested MAIL command"));
        }
        self.sender.clone_from(&mail.address);
        self.transaction = Some(Transaction {
            mail,
            recipients: Vec::new(),
            rcpt_commands: 0,
            size_bytes: 0,
            chunks: None,
            failure: None,
            data_started: false,
        });
        self.reply(&Reply::fixed(250, "2.1.0", "Sender ok"));
    }

    fn rcpt(&mut self, address: String) {
        let Some(transaction) = self.transaction.as_mut() else {
            return self.refuse(&Reply::fixed(503, "5.5.1", "Send MAIL first"));
        };
        if transaction.chunks.is_some() {
            return self.refuse(&Reply::fixed(503, "5.5.1", "RCPT after BDAT"));
        }
        if transaction.rcpt_commands >= LMTP_RECIPIENTS_MAX {
            // RFC 5321 §4.5.3.1.10: 452, the client sends the rest later.
            return self.reply(&Reply::fixed(452, "4.5.3", "Too many recipients"));
        }
        transaction.rcpt_commands += 1;
        self.events.push_back(LmtpEvent::ValidateRecipient {
            address: address.clone(),
            mail_size: transaction.mail.size_bytes,
        });
        self.phase = Phase::Validating { address };
    }

    fn recipient_checked(&mut self, check: RecipientCheck) {
        if !matches!(self.phase, Phase::Validating { .. }) {
            debug_assert!(
                matches!(self.phase, Phase::Closed),
                "recipient_checked without ValidateRecipient"
            );
            return;
        }
        let Phase::Validating { address } = std::mem::replace(&mut self.phase, Phase::Commands)
        else {
            return;
        };
        let reply = match check {
            RecipientCheck::Accept => Reply::fixed(250, "2.1.5", "Recipient ok"),
            RecipientCheck::Unknown => {
                Reply::fixed(550, "5.1.1", &format!("<{address}> User unknown"))
            }
            RecipientCheck::Disabled => {
                Reply::fixed(550, "5.2.1", &format!("<{address}> Mailbox disabled"))
            }
            RecipientCheck::OverQuota => {
                Reply::fixed(452, "4.2.2", &format!("<{address}> Mailbox is over quota"))
            }
            RecipientCheck::MessageOverQuota => Reply::fixed(
                552,
                "5.2.2",
                &format!("<{address}> Message is larger than the mailbox quota"),
            ),
            RecipientCheck::TemporaryFailure => Reply::fixed(
                451,
                "4.3.0",
                &format!("<{address}> Temporary failure, try again later"),
            ),
            RecipientCheck::Reply(reply) => reply,
        };
        if reply.is_positive()
            && let Some(transaction) = self.transaction.as_mut()
        {
            transaction.recipients.push(address);
        }
        self.reply(&reply);
        self.process();
    }

    /// Refusal of `DATA`/`BDAT` for the state of the transaction, if any.
    fn data_refusal(&self) -> Option<Reply> {
        match &self.transaction {
            _ if self.client.is_none() => Some(Reply::fixed(503, "5.5.1", "Send LHLO first")),
            None => Some(Reply::fixed(503, "5.5.1", "Send MAIL first")),
            // RFC 2033 §4.2: no successful RCPT, DATA gets 503.
            Some(transaction) if transaction.recipients.is_empty() => {
                Some(Reply::fixed(503, "5.5.1", "No valid recipients"))
            }
            Some(_) => None,
        }
    }

    fn data_command(&mut self) {
        if let Some(reply) = self.data_refusal() {
            return self.refuse(&reply);
        }
        if self
            .transaction
            .as_ref()
            .is_some_and(|transaction| transaction.chunks.is_some())
        {
            return self.refuse(&Reply::fixed(503, "5.5.1", "DATA not allowed after BDAT"));
        }
        self.line("354 Start mail input; end with <CRLF>.<CRLF>");
        self.errors = 0;
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.data_started = true;
        }
        self.phase = Phase::Data(DotDecoder::new());
    }

    fn bdat(&mut self, size_bytes: u64, last: bool) {
        // The chunk's bytes follow whatever we answer: they are always read.
        let refused = self.data_refusal();
        if refused.is_none() {
            let message_bytes_max = self.config.message_bytes_max;
            if let Some(transaction) = self.transaction.as_mut() {
                transaction.chunks.get_or_insert_with(ChunkDecoder::new);
                transaction.data_started = true;
                // Decoding only grows data, so the announced size settles it.
                if transaction.size_bytes.saturating_add(size_bytes) > message_bytes_max {
                    self.fail_message(DataFailure::TooBig);
                }
            }
        }
        self.phase = Phase::Chunk {
            remaining_bytes: size_bytes,
            last,
            refused,
        };
    }

    /// Decodes buffered `DATA` bytes. False when there are none.
    fn data(&mut self) -> bool {
        let Phase::Data(decoder) = &mut self.phase else {
            return false;
        };
        let input = self.input.peek();
        if input.is_empty() {
            return false;
        }
        // Decoded data is at most the input plus a CR per bare LF: rarely more.
        let mut bytes = Vec::with_capacity(input.len());
        let decoded = decoder.decode(input, &mut bytes);
        let nul = decoder.saw_nul();
        self.input.consume(decoded.consumed);
        self.message_bytes(bytes, nul);
        if decoded.ended {
            self.end_of_data();
        }
        true
    }

    /// Reads buffered bytes of a `BDAT` chunk. False when it needs more.
    fn chunk(&mut self) -> bool {
        let Phase::Chunk {
            remaining_bytes,
            last,
            refused,
        } = &mut self.phase
        else {
            return false;
        };
        let input = self.input.peek();
        let take = usize::try_from(*remaining_bytes).map_or(input.len(), |r| r.min(input.len()));
        if take == 0 && *remaining_bytes > 0 {
            return false;
        }
        *remaining_bytes -= take as u64;
        let done = *remaining_bytes == 0;
        let (last, refused) = (*last, refused.take());
        let mut bytes = Vec::new();
        let mut nul = false;
        if refused.is_none()
            && let Some(transaction) = self.transaction.as_mut()
            // Still decoded when too big: a later NUL turns the answer into 554.
            && transaction.failure != Some(DataFailure::Nul)
            && let Some(decoder) = transaction.chunks.as_mut()
        {
            decoder.decode(&input[..take], &mut bytes);
            if done && last {
                decoder.finish(&mut bytes);
            }
            nul = decoder.saw_nul();
        }
        self.input.consume(take);
        if !done {
            if let Phase::Chunk { refused: slot, .. } = &mut self.phase {
                *slot = refused;
            }
            self.message_bytes(bytes, nul);
            return true;
        }
        self.phase = Phase::Commands;
        if let Some(reply) = refused {
            self.refuse(&reply);
            return true;
        }
        self.message_bytes(bytes, nul);
        if last {
            self.end_of_data();
        } else {
            let failure = self.transaction.as_ref().and_then(|t| t.failure);
            match failure {
                Some(failure) => self.reply(&failure.reply()),
                None => {
                    let size = self.transaction.as_ref().map_or(0, |t| t.size_bytes);
                    let text = format!("{size} octets received");
                    self.reply(&Reply::fixed(250, "2.0.0", &text));
                }
            }
        }
        true
    }

    /// Accounts decoded message bytes: streamed out, or dropped once the
    /// message is refused.
    fn message_bytes(&mut self, bytes: Vec<u8>, nul: bool) {
        let message_bytes_max = self.config.message_bytes_max;
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if let Some(failure) = transaction.failure {
            // A NUL anywhere refuses the message as 554 even when it was already
            // too big: the answer must not depend on where reads split the data.
            if nul && failure == DataFailure::TooBig {
                transaction.failure = Some(DataFailure::Nul);
            }
            return;
        }
        transaction.size_bytes = transaction.size_bytes.saturating_add(bytes.len() as u64);
        if nul {
            self.fail_message(DataFailure::Nul);
        } else if transaction.size_bytes > message_bytes_max {
            self.fail_message(DataFailure::TooBig);
        } else if !bytes.is_empty() {
            self.events.push_back(LmtpEvent::Data { bytes });
        }
    }

    fn fail_message(&mut self, failure: DataFailure) {
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if transaction.failure.is_none() {
            debug_assert!(transaction.data_started);
            transaction.failure = Some(failure);
            self.events.push_back(LmtpEvent::DiscardData);
        }
    }

    /// The data ended (`CRLF.CRLF` or `BDAT … LAST`): deliver, or refuse it
    /// for every recipient.
    fn end_of_data(&mut self) {
        self.phase = Phase::Commands;
        let Some(transaction) = self.transaction.take() else {
            return;
        };
        self.errors = 0;
        if let Some(failure) = transaction.failure {
            for _ in &transaction.recipients {
                self.reply(&failure.reply());
            }
            return;
        }
        self.phase = Phase::Delivering {
            replies: vec![None; transaction.recipients.len()],
            written: 0,
        };
        self.events.push_back(LmtpEvent::Deliver {
            mail_from: transaction.mail.address,
            recipients: transaction.recipients,
            body: transaction.mail.body,
            size_bytes: transaction.size_bytes,
        });
    }

    fn recipient_result(&mut self, index: usize, reply: Reply) {
        let Phase::Delivering { replies, written } = &mut self.phase else {
            debug_assert!(
                matches!(self.phase, Phase::Closed),
                "recipient_result without Deliver"
            );
            return;
        };
        let Some(slot @ None) = replies.get_mut(index) else {
            debug_assert!(false, "recipient_result({index}) out of range or repeated");
            return;
        };
        *slot = Some(reply);
        let mut ready = Vec::new();
        while let Some(Some(reply)) = replies.get_mut(*written).map(Option::take) {
            ready.push(reply);
            *written += 1;
        }
        let finished = *written == replies.len();
        for reply in &ready {
            reply.write_to(&mut self.output);
        }
        if finished {
            self.phase = Phase::Commands;
            self.process();
        }
    }

    /// Ends the transaction; its streamed data is dropped.
    fn abandon_transaction(&mut self) {
        if let Some(transaction) = self.transaction.take()
            && transaction.data_started
            && transaction.failure.is_none()
        {
            self.events.push_back(LmtpEvent::DiscardData);
        }
    }

    /// A reply that does not count as an error; a 2xx resets the count.
    fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
        if reply.is_positive() {
            self.errors = 0;
        }
    }

    /// A refused command: counts toward `LMTP_ERRORS_MAX`.
    fn refuse(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
        self.errors += 1;
        if self.errors >= LMTP_ERRORS_MAX {
            self.close_with("421 4.7.0 Too many errors, closing connection");
        }
    }

    /// One line of our own text; control characters (from configuration)
    /// become spaces so nothing can end a line early.
    fn line(&mut self, text: &str) {
        self.output.extend(
            text.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
        self.output.extend_from_slice(b"\r\n");
    }

    fn close_with(&mut self, text: &str) {
        if !matches!(self.phase, Phase::Closed) {
            self.line(text);
            self.close();
        }
    }

    fn close(&mut self) {
        self.abandon_transaction();
        self.phase = Phase::Closed;
        self.input.discard_all();
        self.events.push_back(LmtpEvent::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(message_bytes_max: u64) -> LmtpSession {
        let mut session = LmtpSession::new(LmtpConfig {
            server_name: "mx.example".into(),
            message_bytes_max,
        });
        session.poll_output();
        session
    }

    fn text(session: &mut LmtpSession) -> String {
        String::from_utf8_lossy(&session.poll_output().unwrap_or_default()).into_owned()
    }

    #[test]
    fn mail_from_is_the_datas_sender() {
        let mut s = session(1000);
        s.handle_input(b"LHLO a\r\nMAIL FROM:<a@x> SIZE=12\r\nRCPT TO:<r@x>\r\nDATA\r\n")
            .expect("fits");
        assert!(matches!(
            s.poll_event(),
            Some(LmtpEvent::ValidateRecipient { .. })
        ));
        s.recipient_checked(RecipientCheck::Accept);
        // The whole message and the next transaction in one read: the data's events
        // still see their own sender, the next MAIL waits for the delivery's answer.
        s.handle_input(b"hi\r\n.\r\nMAIL FROM:<b@x>\r\n")
            .expect("fits");
        assert!(matches!(s.poll_event(), Some(LmtpEvent::Data { .. })));
        assert_eq!(s.mail_from(), "a@x");
        assert!(matches!(s.poll_event(), Some(LmtpEvent::Deliver { .. })));
        assert_eq!(s.mail_from(), "a@x");
        s.recipient_result(0, Reply::delivered());
        s.handle_input(b"").expect("fits");
        assert_eq!(s.mail_from(), "b@x");
        s.handle_input(b"RSET\r\nMAIL FROM:<>\r\n").expect("fits");
        assert_eq!(s.mail_from(), "");
    }

    #[test]
    fn replies_are_written_in_recipient_order() {
        let mut s = session(1000);
        s.handle_input(b"LHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
            .expect("fits");
        for _ in 0..2 {
            assert!(matches!(
                s.poll_event(),
                Some(LmtpEvent::ValidateRecipient { .. })
            ));
            s.recipient_checked(RecipientCheck::Accept);
        }
        s.handle_input(b"hi\r\n.\r\nNOOP\r\n").expect("fits");
        assert_eq!(
            s.poll_event(),
            Some(LmtpEvent::Data {
                bytes: b"hi\r\n".to_vec()
            })
        );
        assert!(matches!(
            s.poll_event(),
            Some(LmtpEvent::Deliver { size_bytes: 4, .. })
        ));
        text(&mut s);
        s.recipient_result(1, Reply::temporary_failure());
        assert_eq!(text(&mut s), "");
        s.recipient_result(0, Reply::delivered());
        assert_eq!(
            text(&mut s),
            "250 2.0.0 Delivered\r\n451 4.3.0 Temporary failure, try again later\r\n250 2.0.0 Ok\r\n"
        );
    }

    #[test]
    fn flood_while_validating_closes_with_421() {
        let mut s = session(1000);
        s.handle_input(b"LHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<a@x>\r\n")
            .expect("fits");
        let flood = vec![b'x'; LMTP_INPUT_BUFFER_BYTES_MAX + 1];
        assert!(s.handle_input(&flood).is_err());
        assert!(
            text(&mut s).ends_with("421 4.7.0 Too much pipelined input, closing connection\r\n")
        );
        assert!(matches!(
            s.poll_event(),
            Some(LmtpEvent::ValidateRecipient { .. })
        ));
        assert_eq!(s.poll_event(), Some(LmtpEvent::Close));
        s.recipient_checked(RecipientCheck::Accept);
        assert_eq!(s.poll_output(), None);
    }
}
