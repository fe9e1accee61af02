//! Replays every `tests/transcripts/imap/*.txt` against [`ImapSession`], twice:
//! each client packet fed as one chunk, and fed one byte at a time (polling
//! output after every byte). Both runs must produce exactly the `S:` lines.
//!
//! Transcript format, one item per line:
//!
//! ```text
//! # comment (blank lines are ignored too)
//! O: login-disabled          option, before anything else (ImapConfig::login_allowed = false)
//! O: starttls                option: STARTTLS offered (ImapConfig::starttls_available)
//! E: starttls / tls-started  expect the StartTls event / the engine finished the switch
//! O: compress                option: COMPRESS=DEFLATE offered after login
//! E: compress / compress-started  expect the Compress event / the engine wrapped the stream
//! C: a LOGIN bob pw          client line; CRLF is appended. Consecutive C: lines are
//!                            sent as ONE packet; any other line in between splits packets
//! S: a OK ...                expected server line (CRLF appended); checked, in order,
//!                            before the next C:/E: item and at the end
//! E: login a bob pw          the next event must be Login{tag a, username bob, password pw}
//! E: login-ok bob            engine answers LoginOutcome::Ok { user: "bob" }
//! E: login-failed            engine answers LoginOutcome::Failed
//! E: login-unavailable       engine answers LoginOutcome::Unavailable
//! E: handoff                 into_handoff, moved through another thread, from_handoff
//!                            (output is not polled before it, so unpolled output travels)
//! E: close                   the next event must be Close
//! ```
//!
//! AUTHENTICATE (SASL):
//!
//! ```text
//! O: sasl NONCE              offer every mechanism; NONCE is the server nonce of every
//!                            exchange (SCRAM's server part, CRAM-MD5's n1.n2), host
//!                            imap.example.net, decoy key all zero
//! E: sasl-verify USER PW     the next event must be SaslCredentials(Verify{USER, PW})
//! E: sasl-lookup USER KIND   ... SaslCredentials(Lookup{USER, cram|scram})
//! E: provide verified|rejected|unavailable        the engine's answer
//! E: provide cram SECRET                          the CRAM-MD5 secret
//! E: provide scram PW SALT_BASE64 ITERATIONS      SCRAM keys derived from PW
//! E: sasl-finished TAG USER|- ok|failed           the next event must be SaslFinished
//!                            (then answer it with E: login-ok / login-failed)
//! ```
//!
//!
//! The authenticated state runs against a `MemoryBackend` (an INBOX, UIDVALIDITY 1):
//!
//! ```text
//! O: no-backend              the engine has no backend (handle_input / login_result)
//! B: mailbox NAME [\Use]     create a mailbox (with a special use) at once
//! B: subscribe NAME          subscribe at once
//! B: message MBOX [FLAG…]    deliver the message of the M: lines that follow
//! M: Subject: hi             a message line (CRLF appended)
//! B: flags MBOX UID +|-|= [FLAG…]   another session changes flags
//! B: expunge MBOX UID…       another session expunges
//! B: append-limit N / B: quota KIB
//! B: manage                the user may SETQUOTA
//! E: wait                    the next mailbox event must be Wait(token)
//! E: commit                  group commit of that token, then session.completed(Ok)
//! E: fail                    session.completed(Err(Unavailable)) for that token
//! E: changed                 session.mailbox_changed()
//! E: idle-started / idle-done  expect that mailbox event
//! ```
//!
//! Output is taken with `poll_transmit`; `Transmit::Message` is resolved from the
//! backend, as the engine would stream it.
//!
//! In C:, S: and E: text, `<<N*TEXT>>` stands for TEXT repeated N times and
//! `<<xHH>>` for the byte 0xHH (E: arguments are split on spaces first); a C:
//! line ending in `<<no-crlf>>` is sent without its CRLF (half a command).
//! At the end every event must have been claimed by an `E:` line.

mod common;
use common::*;

use std::fmt::Write as _;
use std::path::Path;

use protocols::imap::backend::{BackendError, FlagMode, Flags, SpecialUse, SystemFlags};
use protocols::imap::memory::MemoryBackend;
use protocols::imap::{
    ImapBackend, ImapConfig, ImapEvent, ImapSession, LoginOutcome, MailboxEvent, Pending, Secret,
    Transmit,
};
use protocols::sasl::{
    CredentialRequest, Credentials, Mechanism, SaslPolicy, ScramSecret, SecretKind,
};

#[derive(Debug)]
enum Step {
    Client(Vec<u8>),
    Server(Vec<u8>),
    ExpectLogin {
        tag: Vec<u8>,
        username: Vec<u8>,
        password: Vec<u8>,
    },
    ExpectClose,
    ExpectStartTls,
    ExpectSasl(ImapEvent),
    Provide(Credentials),
    TlsStarted,
    ExpectCompress,
    CompressStarted,
    Answer(LoginOutcome),
    Handoff,
    Backend(Fixture),
    ExpectWait,
    Commit,
    Fail,
    Changed,
    ExpectMailboxEvent(MailboxEvent),
}

#[derive(Debug)]
enum Fixture {
    Mailbox(String, Option<SpecialUse>),
    Subscribe(String),
    Message(String, Flags, Vec<u8>),
    Flags(String, u32, FlagMode, Flags),
    Expunge(String, Vec<u32>),
    AppendLimit(u64),
    Quota(u64),
    Manage,
}

fn flags_of(words: &[&str]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    for w in words {
        if let Some(bit) = SystemFlags::from_name(w) {
            flags.system.0 |= bit;
        } else if w.starts_with('\\') {
            return Err(format!("unknown flag {w}"));
        } else {
            flags.keywords.push((*w).to_owned());
        }
    }
    Ok(flags)
}

fn fixture(body: &str) -> Result<Fixture, String> {
    let words: Vec<&str> = body.split(' ').collect();
    let number = |w: &str| w.parse::<u64>().map_err(|e| format!("{w:?}: {e}"));
    Ok(match words.as_slice() {
        ["mailbox", name] => Fixture::Mailbox((*name).to_owned(), None),
        ["mailbox", name, special] => Fixture::Mailbox(
            (*name).to_owned(),
            Some(SpecialUse::from_imap(special).ok_or("unknown special use")?),
        ),
        ["subscribe", name] => Fixture::Subscribe((*name).to_owned()),
        ["message", mailbox, flags @ ..] => {
            Fixture::Message((*mailbox).to_owned(), flags_of(flags)?, Vec::new())
        }
        ["flags", mailbox, uid, mode, flags @ ..] => Fixture::Flags(
            (*mailbox).to_owned(),
            number(uid)? as u32,
            match *mode {
                "+" => FlagMode::Add,
                "-" => FlagMode::Remove,
                "=" => FlagMode::Replace,
                _ => return Err(format!("bad mode {mode}")),
            },
            flags_of(flags)?,
        ),
        ["expunge", mailbox, uids @ ..] => Fixture::Expunge(
            (*mailbox).to_owned(),
            uids.iter()
                .map(|u| number(u).map(|n| n as u32))
                .collect::<Result<_, _>>()?,
        ),
        ["append-limit", n] => Fixture::AppendLimit(number(n)?),
        ["quota", n] => Fixture::Quota(number(n)?),
        ["manage"] => Fixture::Manage,
        _ => return Err(format!("unknown fixture {body:?}")),
    })
}

struct Transcript {
    no_backend: bool,
    login_allowed: bool,
    starttls: bool,
    sasl_nonce: Option<String>,
    compress: bool,
    /// (line number, step)
    steps: Vec<(usize, Step)>,
}

fn parse_transcript(text: &str) -> Result<Transcript, String> {
    let mut transcript = Transcript {
        no_backend: false,
        login_allowed: true,
        starttls: false,
        sasl_nonce: None,
        compress: false,
        steps: Vec::new(),
    };
    let mut previous_was_client = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| format!("line {number}: {message}");
        let (kind, body) = match line.split_once(':') {
            Some((kind @ ("C" | "S" | "E" | "O" | "B" | "M"), body)) => {
                (kind, body.strip_prefix(' ').unwrap_or(body))
            }
            _ if line.trim().is_empty() || line.starts_with('#') => {
                previous_was_client = false;
                continue;
            }
            _ => return Err(fail(format!("unknown line {line:?}"))),
        };
        let is_client = kind == "C";
        let step = match kind {
            "C" => {
                let bytes = match body.strip_suffix("<<no-crlf>>") {
                    Some(body) => expand(body).map_err(fail)?,
                    None => {
                        let mut bytes = expand(body).map_err(fail)?;
                        bytes.extend_from_slice(b"\r\n");
                        bytes
                    }
                };
                if previous_was_client
                    && let Some((_, Step::Client(packet))) = transcript.steps.last_mut()
                {
                    packet.extend(bytes);
                    continue;
                }
                Step::Client(bytes)
            }
            "S" => {
                let mut bytes = expand(body).map_err(fail)?;
                bytes.extend_from_slice(b"\r\n");
                Step::Server(bytes)
            }
            "M" => {
                let mut bytes = expand(body).map_err(fail)?;
                bytes.extend_from_slice(b"\r\n");
                match transcript.steps.last_mut() {
                    Some((_, Step::Backend(Fixture::Message(_, _, message)))) => {
                        message.extend(bytes);
                        continue;
                    }
                    _ => return Err(fail("M: without B: message".into())),
                }
            }
            "B" => Step::Backend(fixture(body).map_err(fail)?),
            "O" if body == "no-backend" => {
                transcript.no_backend = true;
                previous_was_client = false;
                continue;
            }
            "O" if body == "login-disabled" => {
                transcript.login_allowed = false;
                previous_was_client = false;
                continue;
            }
            "O" if body.starts_with("sasl ") => {
                transcript.sasl_nonce = Some(body["sasl ".len()..].to_owned());
                previous_was_client = false;
                continue;
            }
            "O" if body == "compress" => {
                transcript.compress = true;
                previous_was_client = false;
                continue;
            }
            "O" if body == "starttls" => {
                transcript.starttls = true;
                previous_was_client = false;
                continue;
            }
            "E" => {
                let words: Vec<Vec<u8>> = body
                    .split(' ')
                    .map(expand)
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                match words.as_slice() {
                    [verb, tag, username, password] if verb == b"login" => Step::ExpectLogin {
                        tag: tag.clone(),
                        username: username.clone(),
                        password: password.clone(),
                    },
                    [verb, user] if verb == b"login-ok" => Step::Answer(LoginOutcome::Ok {
                        user: String::from_utf8_lossy(user).into_owned(),
                    }),
                    [verb] if verb == b"login-failed" => Step::Answer(LoginOutcome::Failed),
                    [verb] if verb == b"login-unavailable" => {
                        Step::Answer(LoginOutcome::Unavailable)
                    }
                    [verb, rest @ ..] if verb.starts_with(b"sasl-") || verb == b"provide" => {
                        sasl_step(verb, rest).map_err(fail)?
                    }
                    [verb] if verb == b"handoff" => Step::Handoff,
                    [verb] if verb == b"close" => Step::ExpectClose,
                    [verb] if verb == b"starttls" => Step::ExpectStartTls,
                    [verb] if verb == b"tls-started" => Step::TlsStarted,
                    [verb] if verb == b"compress" => Step::ExpectCompress,
                    [verb] if verb == b"compress-started" => Step::CompressStarted,
                    [verb] if verb == b"wait" => Step::ExpectWait,
                    [verb] if verb == b"commit" => Step::Commit,
                    [verb] if verb == b"fail" => Step::Fail,
                    [verb] if verb == b"changed" => Step::Changed,
                    [verb] if verb == b"idle-started" => {
                        Step::ExpectMailboxEvent(MailboxEvent::IdleStarted)
                    }
                    [verb] if verb == b"idle-done" => {
                        Step::ExpectMailboxEvent(MailboxEvent::IdleDone)
                    }
                    _ => return Err(fail(format!("unknown event line {line:?}"))),
                }
            }
            _ => return Err(fail(format!("unknown option {line:?}"))),
        };
        previous_was_client = is_client;
        transcript.steps.push((number, step));
    }
    Ok(transcript)
}

struct Runner {
    session: Option<ImapSession>,
    backend: Option<MemoryBackend>,
    /// The token of the last Wait event.
    pending: Option<Pending>,
    actual: Vec<u8>,
    expected: Vec<u8>,
}

impl Runner {
    fn session(&mut self) -> &mut ImapSession {
        self.session
            .as_mut()
            .expect("session present between steps")
    }

    fn drain_output(&mut self) {
        while let Some(item) = self.session().poll_transmit() {
            match item {
                Transmit::Bytes(bytes) => self.actual.extend(bytes),
                Transmit::Message {
                    mailbox,
                    uid,
                    start,
                    end,
                } => {
                    let backend = self.backend.as_mut().expect("message bytes need a backend");
                    let bytes = backend
                        .read(&mailbox, uid, start, end)
                        .expect("message readable");
                    assert_eq!(bytes.len() as u64, end - start, "short message");
                    self.actual.extend(bytes);
                }
            }
        }
    }

    fn fixture(&mut self, fixture: &Fixture, line: usize) -> Result<(), String> {
        let backend = self
            .backend
            .as_mut()
            .ok_or(format!("line {line}: B: with O: no-backend"))?;
        let fail = |e: BackendError| format!("line {line}: {e}");
        match fixture {
            Fixture::Mailbox(name, special_use) => backend.add_mailbox(name, *special_use),
            Fixture::Subscribe(name) => backend.set_subscribed(name, true),
            Fixture::Message(mailbox, flags, bytes) => {
                backend
                    .deliver(mailbox, bytes, flags.clone(), None)
                    .map_err(fail)?;
            }
            Fixture::Flags(mailbox, uid, mode, flags) => {
                backend
                    .set_flags(mailbox, &[*uid], *mode, flags)
                    .map_err(fail)?;
            }
            Fixture::Expunge(mailbox, uids) => {
                backend.remove(mailbox, uids).map_err(fail)?;
            }
            Fixture::AppendLimit(n) => backend.append_limit = Some(*n),
            Fixture::Quota(n) => backend.quota_kib = Some(*n),
            Fixture::Manage => backend.may_manage = true,
        }
        Ok(())
    }

    fn feed_with_backend(&mut self, data: &[u8]) -> Result<(), String> {
        let session = self.session.as_mut().expect("session present");
        match self.backend.as_mut() {
            Some(backend) => session.handle_input_with(data, backend),
            None => session.handle_input(data),
        }
        .map_err(|e| e.to_string())
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
            Feed::Chunk => self.feed_with_backend(packet),
            Feed::ByteByByte => {
                for byte in packet {
                    self.feed_with_backend(std::slice::from_ref(byte))?;
                    self.drain_output();
                }
                Ok(())
            }
        }
    }

    fn step(&mut self, step: &Step, line: usize, feed: Feed) -> Result<(), String> {
        // A hand-off is not a check point, so output not yet polled travels with it.
        if !matches!(step, Step::Server(_) | Step::Handoff | Step::Backend(_)) {
            self.check_output(line)?;
        }
        match step {
            Step::Server(bytes) => self.expected.extend_from_slice(bytes),
            Step::Client(packet) => self.feed(packet, feed)?,
            Step::ExpectLogin {
                tag,
                username,
                password,
            } => match self.session().poll_event() {
                Some(ImapEvent::Login {
                    tag: t,
                    username: u,
                    password: p,
                }) if t.as_bytes() == tag.as_slice()
                    && &u == username
                    && p.expose() == password.as_slice() => {}
                other => {
                    return Err(format!(
                        "line {line}: expected the login event, got {other:?}"
                    ));
                }
            },
            Step::ExpectClose => match self.session().poll_event() {
                Some(ImapEvent::Close) => {}
                other => return Err(format!("line {line}: expected Close, got {other:?}")),
            },
            Step::ExpectStartTls => match self.session().poll_event() {
                Some(ImapEvent::StartTls) => {}
                other => return Err(format!("line {line}: expected StartTls, got {other:?}")),
            },
            Step::TlsStarted => self.session().tls_started(),
            Step::ExpectSasl(expected) => match self.session().poll_event() {
                Some(event) if &event == expected => {}
                other => return Err(format!("line {line}: expected {expected:?}, got {other:?}")),
            },
            Step::Provide(credentials) => self.session().sasl_credentials(credentials.clone()),
            Step::ExpectCompress => match self.session().poll_event() {
                Some(ImapEvent::Compress) => {}
                other => return Err(format!("line {line}: expected Compress, got {other:?}")),
            },
            Step::CompressStarted => self.session().compress_started(),
            Step::Answer(outcome) => {
                let session = self.session.as_mut().expect("session present");
                match self.backend.as_mut() {
                    Some(backend) => session.login_result_with(outcome.clone(), backend),
                    None => session.login_result(outcome.clone()),
                }
            }
            Step::Backend(fixture) => self.fixture(fixture, line)?,
            Step::ExpectWait => match self.session().poll_mailbox_event() {
                Some(MailboxEvent::Wait(pending)) => self.pending = Some(pending),
                other => return Err(format!("line {line}: expected Wait, got {other:?}")),
            },
            Step::ExpectMailboxEvent(expected) => match self.session().poll_mailbox_event() {
                Some(event) if &event == expected => {}
                other => return Err(format!("line {line}: expected {expected:?}, got {other:?}")),
            },
            Step::Commit | Step::Fail => {
                let pending = self
                    .pending
                    .take()
                    .ok_or(format!("line {line}: nothing waits"))?;
                let session = self.session.as_mut().expect("session present");
                let backend = self.backend.as_mut().expect("backend present");
                let result = if matches!(step, Step::Commit) {
                    backend.commit(pending)
                } else {
                    Err(BackendError::Unavailable)
                };
                session.completed(pending, result, backend);
            }
            Step::Changed => {
                let session = self.session.as_mut().expect("session present");
                let backend = self.backend.as_mut().expect("backend present");
                session.mailbox_changed(backend);
            }
            Step::Handoff => {
                let session = self.session.take().expect("session present");
                let handoff = session.into_handoff();
                let handoff = std::thread::spawn(move || handoff)
                    .join()
                    .expect("thread ran");
                self.session = Some(ImapSession::from_handoff(handoff));
            }
        }
        Ok(())
    }
}

fn run(transcript: &Transcript, feed: Feed) -> Result<(), String> {
    let mut runner = Runner {
        session: Some(ImapSession::new(config(transcript))),
        backend: (!transcript.no_backend).then(MemoryBackend::new),
        pending: None,
        actual: Vec::new(),
        expected: Vec::new(),
    };
    for (line, step) in &transcript.steps {
        runner.step(step, *line, feed)?;
    }
    runner.check_output(usize::MAX)?;
    if let Some(event) = runner.session().poll_event() {
        return Err(format!("unclaimed event at the end: {event:?}"));
    }
    match runner.session().poll_mailbox_event() {
        None => Ok(()),
        Some(event) => Err(format!("unclaimed mailbox event at the end: {event:?}")),
    }
}

/// `IMAP_TRANSCRIPT_RECORD=name.txt cargo test --test transcripts record` prints the
/// transcript with its S: lines replaced by what the session says now (for writing new
/// transcripts; the output still has to be read and judged before it is kept).
#[test]
fn record() {
    let Ok(name) = std::env::var("IMAP_TRANSCRIPT_RECORD") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts/imap");
    let text = std::fs::read_to_string(dir.join(&name)).expect("transcript");
    let transcript = parse_transcript(&text).expect("parses");
    let mut runner = Runner {
        session: Some(ImapSession::new(config(&transcript))),
        backend: (!transcript.no_backend).then(MemoryBackend::new),
        pending: None,
        actual: Vec::new(),
        expected: Vec::new(),
    };
    let mut out = String::new();
    let mut steps = transcript
        .steps
        .iter()
        .filter(|(_, step)| !matches!(step, Step::Server(_)))
        .peekable();
    let flush = |runner: &mut Runner, out: &mut String| {
        runner.drain_output();
        for l in runner
            .actual
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let _ = writeln!(out, "S: {}", String::from_utf8_lossy(l));
        }
        runner.actual.clear();
        runner.expected.clear();
    };
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("S:") {
            continue;
        }
        if steps.peek().is_some_and(|(n, _)| *n == index + 1)
            && (line.starts_with("C:") || line.starts_with("E:"))
        {
            flush(&mut runner, &mut out);
        }
        let _ = writeln!(out, "{line}");
        while let Some((n, step)) = steps.peek() {
            if *n > index + 1 {
                break;
            }
            runner.drain_output();
            runner.expected.clone_from(&runner.actual);
            if let Err(e) = runner.step(step, *n, Feed::Chunk) {
                let _ = writeln!(out, "# ERROR {e}");
            }
            steps.next();
        }
    }
    flush(&mut runner, &mut out);
    println!("{out}");
}

fn config(transcript: &Transcript) -> ImapConfig {
    let mut capabilities_authenticated: Vec<String> = ["IMAP4rev1", "LITERAL+", "ID", "ENABLE"]
        .map(String::from)
        .into();
    if transcript.compress {
        capabilities_authenticated.push("COMPRESS=DEFLATE".into());
    }
    ImapConfig {
        capabilities: ["IMAP4rev1", "LITERAL+", "ID"].map(String::from).into(),
        capabilities_authenticated: capabilities_authenticated.into(),
        login_allowed: transcript.login_allowed,
        starttls_available: transcript.starttls,
        server_name: "imap.example.net".into(),
        sasl: match &transcript.sasl_nonce {
            None => SaslPolicy::disabled(),
            Some(nonce) => SaslPolicy {
                enabled: Mechanism::ALL.to_vec(),
                hostname: "imap.example.net".into(),
                fixed_nonce: Some(nonce.clone()),
                ..SaslPolicy::disabled()
            },
        },
    }
}

/// The SASL lines of a transcript (`E: sasl-…`, `E: provide …`).
fn sasl_step(verb: &[u8], rest: &[Vec<u8>]) -> Result<Step, String> {
    let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
    let words: Vec<String> = rest.iter().map(text).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match (verb, words.as_slice()) {
        (b"sasl-verify", [user, _]) => {
            Step::ExpectSasl(ImapEvent::SaslCredentials(CredentialRequest::Verify {
                authcid: (*user).to_owned(),
                authzid: None,
                password: Secret::new(rest[1].clone()),
            }))
        }
        (b"sasl-lookup", [user, kind]) => {
            Step::ExpectSasl(ImapEvent::SaslCredentials(CredentialRequest::Lookup {
                authcid: (*user).to_owned(),
                authzid: None,
                kind: match *kind {
                    "cram" => SecretKind::CramMd5,
                    "scram" => SecretKind::ScramSha256,
                    _ => return Err(format!("unknown secret kind {kind}")),
                },
            }))
        }
        (b"provide", ["verified"]) => Step::Provide(Credentials::Verified),
        (b"provide", ["rejected"]) => Step::Provide(Credentials::Rejected),
        (b"provide", ["unavailable"]) => Step::Provide(Credentials::Unavailable),
        (b"provide", ["cram", _]) => {
            Step::Provide(Credentials::CramMd5Secret(Secret::new(rest[1].clone())))
        }
        (b"provide", ["scram", password, salt, iterations]) => {
            use base64::Engine;
            let salt = base64::engine::general_purpose::STANDARD
                .decode(salt)
                .map_err(|e| e.to_string())?;
            let iterations = iterations.parse().map_err(|e| format!("{e}"))?;
            Step::Provide(Credentials::ScramSha256(ScramSecret::derive(
                password.as_bytes(),
                &salt,
                iterations,
            )))
        }
        (b"sasl-finished", [tag, user, result]) => Step::ExpectSasl(ImapEvent::SaslFinished {
            tag: (*tag).to_owned(),
            username: (*user != "-").then(|| (*user).to_owned()),
            success: match *result {
                "ok" => true,
                "failed" => false,
                _ => return Err(format!("ok or failed, not {result}")),
            },
        }),
        _ => return Err(format!("unknown SASL line {verb:?} {words:?}")),
    })
}

#[test]
fn imap_transcripts() {
    let files = transcript_files("imap");
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
