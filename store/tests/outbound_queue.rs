//! The outbound queue through its public API: enqueue and read back, crash
//! leftovers, the backoff schedule and retry window, bounces (parsed back with
//! Python's `email` package, a reader nobody here wrote), null senders, flush,
//! delete, damaged files.

use std::fs;
use std::path::Path;
use std::process::Command;

use store::StoreError;
use store::outbound::{
    AttemptOutcome, EntryState, Outbound, QueueId, RecipientAttempt, RecipientState, RetryPolicy,
};

type Result<T> = std::result::Result<T, StoreError>;

const T0: u64 = 1_700_000_000;
const MESSAGE: &[u8] =
    b"From: alice@example.com\nTo: bob@example.net\nSubject: hello\n\nbody\n.dot\n";

fn queue() -> Result<(tempfile::TempDir, Outbound)> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let queue = Outbound::open_dir(&dir.path().join("outbound"), RetryPolicy::default())?;
    Ok((dir, queue))
}

fn attempt(
    recipient: &str,
    outcome: AttemptOutcome,
    status: &str,
    diagnostic: &str,
) -> RecipientAttempt {
    RecipientAttempt {
        recipient: recipient.into(),
        outcome,
        status: status.into(),
        diagnostic: diagnostic.into(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn enqueue_and_read_back() -> Result<()> {
    let (_dir, queue) = queue()?;
    let id = queue.enqueue(
        MESSAGE,
        "alice@example.com",
        &["bob@example.net", "Carol+x@Example.net", "BOB@example.net"],
        T0,
    )?;
    let entry = queue.get(&id)?;
    assert_eq!(entry.pending(), ["bob@example.net", "Carol+x@Example.net"]);
    assert_eq!((entry.attempts, entry.next_attempt_unix), (0, T0));
    let stored = queue.message(&entry)?;
    assert_eq!(
        stored,
        b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nbody\r\n.dot\r\n"
    );
    assert_eq!(queue.due(T0)?, vec![entry.clone()]);
    assert!(queue.due(T0 - 1)?.is_empty());
    assert_eq!(queue.list()?.entries, vec![entry]);
    assert_eq!(
        names(queue.dir()),
        [format!("{id}.env"), format!("{id}.msg")]
    );
    // Bad input is refused before anything is written.
    let none: [&str; 0] = [];
    assert!(queue.enqueue(MESSAGE, "a@x", &none, T0).is_err());
    assert!(
        queue
            .enqueue(MESSAGE, "a@x", &["b@x>\r\nRSET"], T0)
            .is_err()
    );
    assert!(queue.enqueue(MESSAGE, "<a@x>", &["b@x"], T0).is_err());
    assert_eq!(queue.list()?.entries.len(), 1);
    Ok(())
}

#[test]
fn crash_leftovers_are_ignored_and_cleaned() -> Result<()> {
    let (dir, queue) = queue()?;
    let id = queue.enqueue(MESSAGE, "a@example.com", &["b@example.net"], T0)?;
    let qdir = queue.dir().to_path_buf();
    // A write cut short, and a message whose envelope never made it.
    let write = |name: &str, bytes: &[u8]| {
        fs::write(qdir.join(name), bytes).map_err(|e| StoreError::io(name, e))
    };
    write(".0000000001.1.2.env.tmp.99.1", b"msgstore-outbound 1\nid")?;
    write("0000000002.9.9.msg", b"orphan")?;
    write("notes.txt", b"not ours")?;
    assert_eq!(queue.list()?.entries.len(), 1);
    assert!(queue.list()?.damaged.is_empty());
    drop(queue);
    let queue = Outbound::open_dir(&dir.path().join("outbound"), RetryPolicy::default())?;
    assert_eq!(
        names(queue.dir()),
        [format!("{id}.env"), format!("{id}.msg"), "notes.txt".into()]
    );
    assert_eq!(queue.due(T0)?.len(), 1);
    Ok(())
}

#[test]
fn damaged_files_are_reported_not_sent() -> Result<()> {
    let (_dir, queue) = queue()?;
    let a = queue.enqueue(MESSAGE, "a@example.com", &["b@example.net"], T0)?;
    let b = queue.enqueue(MESSAGE, "a@example.com", &["c@example.net"], T0)?;
    let env = queue.dir().join(format!("{a}.env"));
    let mut bytes = fs::read(&env).map_err(|e| StoreError::io(&env, e))?;
    bytes[25] ^= 0x01;
    fs::write(&env, &bytes).map_err(|e| StoreError::io(&env, e))?;
    let listing = queue.list()?;
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.damaged.len(), 1);
    assert_eq!(listing.damaged[0].0, a);
    // A message changed behind the queue's back is not sent.
    let msg = queue.dir().join(format!("{b}.msg"));
    fs::write(&msg, b"From: mallory\r\n\r\nother\r\n").map_err(|e| StoreError::io(&msg, e))?;
    let entry = queue.get(&b)?;
    assert!(matches!(
        queue.message(&entry),
        Err(StoreError::Corrupt { .. })
    ));
    // Ids from outside cannot walk out of the queue.
    assert!(matches!(
        QueueId::parse("../../etc/passwd"),
        Err(StoreError::NoSuchQueueEntry { .. })
    ));
    Ok(())
}

#[test]
fn backoff_schedule_and_retry_window() -> Result<()> {
    let (_dir, queue) = queue()?;
    let id = queue.enqueue(MESSAGE, "alice@example.com", &["bob@example.net"], T0)?;
    let temp = [attempt(
        "bob@example.net",
        AttemptOutcome::Temporary,
        "4.2.0",
        "450 4.2.0 Greylisted",
    )];
    let mut now = T0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        match queue.record_attempt(&id, &temp, now)? {
            EntryState::Retry { next_attempt_unix } => {
                waits.push(next_attempt_unix - now);
                assert!(queue.due(next_attempt_unix - 1)?.is_empty());
                assert_eq!(queue.due(next_attempt_unix)?.len(), 1);
                now = next_attempt_unix;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(waits, [60, 300, 900, 3600, 7200, 14_400, 14_400, 14_400]);
    let entry = queue.get(&id)?;
    assert_eq!(entry.attempts, 8);
    assert_eq!(entry.recipients[0].diagnostic, "450 4.2.0 Greylisted");
    // No bounce while the window is open.
    assert!(queue.bounce_due(now, "store.example")?.is_empty());
    // The next attempt is clamped to the window's end; failing there bounces.
    let end = T0 + 5 * 86_400;
    let mut last = now;
    loop {
        match queue.record_attempt(&id, &temp, last)? {
            EntryState::Retry { next_attempt_unix } => {
                assert!(next_attempt_unix <= end);
                last = next_attempt_unix;
            }
            EntryState::BounceDue => break,
            EntryState::Finished => panic!("finished without a bounce"),
        }
    }
    assert_eq!(last, end);
    let entry = queue.get(&id)?;
    assert_eq!(entry.recipients[0].state, RecipientState::Failed);
    assert_eq!(entry.recipients[0].status.as_deref(), Some("4.2.0"));
    assert!(entry.recipients[0].diagnostic.starts_with(
        "message expired after 5 days in the queue; last error: 450 4.2.0 Greylisted"
    ));
    let bounces = queue.bounce_due(last, "store.example")?;
    assert_eq!(bounces.len(), 1);
    queue.delete(&id)?;
    assert!(queue.list()?.entries.is_empty());
    assert!(matches!(
        queue.delete(&id),
        Err(StoreError::NoSuchQueueEntry { .. })
    ));
    Ok(())
}

#[test]
fn a_short_window_is_configurable_and_expires_in_bounce_due() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
    let policy = RetryPolicy {
        backoff_secs: vec![10],
        retry_window_secs: 3600,
    };
    let queue = Outbound::open_dir(dir.path(), policy)?;
    let id = queue.enqueue(MESSAGE, "alice@example.com", &["bob@example.net"], T0)?;
    // Never attempted: not bounced even past the window (it gets one try).
    assert!(queue.bounce_due(T0 + 7200, "h")?.is_empty());
    let state = queue.record_attempt(
        &id,
        &[attempt(
            "bob@example.net",
            AttemptOutcome::Temporary,
            "",
            "connection refused",
        )],
        T0 + 10,
    )?;
    assert_eq!(
        state,
        EntryState::Retry {
            next_attempt_unix: T0 + 20
        }
    );
    let bounces = queue.bounce_due(T0 + 3600, "h")?;
    assert_eq!(bounces.len(), 1);
    let text = String::from_utf8_lossy(&bounces[0].message).into_owned();
    assert!(text.contains("Status: 4.4.7\r\n"), "{text}");
    assert!(
        text.contains("message expired after 1 hour in the queue; last error: connection refused")
    );
    assert!(text.contains("Diagnostic-Code: x-msgstore; message expired"));
    Ok(())
}

#[test]
fn all_delivered_finishes_and_flush_makes_due() -> Result<()> {
    let (_dir, queue) = queue()?;
    let id = queue.enqueue(MESSAGE, "alice@example.com", &["b@x.net", "c@x.net"], T0)?;
    let state = queue.record_attempt(
        &id,
        &[
            attempt(
                "b@x.net",
                AttemptOutcome::Delivered,
                "2.0.0",
                "250 2.0.0 Ok",
            ),
            attempt(
                "c@x.net",
                AttemptOutcome::Temporary,
                "4.4.1",
                "connection timed out",
            ),
        ],
        T0,
    )?;
    assert_eq!(
        state,
        EntryState::Retry {
            next_attempt_unix: T0 + 60
        }
    );
    assert_eq!(queue.get(&id)?.pending(), ["c@x.net"]);
    assert!(queue.due(T0 + 1)?.is_empty());
    assert_eq!(queue.flush(T0 + 1)?, 1);
    assert_eq!(queue.due(T0 + 1)?.len(), 1);
    let state = queue.record_attempt(
        &id,
        &[attempt(
            "c@x.net",
            AttemptOutcome::Delivered,
            "2.0.0",
            "250 ok",
        )],
        T0 + 2,
    )?;
    assert_eq!(state, EntryState::Finished);
    assert!(names(queue.dir()).is_empty());
    Ok(())
}

#[test]
fn null_sender_failures_are_dropped_without_a_bounce() -> Result<()> {
    let (_dir, queue) = queue()?;
    let id = queue.enqueue(b"Subject: bounce\r\n\r\nx\r\n", "", &["b@x.net"], T0)?;
    assert_eq!(queue.get(&id)?.mail_from, "");
    let state = queue.record_attempt(
        &id,
        &[attempt(
            "b@x.net",
            AttemptOutcome::Permanent,
            "5.1.1",
            "550 5.1.1 unknown",
        )],
        T0,
    )?;
    assert_eq!(state, EntryState::Finished);
    assert!(queue.bounce_due(T0, "h")?.is_empty());
    assert!(names(queue.dir()).is_empty());
    Ok(())
}

#[test]
fn permanent_failure_bounces_with_a_dsn() -> Result<()> {
    let (_dir, queue) = queue()?;
    let id = queue.enqueue(
        MESSAGE,
        "alice@example.com",
        &["bob@example.net", "carol@example.net", "dave@example.net"],
        T0,
    )?;
    let state = queue.record_attempt(
        &id,
        &[
            attempt(
                "bob@example.net",
                AttemptOutcome::Permanent,
                "5.1.1",
                "550 5.1.1 <bob@example.net>: Recipient address rejected",
            ),
            attempt(
                "carol@example.net",
                AttemptOutcome::Delivered,
                "2.0.0",
                "250 2.0.0 Ok",
            ),
            attempt(
                "dave@example.net",
                AttemptOutcome::Temporary,
                "4.3.0",
                "451 4.3.0 later",
            ),
        ],
        T0 + 5,
    )?;
    // dave is still pending: no bounce yet (one DSN per message, at the end).
    assert!(matches!(state, EntryState::Retry { .. }));
    assert!(queue.bounce_due(T0 + 5, "store.example")?.is_empty());
    let state = queue.record_attempt(
        &id,
        &[attempt(
            "dave@example.net",
            AttemptOutcome::Permanent,
            "5.7.1",
            "554 5.7.1 spam",
        )],
        T0 + 65,
    )?;
    assert_eq!(state, EntryState::BounceDue);
    assert!(
        queue.due(T0 + 1_000_000)?.is_empty(),
        "nothing left to send"
    );
    let bounces = queue.bounce_due(T0 + 70, "store.example")?;
    assert_eq!(bounces.len(), 1);
    let bounce = &bounces[0];
    assert_eq!(
        (bounce.id.clone(), bounce.to.as_str()),
        (id.clone(), "alice@example.com")
    );
    check_dsn_with_python(&bounce.message, &id);
    // The engine queues the DSN from <> and deletes the entry.
    let dsn_id = queue.enqueue(&bounce.message, "", &[bounce.to.as_str()], T0 + 70)?;
    queue.delete(&id)?;
    assert_eq!(queue.list()?.entries.len(), 1);
    assert_eq!(queue.get(&dsn_id)?.mail_from, "");
    Ok(())
}

/// Parses the DSN with Python's `email` package and checks its structure.
fn check_dsn_with_python(message: &[u8], id: &QueueId) {
    let script = r#"
import email, email.policy, sys
raw = sys.stdin.buffer.read()
assert all(b < 128 for b in raw), "8-bit byte in the DSN"
assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
msg = email.message_from_bytes(raw, policy=email.policy.default)
assert msg.get_content_type() == "multipart/report", msg.get_content_type()
assert msg.get_param("report-type") == "delivery-status"
assert msg["To"].addresses[0].addr_spec == "alice@example.com", msg["To"]
assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@store.example"
assert msg["Auto-Submitted"] == "auto-replied"
assert msg["Date"].datetime is not None
assert not msg.defects, msg.defects
parts = list(msg.iter_parts())
assert [p.get_content_type() for p in parts] == [
    "text/plain", "message/delivery-status", "text/rfc822-headers"], [p.get_content_type() for p in parts]
human = parts[0].get_content()
assert "<bob@example.net>: 550 5.1.1 <bob@example.net>: Recipient address rejected" in human, human
assert "<dave@example.net>: 554 5.7.1 spam" in human
assert "carol" not in human
# message/delivery-status: per-message block then one block per recipient
blocks = parts[1].get_payload()
per_message = blocks[0]
assert per_message["Reporting-MTA"] == "dns; store.example"
assert per_message["X-Msgstore-Queue-ID"] == sys.argv[1]
recipients = blocks[1:]
assert [r["Final-Recipient"] for r in recipients] == ["rfc822; bob@example.net", "rfc822; dave@example.net"]
assert [r["Action"] for r in recipients] == ["failed", "failed"]
assert [r["Status"] for r in recipients] == ["5.1.1", "5.7.1"]
assert recipients[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected"
headers = parts[2].get_payload()
headers = headers if isinstance(headers, str) else headers[0].as_string()
assert "Subject: hello" in headers and "body" not in headers, headers
print("ok")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, id.as_str()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message)
        .expect("write");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python rejected the DSN:\n{}\n---\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(message)
    );
}
