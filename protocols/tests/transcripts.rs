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
//! In C:, S: and E: text, `<<N*TEXT>>` stands for TEXT repeated N times and
//! `<<xHH>>` for the byte 0xHH (E: arguments are split on spaces first); a C:
//! line ending in `<<no-crlf>>` is sent without its CRLF (half a command).
//! At the end every event must have been claimed by an `E:` line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use protocols::imap::{ImapConfig, ImapEvent, ImapSession, LoginOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Chunk,
    ByteByByte,
}

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
    TlsStarted,
    Answer(LoginOutcome),
    Handoff,
}

struct Transcript {
    login_allowed: bool,
    starttls: bool,
    /// (line number, step)
    steps: Vec<(usize, Step)>,
}

fn expand(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("<<") {
        out.extend_from_slice(&rest.as_bytes()[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find(">>")
            .ok_or_else(|| format!("unclosed << in {text:?}"))?;
        let spec = &after[..close];
        if let Some(hex) = spec.strip_prefix('x') {
            out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("bad byte {spec:?}: {e}"))?);
        } else {
            let (count, unit) = spec
                .split_once('*')
                .ok_or_else(|| format!("bad macro {spec:?}"))?;
            let count: usize = count
                .parse()
                .map_err(|e| format!("bad count {count:?}: {e}"))?;
            out.extend(unit.as_bytes().repeat(count));
        }
        rest = &after[close + 2..];
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

fn parse_transcript(text: &str) -> Result<Transcript, String> {
    let mut transcript = Transcript {
        login_allowed: true,
        starttls: false,
        steps: Vec::new(),
    };
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
            "O" if body == "login-disabled" => {
                transcript.login_allowed = false;
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
                    [verb] if verb == b"handoff" => Step::Handoff,
                    [verb] if verb == b"close" => Step::ExpectClose,
                    [verb] if verb == b"starttls" => Step::ExpectStartTls,
                    [verb] if verb == b"tls-started" => Step::TlsStarted,
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

fn show(bytes: &[u8]) -> String {
    let mut text = String::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let _ = writeln!(text, "    {}", line.escape_ascii());
    }
    text
}

struct Runner {
    session: Option<ImapSession>,
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
        while let Some(bytes) = self.session().poll_output() {
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

    fn step(&mut self, step: &Step, line: usize, feed: Feed) -> Result<(), String> {
        // A hand-off is not a check point, so output not yet polled travels with it.
        if !matches!(step, Step::Server(_) | Step::Handoff) {
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
            Step::Answer(outcome) => self.session().login_result(outcome.clone()),
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
    let config = ImapConfig {
        capabilities: ["IMAP4rev1", "LITERAL+", "ID"].map(String::from).into(),
        capabilities_authenticated: ["IMAP4rev1", "LITERAL+", "ID", "ENABLE"]
            .map(String::from)
            .into(),
        login_allowed: transcript.login_allowed,
        starttls_available: transcript.starttls,
        server_name: "imap.example.net".into(),
    };
    let mut runner = Runner {
        session: Some(ImapSession::new(config)),
        actual: Vec::new(),
        expected: Vec::new(),
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

fn transcript_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts/imap");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("transcript directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn imap_transcripts() {
    let files = transcript_files();
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
