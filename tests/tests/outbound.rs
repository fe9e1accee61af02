//! End-to-end outbound queue: external forwards leave through `[outbound] relay`
//! (a scriptable SMTP sink, store/tests/fixtures/smtp_sink.py), byte-exact with
//! the original envelope sender; a 4xx is retried, a 5xx bounces (into the local
//! sender's INBOX, or through the relay to an external sender, never to `<>`);
//! `msgstore queue list|flush|del` online and offline; the spool survives kill -9.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Options, Site, python};

/// How long a test waits for the queue to do something.
const WAIT: Duration = Duration::from_secs(30);

/// The SMTP sink the server relays to; stopped on drop.
struct Sink {
    child: Child,
    port: u16,
    spool: PathBuf,
    rules: PathBuf,
}

impl Sink {
    fn start(dir: &Path, args: &[&str]) -> Sink {
        Sink::start_named(dir, "sink", args)
    }

    fn start_named(dir: &Path, name: &str, args: &[&str]) -> Sink {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/smtp_sink.py");
        let spool = dir.join(name);
        let rules = dir.join(format!("{name}-rules.json"));
        std::fs::write(&rules, "{}").expect("rules");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--spool"])
            .arg(&spool)
            .arg("--rules")
            .arg(&rules)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sink READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"));
        Sink {
            child,
            port,
            spool,
            rules,
        }
    }

    /// Replaces the sink's rules (atomically: it re-reads them per command).
    fn set_rules(&self, json: &str) {
        let tmp = self.rules.with_extension("tmp");
        std::fs::write(&tmp, json).expect("rules");
        std::fs::rename(&tmp, &self.rules).expect("rules");
    }

    /// The messages received so far: (envelope JSON, message bytes), in order.
    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let env = std::fs::read_to_string(&p).expect("envelope");
                let eml = std::fs::read(p.with_extension("eml")).expect("message");
                (env, eml)
            })
            .collect()
    }

    /// Waits (bounded) until the sink holds `n` messages.
    fn wait_for(&self, n: usize) -> Vec<(String, Vec<u8>)> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the sink has {} of {n} messages after {WAIT:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces the site's `[outbound]` section.
fn set_outbound(site: &Site, section: &str) {
    let config = std::fs::read_to_string(&site.config).expect("config");
    let base = config.split("\n[outbound]\n").next().expect("config");
    std::fs::write(&site.config, format!("{base}\n[outbound]\n{section}")).expect("config");
}

/// A site whose `[outbound] relay` is the sink.
fn site_with_relay(sink_args: &[&str], backoff: &str) -> (Site, Sink) {
    let site = Site::new(Options::default());
    let sink = Sink::start(site.dir.path(), sink_args);
    let mut config = std::fs::read_to_string(&site.config).expect("config");
    config.push_str(&format!(
        "\n[outbound]\nrelay = \"127.0.0.1:{}\"\nhelo_name = \"store.test\"\n\
         backoff = {backoff}\nretry_window = \"1h\"\ntimeout = 10\n",
        sink.port
    ));
    std::fs::write(&site.config, config).expect("config");
    (site, sink)
}

/// Sends `message` over LMTP from `from` to each of `rcpts`; prints one line per
/// recipient: `RCPT 250` or `RCPT CODE STATUS`.
fn lmtp_send(site: &Site, from: &str, rcpts: &[&str], message: &[u8]) -> String {
    let hex: String = message.iter().map(|b| format!("{b:02x}")).collect();
    python(
        r#"
import smtplib, sys
port, sender, msg = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
l = smtplib.LMTP('127.0.0.1', port)
for rcpt in sys.argv[4:]:
    try:
        l.sendmail(sender, [rcpt], msg)
        print(rcpt, 250)
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients[rcpt]
        print(rcpt, code, text.decode().split(' ')[0])
    except smtplib.SMTPDataError as e:
        print(rcpt, e.smtp_code, e.smtp_error.decode().split(' ')[0])
l.quit()
"#,
        &[
            &[site.ports.lmtp.to_string().as_str(), from, hex.as_str()][..],
            rcpts,
        ]
        .concat(),
    )
}

/// The message files in `user`'s mailboxes.
fn stored_messages(site: &Site, user: &str) -> Vec<Vec<u8>> {
    let out = site.cli_ok(&["account", "show", user], None);
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix("path      "))
        .expect("path")
        .trim()
        .to_owned();
    let mut found = Vec::new();
    for mbox in std::fs::read_dir(Path::new(&dir).join("mail"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(mbox.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) {
                found.push(std::fs::read(f.path()).expect("message file"));
            }
        }
    }
    found
}

/// Polls `msgstore queue list` until `pred` holds on its output (bounded).
fn wait_queue(site: &Site, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = site.cli_ok(&["queue", "list"], None);
        if pred(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "queue never {what}:\n{list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const MESSAGE: &[u8] = b"From: Sender <s@example.org>\r\nTo: out@example.com\r\n\
Subject: leaving the store\r\n\r\nfirst line\r\n.a line that starts with a dot\r\n\
caf\xc3\xa9 in 8 bits\r\n\r\nlast line\r\n";

#[test]
fn external_forward_reaches_the_relay_byte_exact_and_a_4xx_is_retried() {
    let (site, sink) = site_with_relay(
        &[
            "--tempfail-once",
            "later@elsewhere.example",
            "--size",
            "10000000",
        ],
        "[1]",
    );
    site.cli_ok(&["account", "add", "bob@example.com"], None);
    site.cli_ok(
        &[
            "forward",
            "add",
            "out@example.com",
            "someone@elsewhere.example",
        ],
        None,
    );
    site.cli_ok(
        &[
            "forward",
            "add",
            "bob@example.com",
            "later@elsewhere.example",
            "--keep-copy",
        ],
        None,
    );
    let server = site.start();

    let out = lmtp_send(&site, "s@example.org", &["out@example.com"], MESSAGE);
    assert_eq!(out, "out@example.com 250\n");
    let got = sink.wait_for(1);
    let (env, eml) = &got[0];
    assert_eq!(eml.as_slice(), MESSAGE, "the relay got the bytes LMTP got");
    assert!(env.contains(r#""mail_from": "s@example.org""#), "{env}");
    assert!(
        env.contains(r#""rcpt_to": ["someone@elsewhere.example"]"#),
        "{env}"
    );
    assert!(env.contains(r#""ehlo": "store.test""#), "{env}");
    assert!(
        env.contains(&format!("\"SIZE={}\"", MESSAGE.len())),
        "{env}"
    );
    assert!(env.contains(r#""BODY=8BITMIME""#), "{env}");

    // bob keeps a copy and forwards out; the relay defers the first RCPT.
    let out = lmtp_send(&site, "s@example.org", &["bob@example.com"], MESSAGE);
    assert_eq!(out, "bob@example.com 250\n");
    let got = sink.wait_for(2);
    assert!(
        got[1]
            .0
            .contains(r#""rcpt_to": ["later@elsewhere.example"]"#),
        "{}",
        got[1].0
    );
    assert_eq!(got[1].1.as_slice(), MESSAGE);
    let log = server.log();
    assert!(
        log.contains("to <later@elsewhere.example>: Temporary"),
        "the first attempt was deferred:\n{log}"
    );
    let kept = stored_messages(&site, "bob@example.com");
    assert_eq!(kept.len(), 1, "bob kept a copy");
    assert!(kept[0].starts_with(b"Return-Path: <s@example.org>\r\n"));
    wait_queue(&site, "emptied", |l| l.trim().is_empty());
    server.stop();
}

#[test]
fn a_permanent_failure_bounces_to_the_sender_but_never_to_the_null_sender() {
    let (site, sink) = site_with_relay(&["--reject", "gone@elsewhere.example"], "[1]");
    site.cli_ok(&["account", "add", "alice@example.com"], None);
    site.cli_ok(
        &["forward", "add", "fw@example.com", "gone@elsewhere.example"],
        None,
    );
    let server = site.start();

    // A local sender: the DSN lands in her INBOX.
    let out = lmtp_send(&site, "alice@example.com", &["fw@example.com"], MESSAGE);
    assert_eq!(out, "fw@example.com 250\n");
    let deadline = Instant::now() + WAIT;
    let dsn = loop {
        if let Some(m) = stored_messages(&site, "alice@example.com").pop() {
            break m;
        }
        assert!(Instant::now() < deadline, "no bounce for alice");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&dsn);
    assert!(text.starts_with("Return-Path: <>\r\n"), "{text}");
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("gone@elsewhere.example"), "{text}");
    assert!(text.contains("5.1.1"), "{text}");

    // An external sender: the DSN goes out through the relay, from <>.
    let out = lmtp_send(&site, "x@remote.example", &["fw@example.com"], MESSAGE);
    assert_eq!(out, "fw@example.com 250\n");
    let got = sink.wait_for(1);
    assert!(got[0].0.contains(r#""mail_from": """#), "{}", got[0].0);
    assert!(
        got[0].0.contains(r#""rcpt_to": ["x@remote.example"]"#),
        "{}",
        got[0].0
    );
    assert!(String::from_utf8_lossy(&got[0].1).contains("gone@elsewhere.example"));

    // The null sender: the failure is logged and dropped, no bounce.
    let out = lmtp_send(&site, "", &["fw@example.com"], MESSAGE);
    assert_eq!(out, "fw@example.com 250\n");
    wait_queue(&site, "emptied", |l| l.trim().is_empty());
    let deadline = Instant::now() + WAIT;
    while server
        .log()
        .matches("to <gone@elsewhere.example>: Permanent")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "third attempt not logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sink.messages().len(), 1, "nothing was sent to <>");
    assert_eq!(stored_messages(&site, "alice@example.com").len(), 1);
    server.stop();
}

#[test]
fn queue_list_flush_del_online_and_offline_and_the_spool_survives_kill_9() {
    let (site, sink) = site_with_relay(&[], "[\"1h\"]");
    sink.set_rules(r#"{"rcpt": {"held@elsewhere.example": "451 4.3.0 not yet"}}"#);
    site.cli_ok(
        &[
            "forward",
            "add",
            "held@example.com",
            "held@elsewhere.example",
        ],
        None,
    );
    site.cli_ok(
        &[
            "forward",
            "add",
            "late@example.com",
            "late@elsewhere.example",
        ],
        None,
    );
    let server = site.start();
    let out = lmtp_send(&site, "s@example.org", &["held@example.com"], MESSAGE);
    assert_eq!(out, "held@example.com 250\n");

    // Deferred once, next attempt in an hour.
    let list = wait_queue(&site, "showed the deferral", |l| l.contains("attempts 1"));
    assert!(list.contains("<s@example.org>"), "{list}");
    assert!(
        list.contains("pending held@elsewhere.example (451 4.3.0 not yet)"),
        "{list}"
    );
    let id = list.split_whitespace().next().expect("id").to_owned();
    // flush makes it due now: a second attempt follows at once.
    let flushed = site.cli_ok(&["queue", "flush"], None);
    assert_eq!(flushed, "flushed 1\n");
    wait_queue(&site, "retried after the flush", |l| {
        l.contains("attempts 2")
    });
    let bad = site.cli(&["queue", "del", "0123abc.nothing"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0123abc.nothing"));
    assert_eq!(
        site.cli_ok(&["queue", "del", &id], None),
        format!("deleted {id}\n")
    );
    wait_queue(&site, "emptied by del", |l| l.trim().is_empty());

    // Queued, then the server dies before the relay took it.
    sink.set_rules(r#"{"rcpt": {"late@elsewhere.example": "451 4.3.0 not yet"}}"#);
    let out = lmtp_send(&site, "s@example.org", &["late@example.com"], MESSAGE);
    assert_eq!(out, "late@example.com 250\n");
    server.kill();
    let list = site.cli_ok(&["queue", "list"], None);
    assert!(list.contains("late@elsewhere.example"), "offline: {list}");
    assert!(sink.messages().is_empty());
    sink.set_rules("{}");
    // Offline flush, then a restart delivers it.
    site.cli_ok(&["queue", "flush"], None);
    let server = site.start();
    let got = sink.wait_for(1);
    assert!(
        got[0]
            .0
            .contains(r#""rcpt_to": ["late@elsewhere.example"]"#),
        "{}",
        got[0].0
    );
    assert_eq!(got[0].1.as_slice(), MESSAGE);
    wait_queue(&site, "emptied after the restart", |l| l.trim().is_empty());
    server.stop();

    // Offline del of an entry a stopped server left.
    let server = site.start();
    sink.set_rules(r#"{"rcpt": {"late@elsewhere.example": "451 4.3.0 not yet"}}"#);
    let out = lmtp_send(&site, "s@example.org", &["late@example.com"], MESSAGE);
    assert_eq!(out, "late@example.com 250\n");
    wait_queue(&site, "showed the deferral", |l| l.contains("attempts 1"));
    server.stop();
    let list = site.cli_ok(&["queue", "list"], None);
    let id = list.split_whitespace().next().expect("id").to_owned();
    assert_eq!(
        site.cli_ok(&["queue", "del", &id], None),
        format!("deleted {id}\n")
    );
    assert_eq!(site.cli_ok(&["queue", "list"], None), "");
}

#[test]
fn starttls_is_used_when_offered_and_required_tls_is_never_skipped() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &[
            "forward",
            "add",
            "out@example.com",
            "someone@elsewhere.example",
        ],
        None,
    );
    // The server's own self-signed certificate (made at first start) serves the sink.
    site.start().stop();
    let cert = site.data.join("tls/cert.pem");
    let key = site.data.join("tls/key.pem");
    let (cert, key) = (cert.to_str().expect("path"), key.to_str().expect("path"));
    let tls_sink = Sink::start_named(
        site.dir.path(),
        "tls-sink",
        &["--tls-cert", cert, "--tls-key", key],
    );
    let plain_sink = Sink::start_named(site.dir.path(), "plain-sink", &[]);

    // Opportunistic (the default): the relay offers STARTTLS, so it is used; the
    // self-signed certificate is accepted.
    set_outbound(
        &site,
        &format!(
            "relay = \"127.0.0.1:{}\"\nbackoff = [\"1h\"]\n",
            tls_sink.port
        ),
    );
    let server = site.start();
    assert_eq!(
        lmtp_send(&site, "s@example.org", &["out@example.com"], MESSAGE),
        "out@example.com 250\n"
    );
    let got = tls_sink.wait_for(1);
    assert!(got[0].0.contains(r#""tls": true"#), "{}", got[0].0);
    assert_eq!(got[0].1.as_slice(), MESSAGE);
    server.stop();

    // With a CA file the certificate is verified: its names are localhost and the
    // host name, so "localhost" passes.
    set_outbound(
        &site,
        &format!(
            "relay = \"localhost:{}\"\ntls = \"required\"\ntls_ca = \"{cert}\"\nbackoff = [\"1h\"]\n",
            tls_sink.port
        ),
    );
    let server = site.start();
    assert_eq!(
        lmtp_send(&site, "s@example.org", &["out@example.com"], MESSAGE),
        "out@example.com 250\n"
    );
    let got = tls_sink.wait_for(2);
    assert!(got[1].0.contains(r#""tls": true"#), "{}", got[1].0);
    server.stop();

    // Required, and the relay offers no STARTTLS: deferred, nothing sent in clear.
    set_outbound(
        &site,
        &format!(
            "relay = \"127.0.0.1:{}\"\ntls = \"required\"\nbackoff = [\"1h\"]\n",
            plain_sink.port
        ),
    );
    let server = site.start();
    assert_eq!(
        lmtp_send(&site, "s@example.org", &["out@example.com"], MESSAGE),
        "out@example.com 250\n"
    );
    let list = wait_queue(&site, "showed the deferral", |l| l.contains("attempts 1"));
    assert!(list.contains("pending someone@elsewhere.example"), "{list}");
    assert!(plain_sink.messages().is_empty());
    server.stop();
    site.cli_ok(&["queue", "flush"], None);

    // A CA file the relay's certificate does not match (an IP address is not among
    // its names): deferred too.
    set_outbound(
        &site,
        &format!(
            "relay = \"127.0.0.1:{}\"\ntls_ca = \"{cert}\"\nbackoff = [\"1h\"]\n",
            tls_sink.port
        ),
    );
    let server = site.start();
    let list = wait_queue(&site, "showed the second deferral", |l| {
        l.contains("attempts 2")
    });
    assert!(list.contains("TLS"), "{list}");
    assert_eq!(tls_sink.messages().len(), 2);
    server.stop();
    site.cli_ok(&["queue", "flush"], None);

    // Opportunistic without a CA file: a relay whose TLS is broken still gets the
    // message, in a second, plaintext session.
    let broken = Sink::start_named(site.dir.path(), "broken-sink", &["--starttls-garbage"]);
    set_outbound(
        &site,
        &format!(
            "relay = \"127.0.0.1:{}\"\nbackoff = [\"1h\"]\n",
            broken.port
        ),
    );
    let server = site.start();
    let got = broken.wait_for(1);
    assert!(got[0].0.contains(r#""tls": false"#), "{}", got[0].0);
    assert_eq!(got[0].1.as_slice(), MESSAGE);
    assert!(server.log().contains("trying again without TLS"));
    wait_queue(&site, "emptied", |l| l.trim().is_empty());
    server.stop();
}
