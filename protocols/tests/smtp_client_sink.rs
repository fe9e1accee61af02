//! The SMTP client over a real socket against the Python sink the engine's
//! integration tests use (`store/tests/fixtures/smtp_sink.py`): delivery byte for
//! byte (dot-stuffing undone by the other side), refusals at RCPT, a greylisting
//! 4xx that passes on retry, a 5xx after the data, a refusing greeting.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use protocols::smtp_client::{
    Envelope, Outcome, RecipientResult, SmtpClient, SmtpClientConfig, SmtpClientEvent, TlsPolicy,
};

struct Sink {
    child: Child,
    port: u16,
    spool: PathBuf,
    dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory under the system temp dir (protocols has no tempfile crate).
fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("smtp-sink-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn start_sink(args: &[&str]) -> Sink {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/smtp_sink.py");
    let dir = temp_dir("spool");
    let spool = dir.join("spool");
    let mut child = match Command::new("python3")
        .arg(&script)
        .args(["--port", "0", "--spool"])
        .arg(&spool)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("python3 is needed for the SMTP sink: {e}"),
    };
    let mut line = String::new();
    let stdout = child.stdout.take().expect("sink stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("sink prints READY");
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("sink did not start: {line:?}"));
    Sink {
        child,
        port,
        spool,
        dir,
    }
}

/// Runs one client session over TCP; returns the results.
fn deliver(port: u16, envelope: Envelope, message: &[u8]) -> Vec<RecipientResult> {
    let config = SmtpClientConfig {
        helo_name: "store.test".into(),
        tls: TlsPolicy::Opportunistic,
    };
    let mut client = SmtpClient::new(config, envelope).expect("valid envelope");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut results = None;
    let mut buffer = vec![0u8; 8192];
    loop {
        if let Some(out) = client.poll_output() {
            stream.write_all(&out).expect("write");
        }
        let mut closed = false;
        while let Some(event) = client.poll_event() {
            match event {
                SmtpClientEvent::SendData => {
                    // Small pieces, so stuffing runs across piece boundaries.
                    for piece in message.chunks(7) {
                        client.push_data(piece).expect("data phase");
                    }
                    client.finish_data().expect("data phase");
                }
                SmtpClientEvent::StartTls => panic!("the sink offers no STARTTLS"),
                SmtpClientEvent::Done(r) => results = Some(r),
                SmtpClientEvent::Close => closed = true,
            }
        }
        if let Some(out) = client.poll_output() {
            stream.write_all(&out).expect("write");
        }
        if closed {
            break;
        }
        match stream.read(&mut buffer) {
            Ok(0) => client.connection_closed(),
            Ok(n) => {
                let _ = client.handle_input(&buffer[..n]);
            }
            Err(e) => client.connection_failed(&format!("read: {e}")),
        }
    }
    results.expect("a Done event")
}

fn envelope(recipients: &[&str], message: &[u8]) -> Envelope {
    Envelope {
        mail_from: "alice@example.com".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        size_bytes: Some(message.len() as u64),
        eight_bit: message.iter().any(|b| *b >= 0x80),
    }
}

fn outcomes(results: &[RecipientResult]) -> Vec<(&str, Outcome)> {
    results
        .iter()
        .map(|r| (r.recipient.as_str(), r.outcome))
        .collect()
}

const MESSAGE: &[u8] = b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: t\r\n\r\n\
.leading dot\r\n..two dots\r\n.\r\nla\xc3\xa9 8-bit\r\nlast line without CRLF";

#[test]
fn delivers_byte_for_byte_with_per_recipient_results() {
    let sink = start_sink(&[
        "--size",
        "10000000",
        "--reject",
        "nobody@example.net",
        "--tempfail",
        "later@example.net",
    ]);
    let results = deliver(
        sink.port,
        envelope(
            &["bob@example.net", "nobody@example.net", "later@example.net"],
            MESSAGE,
        ),
        MESSAGE,
    );
    assert_eq!(
        outcomes(&results),
        [
            ("bob@example.net", Outcome::Delivered),
            ("nobody@example.net", Outcome::Permanent),
            ("later@example.net", Outcome::Temporary),
        ]
    );
    assert_eq!(results[1].status, "5.1.1");
    let stored = std::fs::read(sink.spool.join("000001.eml")).expect("stored message");
    let mut want = MESSAGE.to_vec();
    want.extend_from_slice(b"\r\n");
    assert_eq!(stored, want);
    let envelope = std::fs::read_to_string(sink.spool.join("000001.json")).expect("envelope");
    assert!(
        envelope.contains("\"rcpt_to\": [\"bob@example.net\"]"),
        "{envelope}"
    );
    assert!(envelope.contains("BODY=8BITMIME"), "{envelope}");
    assert!(
        envelope.contains(&format!("SIZE={}", MESSAGE.len())),
        "{envelope}"
    );
}

#[test]
fn greylisting_passes_on_retry_and_without_pipelining() {
    let sink = start_sink(&["--tempfail-once", "bob@example.net", "--no-pipelining"]);
    let first = deliver(sink.port, envelope(&["bob@example.net"], MESSAGE), MESSAGE);
    assert_eq!(outcomes(&first), [("bob@example.net", Outcome::Temporary)]);
    assert!(first[0].diagnostic.starts_with("451 4.3.0"));
    let second = deliver(sink.port, envelope(&["bob@example.net"], MESSAGE), MESSAGE);
    assert_eq!(outcomes(&second), [("bob@example.net", Outcome::Delivered)]);
}

#[test]
fn refusals_after_data_and_at_greeting() {
    let sink = start_sink(&["--dot", "554 5.7.1 Message rejected as spam"]);
    let results = deliver(sink.port, envelope(&["bob@example.net"], MESSAGE), MESSAGE);
    assert_eq!(
        outcomes(&results),
        [("bob@example.net", Outcome::Permanent)]
    );
    assert_eq!(results[0].status, "5.7.1");

    let dir = temp_dir("rules");
    let rules = dir.join("rules.json");
    std::fs::write(&rules, br#"{"greeting": "554 5.3.2 no service today"}"#).expect("rules");
    let sink = start_sink(&["--rules", rules.to_str().expect("utf-8 path")]);
    let results = deliver(sink.port, envelope(&["bob@example.net"], MESSAGE), MESSAGE);
    assert_eq!(
        outcomes(&results),
        [("bob@example.net", Outcome::Temporary)]
    );
    // The rules are live: now the server says 452 at MAIL.
    std::fs::write(
        &rules,
        br#"{"mail": "452 4.3.1 Insufficient system storage"}"#,
    )
    .expect("rules");
    let results = deliver(sink.port, envelope(&["bob@example.net"], MESSAGE), MESSAGE);
    assert_eq!(
        outcomes(&results),
        [("bob@example.net", Outcome::Temporary)]
    );
    assert_eq!(results[0].status, "4.3.1");
    let _ = std::fs::remove_dir_all(&dir);
}
