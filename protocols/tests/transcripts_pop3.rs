//! Replays every `tests/transcripts/pop3/*.txt` against [`Pop3Session`], twice:
//! each client packet fed as one chunk, and fed one byte at a time (polling
//! output after every byte); both runs must produce exactly the `S:` lines.
//! Then proptests: random input never panics, and read sizes never change
//! what the server says.
//!
//! Transcript format, one item per line:
//!
//! ```text
//! # comment (blank lines are ignored too)
//! O: apop <1.2@host>         option: Pop3Config::apop_timestamp
//! O: sasl PLAIN CRAM-MD5     option: Pop3Config::sasl_mechanisms (default PLAIN LOGIN)
//! O: stls                    option: Pop3Config::stls_available
//! O: no-plaintext            option: Pop3Config::plaintext_auth_allowed = false
//! C: USER bob                client line; CRLF is appended. Consecutive C: lines
//!                            are sent as ONE packet; any other line splits packets
//! S: +OK Send PASS           expected server line (CRLF appended), checked in order
//!                            before the next C:/E: item and at the end
//! E: login bob pw            next event is Login{bob, pw}
//! E: apop bob DIGEST         next event is LoginApop{bob, DIGEST, the O: apop timestamp}
//! E: login-ok bob | login-failed | login-not-permitted | login-unavailable
//! E: sasl-start MECH [INITIAL]   next event is SaslStart (INITIAL decoded; `=` empty)
//! E: sasl-response TEXT      next event is SaslResponse (decoded; `=` empty)
//! E: sasl-aborted            next event is SaslAborted
//! E: challenge TEXT          engine sends a SASL challenge (raw; `=` empty)
//! E: sasl-ok bob | sasl-failed   sasl_done
//! E: open-maildrop bob       next event is OpenMaildrop{bob}
//! E: maildrop [SIZE:UIDL …]  maildrop_opened
//! E: maildrop-in-use | maildrop-temp | maildrop-perm
//! E: starttls | tls-started  next event is StartTls / the engine switched
//! E: retrieve I [LINES]      next event is Retrieve{msg I, top_lines}
//! E: retrieve-started | retrieve-done | retrieve-gone | retrieve-temp
//! E: stream TEXT             the engine writes TEXT through a DotStuffer (TOP
//!                            mode after a TOP retrieve), fed whole or byte by byte
//! E: update [I,J…]           next event is Update{deleted}
//! E: update-ok | update-failed
//! E: handoff                 into_handoff, through another thread, from_handoff
//! E: close                   next event is Close
//! ```
//!
//! In C:, S: and E: text, `<<N*TEXT>>` stands for TEXT repeated N times (TEXT
//! may hold macros), `<<xHH>>` for the byte 0xHH and `<<crlf>>` for CRLF; a C:
//! line ending in `<<no-crlf>>` is sent without CRLF. E: arguments are split
//! on spaces before expansion. At the end every event must have been claimed.

mod common;
use common::*;

use std::fmt::Write as _;

use proptest::prelude::*;
use protocols::pop3::{
    DotStuffer, LoginOutcome, MaildropError, Pop3Config, Pop3Event, Pop3Session, RetrieveError,
};

#[derive(Debug)]
enum Step {
    Client(Vec<u8>),
    Server(Vec<u8>),
    /// An expected event, compared by its Debug form with secrets exposed.
    Expect(String),
    Login(LoginOutcome),
    Challenge(Vec<u8>),
    SaslDone(LoginOutcome),
    Maildrop(Vec<(u64, String)>),
    MaildropFailed(MaildropError),
    TlsStarted,
    RetrieveStarted,
    RetrieveDone,
    RetrieveFailed(RetrieveError),
    Stream(Vec<u8>),
    UpdateDone(bool),
    Handoff,
}

struct Transcript {
    config: Pop3Config,
    steps: Vec<(usize, Step)>,
}

/// `=` is empty; anything else is expanded.
fn sasl_bytes(text: &str) -> Result<Vec<u8>, String> {
    if text == "=" {
        Ok(Vec::new())
    } else {
        expand(text)
    }
}

/// The Debug form an event is compared by (secrets shown as bytes).
fn describe(event: &Pop3Event) -> String {
    match event {
        Pop3Event::Login { user, password } => {
            format!("login {user} {}", password.expose().escape_ascii())
        }
        Pop3Event::LoginApop {
            user,
            digest,
            timestamp,
        } => format!("apop {user} {digest} {timestamp}"),
        Pop3Event::SaslStart { mechanism, initial } => match initial {
            Some(initial) => format!("sasl-start {mechanism} {}", initial.expose().escape_ascii()),
            None => format!("sasl-start {mechanism}"),
        },
        Pop3Event::SaslResponse { response } => {
            format!("sasl-response {}", response.expose().escape_ascii())
        }
        Pop3Event::SaslAborted => "sasl-aborted".into(),
        Pop3Event::OpenMaildrop { user } => format!("open-maildrop {user}"),
        Pop3Event::StartTls => "starttls".into(),
        Pop3Event::Retrieve { msg, top_lines } => match top_lines {
            Some(lines) => format!("retrieve {msg} {lines}"),
            None => format!("retrieve {msg}"),
        },
        Pop3Event::Update { deleted } => {
            let list: Vec<String> = deleted.iter().map(usize::to_string).collect();
            format!("update {}", list.join(","))
        }
        Pop3Event::Close => "close".into(),
    }
}

fn parse_event(body: &str, apop: Option<&str>) -> Result<Step, String> {
    let words: Vec<&str> = body.split(' ').collect();
    let shown = |text: &str| sasl_bytes(text).map(|b| b.escape_ascii().to_string());
    let outcome = |word: &str, user: Option<&str>| match (word, user) {
        ("ok", Some(user)) => Ok(LoginOutcome::Ok { user: user.into() }),
        ("failed", None) => Ok(LoginOutcome::Failed),
        ("not-permitted", None) => Ok(LoginOutcome::NotPermitted),
        ("unavailable", None) => Ok(LoginOutcome::Unavailable),
        _ => Err(format!("bad outcome {body:?}")),
    };
    Ok(match words.as_slice() {
        ["login", user, password] => Step::Expect(format!("login {user} {}", shown(password)?)),
        ["apop", user, digest] => Step::Expect(format!(
            "apop {user} {digest} {}",
            apop.ok_or("apop without O: apop")?
        )),
        [verb, rest @ ..] if verb.starts_with("login-") => {
            Step::Login(outcome(&verb["login-".len()..], rest.first().copied())?)
        }
        [verb, rest @ ..]
            if verb.starts_with("sasl-")
                && *verb != "sasl-start"
                && *verb != "sasl-response"
                && *verb != "sasl-aborted" =>
        {
            Step::SaslDone(outcome(&verb["sasl-".len()..], rest.first().copied())?)
        }
        ["sasl-start", mechanism] => Step::Expect(format!("sasl-start {mechanism}")),
        ["sasl-start", mechanism, initial] => {
            Step::Expect(format!("sasl-start {mechanism} {}", shown(initial)?))
        }
        ["sasl-response", response] => Step::Expect(format!("sasl-response {}", shown(response)?)),
        ["sasl-aborted"] => Step::Expect("sasl-aborted".into()),
        ["challenge", text] => Step::Challenge(sasl_bytes(text)?),
        ["open-maildrop", user] => Step::Expect(format!("open-maildrop {user}")),
        ["maildrop", entries @ ..] => Step::Maildrop(
            entries
                .iter()
                .map(|entry| {
                    let (size, uidl) = entry.split_once(':').ok_or("SIZE:UIDL")?;
                    Ok((size.parse().map_err(|e| format!("{e}"))?, uidl.to_owned()))
                })
                .collect::<Result<_, String>>()?,
        ),
        ["maildrop-in-use"] => Step::MaildropFailed(MaildropError::InUse),
        ["maildrop-temp"] => Step::MaildropFailed(MaildropError::Temporary),
        ["maildrop-perm"] => Step::MaildropFailed(MaildropError::Permanent),
        ["starttls"] => Step::Expect("starttls".into()),
        ["tls-started"] => Step::TlsStarted,
        ["retrieve", msg] => Step::Expect(format!("retrieve {msg}")),
        ["retrieve", msg, lines] => Step::Expect(format!("retrieve {msg} {lines}")),
        ["retrieve-started"] => Step::RetrieveStarted,
        ["retrieve-done"] => Step::RetrieveDone,
        ["retrieve-gone"] => Step::RetrieveFailed(RetrieveError::Gone),
        ["retrieve-temp"] => Step::RetrieveFailed(RetrieveError::Temporary),
        ["stream", ..] => Step::Stream(expand(&body["stream ".len()..])?),
        ["update"] => Step::Expect("update ".into()),
        ["update", list] => Step::Expect(format!("update {list}")),
        ["update-ok"] => Step::UpdateDone(true),
        ["update-failed"] => Step::UpdateDone(false),
        ["handoff"] => Step::Handoff,
        ["close"] => Step::Expect("close".into()),
        _ => return Err(format!("unknown event line {body:?}")),
    })
}

fn parse_transcript(text: &str) -> Result<Transcript, String> {
    let mut config = Pop3Config {
        server_name: "pop.example.net".into(),
        apop_timestamp: None,
        sasl_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
        stls_available: false,
        plaintext_auth_allowed: true,
    };
    let mut steps: Vec<(usize, Step)> = Vec::new();
    let mut previous_was_client = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| format!("line {number}: {message}");
        let (kind, body) = match line.split_once(':') {
            Some((kind @ ("C" | "S" | "E" | "O"), body)) => {
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
                if previous_was_client && let Some((_, Step::Client(packet))) = steps.last_mut() {
                    packet.extend(bytes);
                    continue;
                }
                Step::Client(bytes)
            }
            "S" => Step::Server(line_bytes(body).map_err(fail)?),
            "E" => parse_event(body, config.apop_timestamp.as_deref()).map_err(fail)?,
            _ => {
                let mut words = body.split(' ');
                match words.next() {
                    Some("apop") => config.apop_timestamp = words.next().map(str::to_owned),
                    Some("sasl") => config.sasl_mechanisms = words.map(str::to_owned).collect(),
                    Some("stls") => config.stls_available = true,
                    Some("no-plaintext") => config.plaintext_auth_allowed = false,
                    _ => return Err(fail(format!("unknown option {line:?}"))),
                }
                previous_was_client = false;
                continue;
            }
        };
        previous_was_client = kind == "C";
        steps.push((number, step));
    }
    Ok(Transcript { config, steps })
}

struct Runner {
    session: Option<Pop3Session>,
    actual: Vec<u8>,
    expected: Vec<u8>,
    /// `top_lines` of the last Retrieve, for `E: stream`.
    top_lines: Option<u32>,
}

impl Runner {
    fn session(&mut self) -> &mut Pop3Session {
        self.session
            .as_mut()
            .expect("session present between steps")
    }

    fn drain_output(&mut self) {
        while let Some(bytes) = self.session().poll_output() {
            assert!(bytes.ends_with(b"\r\n"), "partial line {bytes:?}");
            self.actual.extend(bytes);
        }
    }

    fn check_output(&mut self, line: usize) -> Result<(), String> {
        self.drain_output();
        if self.actual == self.expected {
            return Ok(());
        }
        Err(format!(
            "output differs before line {line}\n  expected:\n{}  actual:\n{}",
            show(&self.expected),
            show(&self.actual)
        ))
    }

    fn feed(&mut self, packet: &[u8], feed: Feed) -> Result<(), String> {
        match feed {
            Feed::Chunk => self
                .session()
                .handle_input(packet)
                .map_err(|e| e.to_string()),
            Feed::ByteByByte => {
                for byte in packet {
                    self.session()
                        .handle_input(std::slice::from_ref(byte))
                        .map_err(|e| e.to_string())?;
                    self.drain_output();
                }
                Ok(())
            }
        }
    }

    fn stream(&mut self, message: &[u8], feed: Feed) {
        let mut stuffer = match self.top_lines {
            Some(lines) => DotStuffer::top(lines),
            None => DotStuffer::new(),
        };
        let pieces: Vec<&[u8]> = match feed {
            Feed::Chunk => vec![message],
            Feed::ByteByByte => message.chunks(1).collect(),
        };
        for piece in pieces {
            if stuffer.is_done() {
                break;
            }
            stuffer.push(piece, &mut self.actual);
        }
        stuffer.finish(&mut self.actual);
    }

    fn step(&mut self, step: &Step, line: usize, feed: Feed) -> Result<(), String> {
        // A hand-off is not a check point, so output not yet polled travels with it.
        if !matches!(step, Step::Server(_) | Step::Handoff) {
            self.check_output(line)?;
        }
        match step {
            Step::Server(bytes) => self.expected.extend_from_slice(bytes),
            Step::Client(packet) => self.feed(packet, feed)?,
            Step::Expect(wanted) => {
                let event = self.session().poll_event();
                if let Some(Pop3Event::Retrieve { top_lines, .. }) = &event {
                    self.top_lines = *top_lines;
                }
                let got = event.as_ref().map(describe);
                if got.as_deref() != Some(wanted.as_str()) {
                    return Err(format!(
                        "line {line}: expected event {wanted:?}, got {event:?}"
                    ));
                }
                if matches!(event, Some(Pop3Event::Close)) {
                    assert!(self.session().is_closed());
                }
            }
            Step::Login(outcome) => self.session().login_result(outcome.clone()),
            Step::Challenge(bytes) => self.session().sasl_challenge(bytes),
            Step::SaslDone(outcome) => self.session().sasl_done(outcome.clone()),
            Step::Maildrop(listing) => self.session().maildrop_opened(listing.clone()),
            Step::MaildropFailed(error) => self.session().maildrop_failed(*error),
            Step::TlsStarted => self.session().tls_started(),
            Step::RetrieveStarted => self.session().retrieve_started(),
            Step::RetrieveDone => self.session().retrieve_done(),
            Step::RetrieveFailed(error) => self.session().retrieve_failed(*error),
            // What the engine wrote is checked against the following S: lines.
            Step::Stream(message) => self.stream(message, feed),
            Step::UpdateDone(ok) => self.session().update_done(*ok),
            Step::Handoff => {
                let handoff = self.session.take().expect("session present").into_handoff();
                let handoff = std::thread::spawn(move || handoff)
                    .join()
                    .expect("thread ran");
                self.session = Some(Pop3Session::from_handoff(handoff));
            }
        }
        Ok(())
    }
}

fn run(transcript: &Transcript, feed: Feed) -> Result<(), String> {
    let mut runner = Runner {
        session: Some(Pop3Session::new(transcript.config.clone())),
        actual: Vec::new(),
        expected: Vec::new(),
        top_lines: None,
    };
    for (line, step) in &transcript.steps {
        runner.step(step, *line, feed)?;
    }
    runner.check_output(usize::MAX)?;
    match runner.session().poll_event() {
        None => Ok(()),
        Some(event) => Err(format!("unclaimed event at the end: {event:?}")),
    }
}

#[test]
fn pop3_transcripts() {
    let files = transcript_files("pop3");
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

/// Pieces that reach the interesting corners of the parser and session.
const TOKENS: &[&[u8]] = &[
    b"USER bob\r\n",
    b"PASS pw\r\n",
    b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n",
    b"AUTH PLAIN",
    b"AUTH LOGIN\r\n",
    b" AGJvYgBwdw==",
    b"*\r\n",
    b"=\r\n",
    b"STLS\r\n",
    b"CAPA\r\n",
    b"STAT\r\n",
    b"LIST",
    b"UIDL",
    b"RETR ",
    b"TOP ",
    b"DELE ",
    b"NOOP\r\n",
    b"RSET\r\n",
    b"QUIT\r\n",
    b"1",
    b"2",
    b" 0",
    b"4294967296",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\0",
    b"\xff",
];

fn input_strategy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..150).prop_map(|pieces| pieces.concat())
}

/// Feeds `input` in reads of the given sizes (cycled), answering every event
/// at once with answers picked by `answers` (cycled), handing the session off
/// at every login. Returns everything written to the client.
fn drive(input: &[u8], read_sizes: &[usize], answers: &[u8], stls: bool) -> Vec<u8> {
    let mut session = Pop3Session::new(Pop3Config {
        apop_timestamp: Some("<1.2@pop.example.net>".into()),
        sasl_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
        stls_available: stls,
        ..Pop3Config::default()
    });
    let mut written = Vec::new();
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
            let pick = answer.next().unwrap_or(0);
            let outcome = match pick % 4 {
                0 | 1 => LoginOutcome::Ok { user: "bob".into() },
                2 => LoginOutcome::Failed,
                _ => LoginOutcome::Unavailable,
            };
            match event {
                Pop3Event::Login { .. } | Pop3Event::LoginApop { .. } => {
                    session = Pop3Session::from_handoff(session.into_handoff());
                    session.login_result(outcome);
                }
                Pop3Event::SaslStart { .. } | Pop3Event::SaslResponse { .. } => {
                    if pick % 2 == 0 {
                        session.sasl_challenge(b"more");
                    } else {
                        session.sasl_done(outcome);
                    }
                }
                Pop3Event::OpenMaildrop { .. } => match pick % 3 {
                    0 => session.maildrop_failed(MaildropError::InUse),
                    _ => session.maildrop_opened(vec![(5, "a".into()), (0, "b".into())]),
                },
                Pop3Event::Retrieve { top_lines, .. } => {
                    if pick % 3 == 0 {
                        session.retrieve_failed(RetrieveError::Gone);
                    } else {
                        session.retrieve_started();
                        written.extend(session.poll_output().unwrap_or_default());
                        let mut stuffer = top_lines.map_or_else(DotStuffer::new, DotStuffer::top);
                        stuffer.push(b"A: b\r\n\r\n.x\r\n", &mut written);
                        stuffer.finish(&mut written);
                        session.retrieve_done();
                    }
                }
                Pop3Event::StartTls => session.tls_started(),
                Pop3Event::Update { .. } => session.update_done(pick % 2 == 0),
                Pop3Event::SaslAborted | Pop3Event::Close => {}
            }
        }
        if rest.is_empty() {
            return written;
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
        // Without STLS: input behind it is discarded, which depends on read sizes.
        let whole = drive(&input, &[input.len().max(1)], &answers, false);
        let bytewise = drive(&input, &[1], &answers, false);
        let mixed = drive(&input, &read_sizes, &answers, false);
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(&whole, &mixed);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        read_sizes in proptest::collection::vec(1usize..512, 1..8),
        stls in any::<bool>(),
    ) {
        drive(&input, &read_sizes, &[0, 1, 2, 3], stls);
    }

    #[test]
    fn token_soup_never_panics_with_stls(
        input in input_strategy(),
        read_sizes in proptest::collection::vec(1usize..64, 1..8),
        answers in proptest::collection::vec(any::<u8>(), 1..4),
    ) {
        drive(&input, &read_sizes, &answers, true);
    }
}
