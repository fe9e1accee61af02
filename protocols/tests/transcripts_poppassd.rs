//! Replays every `tests/transcripts/poppassd/*.txt` against
//! [`PoppassdSession`], twice: each client packet fed as one chunk, and fed one
//! byte at a time; both runs must produce exactly the `S:` lines. Then a
//! proptest: random input never panics and read sizes never change the answers.
//!
//! Transcript format, one item per line:
//!
//! ```text
//! # comment (blank lines are ignored too)
//! C: user bob                client line; CRLF appended; consecutive C: lines are
//!                            ONE packet; any other line splits packets
//! S: 200 Your password please.   expected server line, checked before the next
//!                            C:/E: item and at the end
//! E: check bob OLD           next event is CheckPassword{bob, OLD}
//! E: check-ok | check-incorrect | check-unavailable
//! E: change bob OLD NEW      next event is ChangePassword{bob, OLD, NEW}
//! E: change-ok | change-unavailable | change-refused REASON…
//! E: close                   next event is Close
//! ```
//!
//! `<<N*TEXT>>` stands for TEXT repeated N times, `<<xHH>>` for the byte 0xHH;
//! E: arguments are split on spaces first. Every event must be claimed.

mod common;
use common::*;

use std::fmt::Write as _;

use proptest::prelude::*;
use protocols::poppassd::{
    PasswordChange, PasswordCheck, PoppassdConfig, PoppassdEvent, PoppassdSession,
};

#[derive(Debug)]
enum Step {
    Client(Vec<u8>),
    Server(Vec<u8>),
    /// An expected event, as [`describe`] shows it.
    Expect(String),
    Check(PasswordCheck),
    Change(PasswordChange),
}

fn describe(event: &PoppassdEvent) -> String {
    match event {
        PoppassdEvent::CheckPassword { user, old } => {
            format!("check {user} {}", old.expose().escape_ascii())
        }
        PoppassdEvent::ChangePassword { user, old, new } => format!(
            "change {user} {} {}",
            old.expose().escape_ascii(),
            new.expose().escape_ascii()
        ),
        PoppassdEvent::Close => "close".into(),
    }
}

fn parse_event(body: &str) -> Result<Step, String> {
    let words: Vec<&str> = body.split(' ').collect();
    let shown = |text: &str| expand(text).map(|b| b.escape_ascii().to_string());
    Ok(match words.as_slice() {
        ["check", user, old] => Step::Expect(format!("check {user} {}", shown(old)?)),
        ["change", user, old, new] => {
            Step::Expect(format!("change {user} {} {}", shown(old)?, shown(new)?))
        }
        ["check-ok"] => Step::Check(PasswordCheck::Correct),
        ["check-incorrect"] => Step::Check(PasswordCheck::Incorrect),
        ["check-unavailable"] => Step::Check(PasswordCheck::Unavailable),
        ["change-ok"] => Step::Change(PasswordChange::Changed),
        ["change-unavailable"] => Step::Change(PasswordChange::Unavailable),
        ["change-refused", reason @ ..] => Step::Change(PasswordChange::Refused(reason.join(" "))),
        ["close"] => Step::Expect("close".into()),
        _ => return Err(format!("unknown event line {body:?}")),
    })
}

fn parse_transcript(text: &str) -> Result<Vec<(usize, Step)>, String> {
    let mut steps: Vec<(usize, Step)> = Vec::new();
    let mut previous_was_client = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| format!("line {number}: {message}");
        let (kind, body) = match line.split_once(':') {
            Some((kind @ ("C" | "S" | "E"), body)) => {
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
                let mut bytes = expand(body).map_err(fail)?;
                bytes.extend_from_slice(b"\r\n");
                if previous_was_client && let Some((_, Step::Client(packet))) = steps.last_mut() {
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
            _ => parse_event(body).map_err(fail)?,
        };
        previous_was_client = kind == "C";
        steps.push((number, step));
    }
    Ok(steps)
}

fn run(steps: &[(usize, Step)], feed: Feed) -> Result<(), String> {
    let mut session = PoppassdSession::new(PoppassdConfig {
        server_name: "pop.example.net".into(),
    });
    let mut actual = Vec::new();
    let mut expected = Vec::new();
    let check = |session: &mut PoppassdSession, actual: &mut Vec<u8>, expected: &[u8], line| {
        while let Some(bytes) = session.poll_output() {
            actual.extend(bytes);
        }
        if actual.as_slice() == expected {
            return Ok(());
        }
        Err(format!(
            "output differs before line {line}\n  expected:\n{}  actual:\n{}",
            show(expected),
            show(actual)
        ))
    };
    for (line, step) in steps {
        if !matches!(step, Step::Server(_)) {
            check(&mut session, &mut actual, &expected, *line)?;
        }
        match step {
            Step::Server(bytes) => expected.extend_from_slice(bytes),
            Step::Client(packet) => {
                let pieces: Vec<&[u8]> = match feed {
                    Feed::Chunk => vec![packet],
                    Feed::ByteByByte => packet.chunks(1).collect(),
                };
                for piece in pieces {
                    session.handle_input(piece).map_err(|e| e.to_string())?;
                }
            }
            Step::Expect(wanted) => {
                let event = session.poll_event();
                if event.as_ref().map(describe).as_deref() != Some(wanted.as_str()) {
                    return Err(format!("line {line}: expected {wanted:?}, got {event:?}"));
                }
            }
            Step::Check(answer) => session.check_result(*answer),
            Step::Change(answer) => session.change_result(answer.clone()),
        }
    }
    check(&mut session, &mut actual, &expected, usize::MAX)?;
    match session.poll_event() {
        None => Ok(()),
        Some(event) => Err(format!("unclaimed event at the end: {event:?}")),
    }
}

#[test]
fn poppassd_transcripts() {
    let files = transcript_files("poppassd");
    assert!(files.len() >= 5, "transcripts missing: {files:?}");
    let mut failures = String::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable transcript");
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let steps = match parse_transcript(&text) {
            Ok(steps) => steps,
            Err(error) => {
                let _ = writeln!(failures, "{name}: {error}");
                continue;
            }
        };
        for feed in [Feed::Chunk, Feed::ByteByByte] {
            if let Err(error) = run(&steps, feed) {
                let _ = writeln!(failures, "{name} ({feed:?}): {error}");
            }
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

const TOKENS: &[&[u8]] = &[
    b"user bob\r\n",
    b"USER ",
    b"pass old\r\n",
    b"PASS ",
    b"newpass new\r\n",
    b"NEWPASS ",
    b"quit\r\n",
    b"\r\n",
    b"\n",
    b" ",
    b"\0",
    b"\xff",
];

fn drive(input: &[u8], read_sizes: &[usize], answers: &[u8]) -> Vec<u8> {
    let mut session = PoppassdSession::new(PoppassdConfig::default());
    let mut written = Vec::new();
    let mut answer = answers.iter().copied().cycle();
    let mut sizes = read_sizes.iter().copied().cycle();
    let mut rest = input;
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
            let mut pick = || answer.next().unwrap_or(0);
            match session.poll_event() {
                Some(PoppassdEvent::CheckPassword { .. }) => {
                    session.check_result(match pick() % 3 {
                        0 => PasswordCheck::Correct,
                        1 => PasswordCheck::Incorrect,
                        _ => PasswordCheck::Unavailable,
                    })
                }
                Some(PoppassdEvent::ChangePassword { .. }) => {
                    session.change_result(match pick() % 3 {
                        0 => PasswordChange::Changed,
                        1 => PasswordChange::Refused("Too short.\r\n".into()),
                        _ => PasswordChange::Unavailable,
                    })
                }
                Some(PoppassdEvent::Close) => assert!(session.is_closed()),
                None => break,
            }
        }
        if rest.is_empty() {
            return written;
        }
        let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
        (read, rest) = rest.split_at(size);
    }
}

fn input_strategy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
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
        prop_assert_eq!(&whole, &drive(&input, &[1], &answers));
        prop_assert_eq!(&whole, &drive(&input, &read_sizes, &answers));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        read_sizes in proptest::collection::vec(1usize..512, 1..8),
    ) {
        drive(&input, &read_sizes, &[0, 1, 2]);
    }
}
