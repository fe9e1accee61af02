//! The SMTP client against scripted server replies: every stage answered with
//! 2xx, 4xx and 5xx, PIPELINING and not, STARTTLS, SIZE, lost connections and
//! garbage. Each script is also replayed with the server's bytes fed one at a
//! time: the client must write the same bytes and report the same results.
//!
//! Script lines: `S: text` is a server line (CRLF appended; consecutive `S:`
//! lines are one packet), `C: text` a line the client must have written by then,
//! `E: starttls | senddata MESSAGE | tls | closed | failed REASON` an event the
//! client must emit (or an engine action: `tls` completes the handshake, `closed`
//! and `failed` report the connection's end). `MESSAGE` uses `\n` for CRLF.

use proptest::prelude::*;
use protocols::smtp_client::{
    Envelope, EnvelopeError, Outcome, RecipientResult, SmtpClient, SmtpClientConfig,
    SmtpClientEvent, Stage, TlsPolicy,
};

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope {
        mail_from: "alice@example.com".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        size_bytes: Some(100),
        eight_bit: true,
    }
}

fn config(tls: TlsPolicy) -> SmtpClientConfig {
    SmtpClientConfig {
        helo_name: "store.example".into(),
        tls,
    }
}

#[derive(Debug, Default, PartialEq)]
struct Outcome3 {
    written: String,
    results: Vec<RecipientResult>,
    closed: bool,
}

/// Runs `script`; `bytewise` feeds server packets one byte at a time.
fn run(config: SmtpClientConfig, envelope: Envelope, script: &str, bytewise: bool) -> Outcome3 {
    let mut client = SmtpClient::new(config, envelope).expect("valid envelope");
    let mut out = Outcome3::default();
    let mut written_checked = 0;
    let mut packet = String::new();
    let lines: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for (index, line) in lines.iter().enumerate() {
        if let Some(text) = line.strip_prefix("S:") {
            packet.push_str(text.strip_prefix(' ').unwrap_or(text));
            packet.push_str("\r\n");
            let next_is_server = lines.get(index + 1).is_some_and(|l| l.starts_with("S:"));
            if !next_is_server {
                feed(&mut client, packet.as_bytes(), bytewise, &mut out);
                packet.clear();
            }
            continue;
        }
        drain(&mut client, &mut out);
        if let Some(text) = line.strip_prefix("C:") {
            let want = format!("{}\r\n", text.strip_prefix(' ').unwrap_or(text));
            let got = &out.written[written_checked..];
            assert!(
                got.starts_with(&want),
                "line {index}: expected client {want:?}, client wrote {got:?}\n(all: {:?})",
                out.written
            );
            written_checked += want.len();
        } else if let Some(event) = line.strip_prefix("E: ") {
            let (verb, arg) = event.split_once(' ').unwrap_or((event, ""));
            match verb {
                "starttls" => assert_eq!(
                    client.poll_event(),
                    Some(SmtpClientEvent::StartTls),
                    "line {index}"
                ),
                "tls" => assert!(client.tls_established().is_ok()),
                "senddata" => {
                    assert_eq!(
                        client.poll_event(),
                        Some(SmtpClientEvent::SendData),
                        "line {index}"
                    );
                    let message = arg.replace("\\n", "\r\n");
                    // In two pieces, split inside a line.
                    let (a, b) = message.split_at(message.len() / 2);
                    assert!(client.push_data(a.as_bytes()).is_ok());
                    assert!(client.push_data(b.as_bytes()).is_ok());
                    assert!(client.finish_data().is_ok());
                }
                "closed" => client.connection_closed(),
                "failed" => client.connection_failed(arg),
                other => panic!("unknown event {other}"),
            }
        }
        drain(&mut client, &mut out);
    }
    drain_events(&mut client, &mut out);
    assert_eq!(
        &out.written[written_checked..],
        "",
        "client wrote more than the script expects"
    );
    out
}

fn feed(client: &mut SmtpClient, bytes: &[u8], bytewise: bool, out: &mut Outcome3) {
    if bytewise {
        for byte in bytes {
            let _ = client.handle_input(std::slice::from_ref(byte));
            drain(client, out);
        }
    } else {
        let _ = client.handle_input(bytes);
    }
}

fn drain(client: &mut SmtpClient, out: &mut Outcome3) {
    while let Some(bytes) = client.poll_output() {
        out.written.push_str(&String::from_utf8_lossy(&bytes));
    }
}

/// Takes the trailing Done/Close events (the script checks the others).
fn drain_events(client: &mut SmtpClient, out: &mut Outcome3) {
    while let Some(event) = client.poll_event() {
        match event {
            SmtpClientEvent::Done(results) => {
                assert!(out.results.is_empty(), "two Done events");
                out.results = results;
            }
            SmtpClientEvent::Close => out.closed = true,
            other => panic!("unclaimed event {other:?}"),
        }
    }
    drain(client, out);
}

/// Runs the script whole and byte by byte; both must agree.
fn check(config: SmtpClientConfig, envelope: Envelope, script: &str) -> Outcome3 {
    let whole = run(config.clone(), envelope.clone(), script, false);
    let bytewise = run(config, envelope, script, true);
    assert_eq!(whole, bytewise, "whole vs byte by byte");
    whole
}

fn summary(results: &[RecipientResult]) -> Vec<(String, Outcome, Stage, String)> {
    results
        .iter()
        .map(|r| (r.recipient.clone(), r.outcome, r.stage, r.status.clone()))
        .collect()
}

fn s(
    recipient: &str,
    outcome: Outcome,
    stage: Stage,
    status: &str,
) -> (String, Outcome, Stage, String) {
    (recipient.to_owned(), outcome, stage, status.to_owned())
}

const EHLO_PIPELINING: &str = "
S: 220 relay.example ESMTP
C: EHLO store.example
S: 250-relay.example
S: 250-PIPELINING
S: 250-SIZE 10240000
S: 250-8BITMIME
S: 250 ENHANCEDSTATUSCODES
";

#[test]
fn pipelined_delivery_with_per_recipient_results() {
    let script = format!(
        "{EHLO_PIPELINING}
        C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
        C: RCPT TO:<b@example.net>
        C: RCPT TO:<c@example.net>
        C: RCPT TO:<d@example.net>
        C: DATA
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 550 5.1.1 <c@example.net>: Recipient address rejected
        S: 450 4.2.0 <d@example.net>: Greylisted
        S: 354 End data with <CR><LF>.<CR><LF>
        E: senddata Subject: hi\\n\\n.leading dot\\n..two\\nend
        C: Subject: hi
        C:
        C: ..leading dot
        C: ...two
        C: end
        C: .
        S: 250 2.0.0 Ok: queued as 12345
        C: QUIT
        S: 221 2.0.0 Bye"
    );
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net", "c@example.net", "d@example.net"]),
        &script,
    );
    assert_eq!(
        summary(&out.results),
        [
            s("b@example.net", Outcome::Delivered, Stage::Message, "2.0.0"),
            s("c@example.net", Outcome::Permanent, Stage::Rcpt, "5.1.1"),
            s("d@example.net", Outcome::Temporary, Stage::Rcpt, "4.2.0"),
        ]
    );
    assert_eq!(
        out.results[1].diagnostic,
        "550 5.1.1 <c@example.net>: Recipient address rejected"
    );
    assert_eq!(out.results[1].reply_code, Some(550));
    assert!(out.closed);
}

#[test]
fn one_command_at_a_time_without_pipelining() {
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net", "c@example.net"]),
        "S: 220-relay.example ESMTP
         S: 220 multi-line greeting
         C: EHLO store.example
         S: 250-relay.example
         S: 250 SIZE
         C: MAIL FROM:<alice@example.com> SIZE=100
         S: 250 ok
         C: RCPT TO:<b@example.net>
         S: 550 no
         C: RCPT TO:<c@example.net>
         S: 251 will forward
         C: DATA
         S: 354 go
         E: senddata x
         C: x
         C: .
         S: 250 ok
         C: QUIT
         S: 221 bye",
    );
    assert_eq!(
        summary(&out.results),
        [
            s("b@example.net", Outcome::Permanent, Stage::Rcpt, "5.0.0"),
            s("c@example.net", Outcome::Delivered, Stage::Message, "2.0.0"),
        ]
    );
}

#[test]
fn helo_fallback_and_helo_refusal() {
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 old.example SMTP
         C: EHLO store.example
         S: 502 5.5.2 Error: command not recognized
         C: HELO store.example
         S: 250 old.example
         C: MAIL FROM:<alice@example.com>
         S: 250 ok
         C: RCPT TO:<b@example.net>
         S: 250 ok
         C: DATA
         S: 354 go
         E: senddata m
         C: m
         C: .
         S: 250 ok
         C: QUIT
         E: closed",
    );
    assert_eq!(out.results[0].outcome, Outcome::Delivered);
    assert!(out.closed);

    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x
         C: EHLO store.example
         S: 500 no
         C: HELO store.example
         S: 550 5.7.1 go away
         C: QUIT
         S: 221 bye",
    );
    assert_eq!(
        summary(&out.results),
        [s("b@example.net", Outcome::Permanent, Stage::Ehlo, "5.7.1")]
    );
}

#[test]
fn greeting_refusals_defer() {
    for (greeting, status) in [("554 5.3.2 no service", "4.3.2"), ("450 busy", "4.0.0")] {
        let out = check(
            config(TlsPolicy::Opportunistic),
            envelope(&["b@example.net"]),
            &format!("S: {greeting}\nC: QUIT\nS: 221 bye"),
        );
        assert_eq!(
            summary(&out.results),
            [s(
                "b@example.net",
                Outcome::Temporary,
                Stage::Greeting,
                status
            )]
        );
        assert!(out.closed);
    }
}

#[test]
fn ehlo_4xx_and_421_defer() {
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 451 4.3.0 try later\nC: QUIT\nS: 221 bye",
    );
    assert_eq!(
        summary(&out.results),
        [s("b@example.net", Outcome::Temporary, Stage::Ehlo, "4.3.0")]
    );
    // 421: no QUIT, the server is closing.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 421 4.3.2 shutting down",
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
    assert!(out.closed);
}

#[test]
fn mail_refusals_apply_to_everyone() {
    for (reply, outcome) in [
        ("452 4.3.1 Insufficient system storage", Outcome::Temporary),
        ("553 5.7.1 Sender rejected", Outcome::Permanent),
    ] {
        // Pipelined: the RCPT and DATA replies still come and are read.
        let out = check(
            config(TlsPolicy::Opportunistic),
            envelope(&["b@example.net", "c@example.net"]),
            &format!(
                "{EHLO_PIPELINING}
                 C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
                 C: RCPT TO:<b@example.net>
                 C: RCPT TO:<c@example.net>
                 C: DATA
                 S: {reply}
                 S: 503 5.5.1 need MAIL
                 S: 503 5.5.1 need MAIL
                 S: 503 5.5.1 need RCPT
                 C: QUIT
                 S: 221 bye"
            ),
        );
        assert!(
            out.results
                .iter()
                .all(|r| r.outcome == outcome && r.stage == Stage::Mail)
        );
        // Not pipelined: QUIT right after.
        let out = check(
            config(TlsPolicy::Opportunistic),
            envelope(&["b@example.net"]),
            &format!(
                "S: 220 x\nC: EHLO store.example\nS: 250 x\nC: MAIL FROM:<alice@example.com>\n\
                 S: {reply}\nC: QUIT\nS: 221 bye"
            ),
        );
        assert_eq!(out.results[0].outcome, outcome);
    }
}

#[test]
fn all_recipients_refused() {
    // Pipelined DATA refused: no data phase.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net", "c@example.net"]),
        &format!(
            "{EHLO_PIPELINING}
             C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
             C: RCPT TO:<b@example.net>
             C: RCPT TO:<c@example.net>
             C: DATA
             S: 250 ok
             S: 550 5.1.1 unknown
             S: 451 4.3.0 later
             S: 554 5.5.1 Error: no valid recipients
             C: QUIT
             S: 221 bye"
        ),
    );
    assert_eq!(
        summary(&out.results),
        [
            s("b@example.net", Outcome::Permanent, Stage::Rcpt, "5.1.1"),
            s("c@example.net", Outcome::Temporary, Stage::Rcpt, "4.3.0"),
        ]
    );
    // A server that says 354 anyway gets an empty message ended at once.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        &format!(
            "{EHLO_PIPELINING}
             C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
             C: RCPT TO:<b@example.net>
             C: DATA
             S: 250 ok
             S: 550 5.1.1 unknown
             S: 354 go ahead
             C: .
             S: 554 no recipients
             C: QUIT
             S: 221 bye"
        ),
    );
    assert_eq!(out.results[0].outcome, Outcome::Permanent);
    // Not pipelined: no DATA at all.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250 x\nC: MAIL FROM:<alice@example.com>\nS: 250 ok\n\
         C: RCPT TO:<b@example.net>\nS: 550 no\nC: QUIT\nS: 221 bye",
    );
    assert_eq!(out.results[0].outcome, Outcome::Permanent);
}

#[test]
fn data_and_end_of_data_refusals() {
    for (data_reply, outcome, stage) in [
        ("451 4.3.0 no spool", Outcome::Temporary, Stage::Data),
        ("554 5.3.0 no", Outcome::Permanent, Stage::Data),
        // A 250 where 354 was due: the server is confused, defer.
        ("250 ok", Outcome::Temporary, Stage::Data),
    ] {
        let out = check(
            config(TlsPolicy::Opportunistic),
            envelope(&["b@example.net", "c@example.net"]),
            &format!(
                "{EHLO_PIPELINING}
                 C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
                 C: RCPT TO:<b@example.net>
                 C: RCPT TO:<c@example.net>
                 C: DATA
                 S: 250 ok
                 S: 250 ok
                 S: 550 5.1.1 unknown
                 S: {data_reply}
                 C: QUIT
                 S: 221 bye"
            ),
        );
        assert_eq!(out.results[0].outcome, outcome, "{data_reply}");
        assert_eq!(out.results[0].stage, stage);
        assert_eq!(out.results[1].outcome, Outcome::Permanent);
    }
    for (dot_reply, outcome) in [
        ("552 5.3.4 Message too big", Outcome::Permanent),
        ("452 4.3.1 Insufficient storage", Outcome::Temporary),
        ("354 again?", Outcome::Temporary),
    ] {
        let out = check(
            config(TlsPolicy::Opportunistic),
            envelope(&["b@example.net"]),
            &format!(
                "{EHLO_PIPELINING}
                 C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
                 C: RCPT TO:<b@example.net>
                 C: DATA
                 S: 250 ok
                 S: 250 ok
                 S: 354 go
                 E: senddata body
                 C: body
                 C: .
                 S: {dot_reply}
                 C: QUIT
                 S: 221 bye"
            ),
        );
        assert_eq!(out.results[0].outcome, outcome, "{dot_reply}");
        assert_eq!(out.results[0].stage, Stage::Message);
    }
}

#[test]
fn starttls_then_ehlo_again_and_injection_dropped() {
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x
         C: EHLO store.example
         S: 250-x
         S: 250-STARTTLS
         S: 250 PIPELINING
         C: STARTTLS
         S: 220 2.0.0 Ready to start TLS
         S: 250 injected before the handshake
         E: starttls
         E: tls
         C: EHLO store.example
         S: 250-x
         S: 250-STARTTLS
         S: 250 8BITMIME
         C: MAIL FROM:<alice@example.com> BODY=8BITMIME
         S: 250 ok
         C: RCPT TO:<b@example.net>
         S: 250 ok
         C: DATA
         S: 354 go
         E: senddata m
         C: m
         C: .
         S: 250 ok
         C: QUIT
         S: 221 bye",
    );
    assert_eq!(out.results[0].outcome, Outcome::Delivered);
}

#[test]
fn starttls_policies() {
    // Required but not offered: defer, no MAIL.
    let out = check(
        config(TlsPolicy::Required),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250 x\nC: QUIT\nS: 221 bye",
    );
    assert_eq!(
        summary(&out.results),
        [s(
            "b@example.net",
            Outcome::Temporary,
            Stage::StartTls,
            "4.7.0"
        )]
    );
    // Required and refused: defer.
    let out = check(
        config(TlsPolicy::Required),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250-x\nS: 250 STARTTLS\nC: STARTTLS\n\
         S: 454 4.7.0 TLS not available\nC: QUIT\nS: 221 bye",
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
    assert!(out.results[0].diagnostic.contains("454 4.7.0"));
    // Opportunistic and refused: plaintext.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250-x\nS: 250 STARTTLS\nC: STARTTLS\n\
         S: 454 4.7.0 TLS not available\nC: MAIL FROM:<alice@example.com>\nS: 250 ok\n\
         C: RCPT TO:<b@example.net>\nS: 250 ok\nC: DATA\nS: 354 go\nE: senddata m\nC: m\nC: .\n\
         S: 250 ok\nC: QUIT\nS: 221 bye",
    );
    assert_eq!(out.results[0].outcome, Outcome::Delivered);
    // Disabled: never asked.
    let out = check(
        config(TlsPolicy::Disabled),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250-x\nS: 250 STARTTLS\nC: MAIL FROM:<alice@example.com>\n\
         S: 550 no\nC: QUIT\nS: 221 bye",
    );
    assert_eq!(out.results[0].outcome, Outcome::Permanent);
    // The handshake fails: the engine reports it.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250-x\nS: 250 STARTTLS\nC: STARTTLS\nS: 220 go\n\
         E: starttls\nE: failed TLS handshake failed: bad certificate",
    );
    assert_eq!(
        out.results[0].diagnostic,
        "TLS handshake failed: bad certificate"
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
}

#[test]
fn message_over_the_servers_size_is_refused_before_mail() {
    let mut env = envelope(&["b@example.net"]);
    env.size_bytes = Some(20_000_000);
    let out = check(
        config(TlsPolicy::Opportunistic),
        env,
        &format!("{EHLO_PIPELINING}\nC: QUIT\nS: 221 bye"),
    );
    assert_eq!(
        summary(&out.results),
        [s("b@example.net", Outcome::Permanent, Stage::Mail, "5.3.4")]
    );
}

#[test]
fn null_sender_and_no_size() {
    let env = Envelope {
        mail_from: String::new(),
        recipients: vec!["b@example.net".into()],
        size_bytes: None,
        eight_bit: false,
    };
    let out = check(
        config(TlsPolicy::Opportunistic),
        env,
        &format!(
            "{EHLO_PIPELINING}\nC: MAIL FROM:<>\nC: RCPT TO:<b@example.net>\nC: DATA\nE: closed"
        ),
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
}

#[test]
fn lost_connections_defer_what_is_open() {
    // Mid-data: the accepted recipient is deferred, the refused one stays refused.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net", "c@example.net"]),
        &format!(
            "{EHLO_PIPELINING}
             C: MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME
             C: RCPT TO:<b@example.net>
             C: RCPT TO:<c@example.net>
             C: DATA
             S: 250 ok
             S: 250 ok
             S: 550 no
             S: 354 go
             E: senddata part
             C: part
             C: .
             E: closed"
        ),
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
    assert_eq!(
        out.results[0].diagnostic,
        "connection closed by server at end of data"
    );
    assert_eq!(out.results[1].outcome, Outcome::Permanent);
    assert!(out.closed);
    // Before the greeting (connect timeout reported by the engine).
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "E: failed connect to relay.example:25: timed out",
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
    assert_eq!(out.results[0].status, "4.4.2");
    // After the results, a close is just the end.
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
        "S: 220 x\nC: EHLO store.example\nS: 250 x\nC: MAIL FROM:<alice@example.com>\nS: 550 no\n\
         C: QUIT\nE: closed",
    );
    assert_eq!(out.results[0].outcome, Outcome::Permanent);
    assert!(out.closed);
}

#[test]
fn garbage_from_the_server_defers_and_closes() {
    for garbage in ["HTTP/1.1 400 Bad Request", "250-x\nS: 251 y", "2500"] {
        let out = check(
            config(TlsPolicy::Opportunistic),
            envelope(&["b@example.net"]),
            &format!("S: 220 x\nC: EHLO store.example\nS: {garbage}"),
        );
        assert_eq!(out.results[0].outcome, Outcome::Temporary, "{garbage}");
        assert!(out.results[0].diagnostic.starts_with("protocol error"));
        assert!(out.closed);
    }
    let long = format!("S: 220 {}", "x".repeat(5000));
    let out = check(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@x.net"]),
        &long,
    );
    assert_eq!(out.results[0].outcome, Outcome::Temporary);
}

#[test]
fn out_of_sequence_calls_are_refused() {
    let mut client = SmtpClient::new(
        config(TlsPolicy::Opportunistic),
        envelope(&["b@example.net"]),
    )
    .expect("valid");
    assert!(client.push_data(b"x").is_err());
    assert!(client.finish_data().is_err());
    assert!(client.tls_established().is_err());
}

#[test]
fn bad_envelopes_are_refused() {
    let cfg = config(TlsPolicy::Opportunistic);
    let bad = |env: Envelope| SmtpClient::new(cfg.clone(), env).err();
    assert_eq!(bad(envelope(&[])), Some(EnvelopeError::NoRecipients));
    for rcpt in ["a b@x", "a@x>\r\nRSET", "<a@x>", "é@x", ""] {
        assert!(
            matches!(bad(envelope(&[rcpt])), Some(EnvelopeError::BadAddress(_))),
            "{rcpt:?}"
        );
    }
    let mut env = envelope(&["b@x"]);
    env.mail_from = "a@x\r\nDATA".into();
    assert!(matches!(bad(env), Some(EnvelopeError::BadAddress(_))));
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}@x")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        bad(envelope(&many)),
        Some(EnvelopeError::TooManyRecipients(1001))
    ));
    let helo = SmtpClientConfig {
        helo_name: "a b".into(),
        tls: TlsPolicy::Disabled,
    };
    assert!(matches!(
        SmtpClient::new(helo, envelope(&["b@x"])).err(),
        Some(EnvelopeError::BadHeloName(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random server bytes never panic, and the session ends with exactly one
    /// Done once the engine reports the connection closed.
    #[test]
    fn random_servers_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400),
                                  piece in 1usize..40, pipelining in any::<bool>()) {
        let mut client = SmtpClient::new(config(TlsPolicy::Opportunistic),
                                         envelope(&["b@x.net", "c@x.net"])).expect("valid");
        let prefix: &[u8] = if pipelining {
            b"220 x\r\n250-x\r\n250-PIPELINING\r\n250 SIZE 50\r\n"
        } else {
            b"220 x\r\n250 x\r\n"
        };
        let mut done = 0;
        let mut bytes = prefix.to_vec();
        bytes.extend(&input);
        for chunk in bytes.chunks(piece) {
            let _ = client.handle_input(chunk);
            let _ = client.poll_output();
            while let Some(event) = client.poll_event() {
                match event {
                    SmtpClientEvent::SendData => {
                        let _ = client.push_data(b"a\r\n.b\r\n");
                        let _ = client.finish_data();
                    }
                    SmtpClientEvent::StartTls => { let _ = client.tls_established(); }
                    SmtpClientEvent::Done(results) => {
                        prop_assert_eq!(results.len(), 2);
                        done += 1;
                    }
                    SmtpClientEvent::Close => {}
                }
            }
        }
        client.connection_closed();
        while let Some(event) = client.poll_event() {
            if let SmtpClientEvent::Done(results) = event {
                prop_assert_eq!(results.len(), 2);
                done += 1;
            }
        }
        prop_assert_eq!(done, 1);
        prop_assert!(client.is_closed());
    }
}
