//! Replays every `tests/transcripts/lmtp/*.txt` against [`LmtpSession`], twice:
//! each client packet fed as one chunk, and fed one byte at a time (polling
//! output after every byte). Both runs must produce exactly the `S:` lines and
//! the same events. A proptest then checks that random input never panics.
//!
//! Transcript format, one item per line:
//!
//! ```text
//! # comment (blank lines are ignored too)
//! O: message-max 100         option: LmtpConfig::message_bytes_max
//! O: auto-accept             option: every ValidateRecipient is answered Accept
//!                            by the runner (no E: lines needed for them)
//! C: MAIL FROM:<a@b>         client line; CRLF is appended. Consecutive C: lines
//!                            are sent as ONE packet; any other line splits packets
//! S: 250 2.1.0 Sender ok     expected server line (CRLF appended), checked in order
//!                            before the next C:/E: item and at the end
//! D: Subject: hi             expected message line (CRLF appended) of the Data
//!                            events, checked at the next deliver/discard and at the end
//! E: rcpt bob@x [SIZE]       next event is ValidateRecipient{bob@x, mail_size}
//! E: accept | unknown | disabled | over-quota | message-over-quota | temp-fail
//!                            the engine's RecipientCheck answer
//! E: deliver FROM R1,R2 N [8bitmime]   next event (after Data) is Deliver;
//!                            FROM `<>` is the null sender; N = size_bytes
//! E: discard                 next event (after Data) is DiscardData; the D: lines
//!                            must be a prefix of what was streamed (how much more
//!                            streamed before a refusal depends on the read sizes)
//! E: result I CODE X.Y.Z TEXT…         recipient_result(I, Reply)
//! E: close                   next event is Close
//! ```
//!
//! In C:, S:, D: and E: text, `<<N*TEXT>>` stands for TEXT repeated N times
//! (TEXT may hold macros), `<<xHH>>` for the byte 0xHH and `<<crlf>>` for CRLF;
//! a C: or D: line ending in `<<no-crlf>>` has no CRLF appended. At the end
//! every event must have been claimed by an `E:` line.

mod common;
use common::*;

use std::collections::VecDeque;
use std::fmt::Write as _;

use proptest::prelude::*;
use protocols::lmtp::{BodyType, LmtpConfig, LmtpEvent, LmtpSession, RecipientCheck, Reply};

#[derive(Debug)]
enum Step {
    Client(Vec<u8>),
    Server(Vec<u8>),
    Message(Vec<u8>),
    ExpectRcpt {
        address: String,
        mail_size: Option<u64>,
    },
    Check(RecipientCheck),
    ExpectDeliver {
        mail_from: String,
        recipients: Vec<String>,
        size_bytes: u64,
        body: BodyType,
    },
    ExpectDiscard,
    Result(usize, Reply),
    ExpectClose,
}

struct Transcript {
    message_bytes_max: u64,
    auto_accept: bool,
    steps: Vec<(usize, Step)>,
}

fn parse_event(body: &str) -> Result<Step, String> {
    let words: Vec<&str> = body.split(' ').collect();
    let address = |word: &str| {
        if word == "<>" {
            String::new()
        } else {
            word.to_owned()
        }
    };
    let number = |word: &str| word.parse::<u64>().map_err(|e| format!("{word:?}: {e}"));
    Ok(match words.as_slice() {
        ["rcpt", rcpt] => Step::ExpectRcpt {
            address: (*rcpt).to_owned(),
            mail_size: None,
        },
        ["rcpt", rcpt, size] => Step::ExpectRcpt {
            address: (*rcpt).to_owned(),
            mail_size: Some(number(size)?),
        },
        ["accept"] => Step::Check(RecipientCheck::Accept),
        ["unknown"] => Step::Check(RecipientCheck::Unknown),
        ["disabled"] => Step::Check(RecipientCheck::Disabled),
        ["over-quota"] => Step::Check(RecipientCheck::OverQuota),
        ["message-over-quota"] => Step::Check(RecipientCheck::MessageOverQuota),
        ["temp-fail"] => Step::Check(RecipientCheck::TemporaryFailure),
        ["deliver", from, recipients, size, rest @ ..] => Step::ExpectDeliver {
            mail_from: address(from),
            recipients: recipients.split(',').map(str::to_owned).collect(),
            size_bytes: number(size)?,
            body: match rest {
                [] => BodyType::SevenBit,
                ["8bitmime"] => BodyType::EightBitMime,
                _ => return Err(format!("bad deliver {body:?}")),
            },
        },
        ["discard"] => Step::ExpectDiscard,
        ["result", index, code, status, text @ ..] => {
            let code = u16::try_from(number(code)?).map_err(|e| e.to_string())?;
            let reply = Reply::new(code, status, &text.join(" ")).map_err(|e| e.to_string())?;
            Step::Result(number(index)? as usize, reply)
        }
        ["close"] => Step::ExpectClose,
        _ => return Err(format!("unknown event line {body:?}")),
    })
}

fn parse_transcript(text: &str) -> Result<Transcript, String> {
    let mut transcript = Transcript {
        message_bytes_max: 64 * 1024 * 1024,
        auto_accept: false,
        steps: Vec::new(),
    };
    let mut previous_was_client = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| format!("line {number}: {message}");
        let (kind, body) = match line.split_once(':') {
            Some((kind @ ("C" | "S" | "D" | "E" | "O"), body)) => {
                (kind, body.strip_prefix(' ').unwrap_or(body))
            }
            _ if line.trim().is_empty() || line.starts_with('#') => {
                previous_was_client = false;
                continue;
            }
            _ => return Err(fail(format!("unknown line {line:?}"))),
        };
        let step = match kind {
            "C" => {
                let bytes = line_bytes(body).map_err(fail)?;
                if previous_was_client
                    && let Some((_, Step::Client(packet))) = transcript.steps.last_mut()
                {
                    packet.extend(bytes);
                    continue;
                }
                Step::Client(bytes)
            }
            "S" => Step::Server(line_bytes(body).map_err(fail)?),
            "D" => Step::Message(line_bytes(body).map_err(fail)?),
            "E" => parse_event(body).map_err(fail)?,
            _ => {
                match body.split_once(' ') {
                    Some(("message-max", size)) => {
                        transcript.message_bytes_max =
                            size.parse().map_err(|e| fail(format!("{e}")))?;
                    }
                    None if body == "auto-accept" => transcript.auto_accept = true,
                    _ => return Err(fail(format!("unknown option {line:?}"))),
                }
                previous_was_client = false;
                continue;
            }
        };
        previous_was_client = kind == "C";
        transcript.steps.push((number, step));
    }
    Ok(transcript)
}

struct Runner {
    session: LmtpSession,
    auto_accept: bool,
    /// Events polled but not yet claimed by an E: line.
    pending: VecDeque<LmtpEvent>,
    actual: Vec<u8>,
    expected: Vec<u8>,
    message: Vec<u8>,
    expected_message: Vec<u8>,
}

impl Runner {
    fn drain(&mut self) {
        loop {
            while let Some(bytes) = self.session.poll_output() {
                assert!(bytes.ends_with(b"\r\n"), "partial line {bytes:?}");
                self.actual.extend(bytes);
            }
            match self.session.poll_event() {
                Some(LmtpEvent::ValidateRecipient { .. }) if self.auto_accept => {
                    self.session.recipient_checked(RecipientCheck::Accept);
                }
                Some(LmtpEvent::Data { bytes }) => self.message.extend(bytes),
                Some(event) => self.pending.push_back(event),
                None => return,
            }
        }
    }

    fn check_output(&mut self, line: usize) -> Result<(), String> {
        self.drain();
        if self.actual == self.expected {
            return Ok(());
        }
        Err(format!(
            "output differs before line {line}\n  expected:\n{}  actual:\n{}",
            show(&self.expected),
            show(&self.actual)
        ))
    }

    fn check_message(&mut self, line: usize) -> Result<(), String> {
        if self.message == self.expected_message {
            self.message.clear();
            self.expected_message.clear();
            return Ok(());
        }
        Err(format!(
            "message data differs at line {line}\n  expected:\n{}  actual:\n{}",
            show(&self.expected_message),
            show(&self.message)
        ))
    }

    fn feed(&mut self, packet: &[u8], feed: Feed) -> Result<(), String> {
        let pieces: Vec<&[u8]> = match feed {
            Feed::Chunk => vec![packet],
            Feed::ByteByByte => packet.chunks(1).collect(),
        };
        for piece in pieces {
            self.session
                .handle_input(piece)
                .map_err(|e| e.to_string())?;
            self.drain();
        }
        Ok(())
    }

    fn next_event(&mut self) -> Option<LmtpEvent> {
        self.drain();
        self.pending.pop_front()
    }

    fn step(&mut self, step: &Step, line: usize, feed: Feed) -> Result<(), String> {
        if !matches!(step, Step::Server(_) | Step::Message(_)) {
            self.check_output(line)?;
        }
        let unexpected = |what: &str, got: Option<LmtpEvent>| {
            Err(format!("line {line}: expected {what}, got {got:?}"))
        };
        match step {
            Step::Server(bytes) => self.expected.extend_from_slice(bytes),
            Step::Message(bytes) => self.expected_message.extend_from_slice(bytes),
            Step::Client(packet) => self.feed(packet, feed)?,
            Step::ExpectRcpt { address, mail_size } => match self.next_event() {
                Some(LmtpEvent::ValidateRecipient {
                    address: a,
                    mail_size: s,
                }) if &a == address && &s == mail_size => {}
                other => return unexpected("ValidateRecipient", other),
            },
            Step::Check(check) => self.session.recipient_checked(check.clone()),
            Step::ExpectDeliver {
                mail_from,
                recipients,
                size_bytes,
                body,
            } => {
                let event = self.next_event();
                let expected = LmtpEvent::Deliver {
                    mail_from: mail_from.clone(),
                    recipients: recipients.clone(),
                    body: *body,
                    size_bytes: *size_bytes,
                };
                if event.as_ref() != Some(&expected) {
                    return unexpected(&format!("{expected:?}"), event);
                }
                self.check_message(line)?;
            }
            Step::ExpectDiscard => match self.next_event() {
                Some(LmtpEvent::DiscardData) => {
                    // How much streamed before the refusal depends on read sizes.
                    if self.message.starts_with(&self.expected_message) {
                        self.message.truncate(self.expected_message.len());
                    }
                    self.check_message(line)?;
                }
                other => return unexpected("DiscardData", other),
            },
            Step::Result(index, reply) => self.session.recipient_result(*index, reply.clone()),
            Step::ExpectClose => match self.next_event() {
                Some(LmtpEvent::Close) => assert!(self.session.is_closed()),
                other => return unexpected("Close", other),
            },
        }
        Ok(())
    }
}

fn run(transcript: &Transcript, feed: Feed) -> Result<(), String> {
    let config = LmtpConfig {
        server_name: "lmtp.example.net".into(),
        message_bytes_max: transcript.message_bytes_max,
    };
    let mut runner = Runner {
        session: LmtpSession::new(config),
        auto_accept: transcript.auto_accept,
        pending: VecDeque::new(),
        actual: Vec::new(),
        expected: Vec::new(),
        message: Vec::new(),
        expected_message: Vec::new(),
    };
    for (line, step) in &transcript.steps {
        runner.step(step, *line, feed)?;
    }
    runner.check_output(usize::MAX)?;
    runner.check_message(usize::MAX)?;
    match runner.pending.pop_front() {
        None => Ok(()),
        Some(event) => Err(format!("unclaimed event at the end: {event:?}")),
    }
}

#[test]
fn lmtp_transcripts() {
    let files = transcript_files("lmtp");
    assert!(files.len() >= 10, "transcripts missing: {files:?}");
    let mut failures = String::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable transcript");
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let transcript = match parse_transcript(&text) {
            Ok(transcript) => transcript,
            Err(error) => {
                let _ = writeln!(failures, "{name}: {error}");
                continue;
            }
        };
        for feed in [Feed::Chunk, Feed::ByteByByte] {
            if let Err(error) = run(&transcript, feed) {
                let _ = writeln!(failures, "{name} ({feed:?}): {error}");
            }
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

/// Pieces that reach the interesting corners of the parser and data decoders.
const TOKENS: &[&[u8]] = &[
    b"LHLO mx\r\n",
    b"MAIL FROM:<a@b.example>",
    b"MAIL FROM:<>",
    b" SIZE=100",
    b" BODY=8BITMIME",
    b"RCPT TO:<bob@example.net>\r\n",
    b"DATA\r\n",
    b"BDAT ",
    b"3",
    b"12",
    b" LAST",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"\r\n.\r\n",
    b"..",
    b".",
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"\xff",
    b" ",
    b"<",
    b">",
];

fn input_strategy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..150).prop_map(|pieces| pieces.concat())
}

/// Feeds `input` in reads of the given sizes (cycled), answering every event
/// at once with answers cycled from `answers`. Returns what the server wrote
/// and the events it raised (Data pieces joined), for comparison.
fn drive(input: &[u8], read_sizes: &[usize], answers: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut session = LmtpSession::new(LmtpConfig {
        server_name: "mx".into(),
        message_bytes_max: 64,
    });
    let mut written = Vec::new();
    let mut events = Vec::new();
    let mut message = Vec::new();
    let mut answer = answers.iter().copied().cycle();
    let mut rest = input;
    let mut sizes = read_sizes.iter().copied().cycle();
    let mut read = &input[..0];
    loop {
        if session.handle_input(read).is_err() {
            assert!(session.is_closed());
        }
        loop {
            while let Some(output) = session.poll_output() {
                assert!(output.ends_with(b"\r\n"), "partial line {output:?}");
                written.extend(output);
            }
            let Some(event) = session.poll_event() else {
                break;
            };
            match &event {
                LmtpEvent::Data { bytes } => {
                    message.extend_from_slice(bytes);
                    assert!(message.len() <= 64, "data past the limit streamed");
                    continue;
                }
                LmtpEvent::ValidateRecipient { .. } => {
                    let check = match answer.next().unwrap_or(0) % 4 {
                        0 | 1 => RecipientCheck::Accept,
                        2 => RecipientCheck::Unknown,
                        _ => RecipientCheck::OverQuota,
                    };
                    session.recipient_checked(check);
                }
                LmtpEvent::Deliver {
                    recipients,
                    size_bytes,
                    ..
                } => {
                    assert_eq!(*size_bytes, message.len() as u64);
                    assert!(!recipients.is_empty());
                    for index in (0..recipients.len()).rev() {
                        session.recipient_result(index, Reply::delivered());
                    }
                }
                LmtpEvent::DiscardData | LmtpEvent::Close => {}
            }
            if matches!(event, LmtpEvent::DiscardData) {
                // How much was streamed before the session learnt the message is
                // refused depends on the read sizes; only the refusal must agree.
                events.push(format!("{event:?}"));
            } else {
                events.push(format!("{event:?} after {}", message.escape_ascii()));
            }
            if !matches!(event, LmtpEvent::ValidateRecipient { .. }) {
                message.clear();
            }
        }
        if rest.is_empty() {
            return (written, events);
        }
        let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
        (read, rest) = rest.split_at(size);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reads_of_any_size_give_the_same_answers(
        input in input_strategy(),
        read_sizes in proptest::collection::vec(1usize..64, 1..8),
        answers in proptest::collection::vec(any::<u8>(), 1..4),
    ) {
        let whole = drive(&input, &[input.len().max(1)], &answers);
        let bytewise = drive(&input, &[1], &answers);
        let mixed = drive(&input, &read_sizes, &answers);
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(&whole, &mixed);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        read_sizes in proptest::collection::vec(1usize..512, 1..8),
    ) {
        drive(&input, &read_sizes, &[0, 2]);
    }
}
