//! Parity with Dovecot: for every message in CPython's email test data, the
//! precomputed ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE and section bytes must equal
//! Dovecot 2.3's answers for the same appended bytes, recorded by
//! `tests/fixtures/dovecot_answers.py` into `tests/fixtures/dovecot/*.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use store::message::{SectionText, normalize_crlf, precompute};

/// Messages where we knowingly answer differently from Dovecot, with the reason.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

fn cpython_data_dir() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import test.test_email, os; print(os.path.dirname(test.test_email.__file__))",
        ])
        .output()
        .expect("python3 with its test package is needed for the parity test");
    assert!(
        out.status.success(),
        "python3 could not locate test.test_email"
    );
    let dir = String::from_utf8(out.stdout).expect("utf-8 path");
    PathBuf::from(dir.trim()).join("data")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dovecot")
}

fn parse_section(name: &str) -> (Vec<u32>, SectionText) {
    let mut path = Vec::new();
    let mut text = SectionText::Body;
    for piece in name.split('.').filter(|p| !p.is_empty()) {
        match piece {
            "MIME" => text = SectionText::Mime,
            "HEADER" => text = SectionText::Header,
            "TEXT" => text = SectionText::Text,
            n => path.push(n.parse().expect("part number")),
        }
    }
    (path, text)
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every difference for one message, as readable lines.
fn differences(name: &str, raw: &[u8], answers: &serde_json::Value) -> Vec<String> {
    let msg = normalize_crlf(raw);
    let pre = precompute(&msg);
    let mut diffs = Vec::new();
    let items = &answers["items"];
    let want = |k: &str| {
        items[k]
            .as_str()
            .map(|s| s.chars().map(|c| c as u8).collect::<Vec<u8>>())
    };
    for (key, got) in [
        ("ENVELOPE", pre.envelope.clone()),
        ("BODYSTRUCTURE", pre.bodystructure.clone()),
        ("BODY", pre.body.clone()),
        ("RFC822.SIZE", pre.size.to_string().into_bytes()),
    ] {
        let expected = want(key).unwrap_or_default();
        if expected != got {
            diffs.push(format!(
                "{name} {key}\n  dovecot: {}\n  ours:    {}",
                show(&expected),
                show(&got)
            ));
        }
    }
    let sections = answers["sections"].as_object().expect("sections");
    for (section, value) in sections {
        let expected = value.as_str().map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64")
        });
        let (path, text) = parse_section(section);
        let got = pre
            .section(&path, text)
            .and_then(|r| r.to_range())
            .and_then(|r| msg.get(r))
            .map(<[u8]>::to_vec);
        if expected != got {
            diffs.push(format!(
                "{name} BODY[{section}]\n  dovecot: {:?}\n  ours:    {:?}",
                expected.as_deref().map(show),
                got.as_deref().map(show)
            ));
        }
    }
    diffs
}

#[test]
fn cpython_messages_match_dovecot() {
    let data = cpython_data_dir();
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .expect("CPython email test data")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("msg_") && n.ends_with(".txt"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 40,
        "expected CPython's msg_*.txt, found {}",
        names.len()
    );
    let mut matched = 0;
    let mut failures = Vec::new();
    for name in &names {
        let raw = std::fs::read(data.join(name)).expect("read message");
        let fixture = fixtures_dir().join(name.replace(".txt", ".json"));
        let answers: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&fixture).expect("fixture; run dovecot_answers.py"),
        )
        .expect("fixture json");
        let diffs = differences(name, &raw, &answers);
        let known = KNOWN_DIFFERENCES.iter().any(|(n, _)| n == name);
        match (diffs.is_empty(), known) {
            (true, false) => matched += 1,
            (true, true) => failures.push(format!(
                "{name} now matches: drop it from KNOWN_DIFFERENCES"
            )),
            (false, true) => {}
            (false, false) => failures.extend(diffs),
        }
    }
    eprintln!(
        "{matched}/{} CPython messages match Dovecot fully",
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
