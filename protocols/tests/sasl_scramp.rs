//! SCRAM-SHA-256 against a client nobody here wrote: Python's `scramp` (PyPI), which
//! checks the server signature. Needs `python3` and `pip install scramp`; fails with
//! that message when they are missing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use protocols::sasl::{Credentials, SaslPolicy, SaslServer, SaslStep, ScramSecret};

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sasl_scramp_client.py");

/// Runs one exchange; `tamper` flips a bit of the server signature. Returns scramp's
/// verdict line and the server's outcome.
fn exchange(
    user: &str,
    client_password: &str,
    stored_password: &str,
    tamper: bool,
) -> (String, bool) {
    let mut child = Command::new("python3")
        .args([HELPER, user, client_password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run the scramp test");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut read = |line: &mut String| {
        line.clear();
        stdout.read_line(line).expect("read from helper");
        line.trim_end().to_owned()
    };

    let client_first = read(&mut line);
    assert!(
        !client_first.starts_with("scramp missing"),
        "the scramp test needs Python's scramp package: pip install scramp"
    );
    let policy = SaslPolicy::new(false, false);
    let mut server = SaslServer::start("SCRAM-SHA-256", &policy).expect("start");
    let step = server.initial(Some(client_first.as_bytes()));
    assert!(matches!(step, SaslStep::NeedCredentials(_)), "{step:?}");
    let secret = ScramSecret::derive(stored_password.as_bytes(), b"scramp-test-salt", 4096);
    let SaslStep::Challenge(server_first) = server.provide(Credentials::ScramSha256(secret)) else {
        panic!("no server-first");
    };
    stdin
        .write_all(&server_first)
        .and_then(|()| stdin.write_all(b"\n"))
        .expect("write");
    stdin.flush().expect("flush");

    let client_final = read(&mut line);
    let (success, mut server_final) = match server.step(client_final.as_bytes()) {
        SaslStep::Success {
            additional_data: Some(data),
            authcid,
            ..
        } => {
            assert_eq!(authcid, user);
            (true, data)
        }
        SaslStep::Failure(_) => (false, b"e=invalid-proof".to_vec()),
        other => panic!("{other:?}"),
    };
    if tamper {
        // "v=" + base64: change one base64 character.
        server_final[3] = if server_final[3] == b'A' { b'B' } else { b'A' };
    }
    stdin
        .write_all(&server_final)
        .and_then(|()| stdin.write_all(b"\n"))
        .expect("write");
    stdin.flush().expect("flush");
    let verdict = read(&mut line);
    let _ = child.wait();
    (verdict, success)
}

#[test]
fn scramp_logs_in_and_verifies_the_server_signature() {
    let (verdict, success) = exchange("alice@example.com", "correct horse", "correct horse", false);
    assert!(success);
    assert_eq!(verdict, "verified");
}

#[test]
fn scramp_rejects_a_forged_server_signature() {
    let (verdict, success) = exchange("alice@example.com", "correct horse", "correct horse", true);
    assert!(success);
    assert!(verdict.starts_with("rejected"), "{verdict}");
}

#[test]
fn wrong_password_fails_on_the_server() {
    let (verdict, success) = exchange("alice@example.com", "wrong", "correct horse", false);
    assert!(!success);
    assert!(verdict.starts_with("rejected"), "{verdict}");
}
