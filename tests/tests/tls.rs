//! TLS operations end to end: the certificate reloads on SIGHUP without dropping
//! sessions, and Debian's `openssl s_client` negotiates TLS 1.3 and TLS 1.2 on the
//! implicit-TLS ports and through STARTTLS/STLS.

use std::path::Path;
use std::process::{Command, Stdio};

use tests::{Options, Site, python};

/// A fresh self-signed pair made by the openssl command-line tool.
fn make_cert(dir: &Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for the TLS tests (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

fn deliver(site: &Site, to: &str, body: &str) {
    let script = format!(
        "import smtplib, sys\nl = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))\n\
         l.sendmail('s@example.org', ['{to}'], {body:?}.encode())\nl.quit()\n"
    );
    python(&script, &[&site.ports.lmtp.to_string()]);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_sessions() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "pat@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let server = site.start();
    deliver(&site, "pat@example.com", "Subject: kept\r\n\r\nbody\r\n");
    let tls_dir = site.data.join("tls");
    let (new_cert, new_key) = make_cert(site.dir.path(), "reloaded");
    let script = r#"
import hashlib, imaplib, os, signal, ssl, sys, time, poplib
imaps, pop3s, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cert, key, new_cert, new_key = sys.argv[4:8]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def peer(sock):
    return hashlib.sha256(sock.getpeercert(True)).hexdigest()
def of_file(path):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(path).read())).hexdigest()
old_fp, new_fp = of_file(cert), of_file(new_cert)
print('pairs differ', old_fp != new_fp)
old = imaplib.IMAP4_SSL('127.0.0.1', imaps, ssl_context=ctx)
print('before: old cert', peer(old.sock) == old_fp)
old.login('pat@example.com', 'pw')
old.select('INBOX')
# The new pair replaces the files in place (key first: the server reads both
# only on SIGHUP), then the server is told.
os.replace(new_key, key)
os.replace(new_cert, cert)
os.kill(pid, signal.SIGHUP)
seen = None
for _ in range(200):
    m = imaplib.IMAP4_SSL('127.0.0.1', imaps, ssl_context=ctx)
    seen = peer(m.sock)
    m.logout()
    if seen == new_fp:
        break
    time.sleep(0.05)
print('after: new connection new cert', seen == new_fp)
p = poplib.POP3_SSL('127.0.0.1', pop3s, context=ctx)
print('after: pop3s new cert', peer(p.sock) == new_fp)
p.quit()
# The session opened before the reload goes on with its own TLS session.
print('old session noop', old.noop()[0])
typ, data = old.fetch('1', '(BODY.PEEK[])')
print('old session fetch', typ, data[0][1] == b'Return-Path: <s@example.org>\r\nSubject: kept\r\n\r\nbody\r\n')
print('old session still old cert', peer(old.sock) == old_fp)
old.logout()
"#;
    let out = python(
        script,
        &[
            &site.ports.imaps.to_string(),
            &site.ports.pop3s.to_string(),
            &server.pid().to_string(),
            &tls_dir.join("cert.pem").display().to_string(),
            &tls_dir.join("key.pem").display().to_string(),
            &new_cert,
            &new_key,
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "pairs differ True",
            "before: old cert True",
            "after: new connection new cert True",
            "after: pop3s new cert True",
            "old session noop OK",
            "old session fetch OK True",
            "old session still old cert True",
        ],
        "{}",
        server.log()
    );
    assert!(server.log().contains("TLS certificate reloaded"));
    assert!(server.stop().success());
}

#[test]
fn a_bad_certificate_on_sighup_keeps_the_old_one() {
    let site = Site::new(Options::default());
    let server = site.start();
    let cert = site.data.join("tls").join("cert.pem");
    let before = std::fs::read_to_string(&cert).expect("cert");
    std::fs::write(&cert, "not a certificate\n").expect("write");
    let pid = rustix::process::Pid::from_raw(server.pid() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server.log().contains("not reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload error logged:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Still serving with the old pair.
    let script = r#"
import hashlib, ssl, sys, imaplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx)
print(hashlib.sha256(m.sock.getpeercert(True)).hexdigest() == hashlib.sha256(ssl.PEM_cert_to_DER_cert(sys.argv[2])).hexdigest())
m.logout()
"#;
    let out = python(script, &[&site.ports.imaps.to_string(), &before]);
    assert_eq!(out.trim(), "True", "{}", server.log());
    assert!(server.stop().success());
}

/// Runs `openssl s_client` against `port` with `args`; returns what it printed.
fn s_client(port: u16, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for the TLS tests (scripts/test.sh installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn openssl_s_client_negotiates_tls13_and_tls12() {
    let site = Site::new(Options::default());
    let server = site.start();
    let ports = &site.ports;
    let cases: [(&str, u16, &[&str], &str); 8] = [
        ("imaps", ports.imaps, &["-tls1_3"], "TLSv1.3"),
        ("imaps", ports.imaps, &["-tls1_2"], "TLSv1.2"),
        ("pop3s", ports.pop3s, &["-tls1_3"], "TLSv1.3"),
        ("pop3s", ports.pop3s, &["-tls1_2"], "TLSv1.2"),
        (
            "imap",
            ports.imap,
            &["-starttls", "imap", "-tls1_3"],
            "TLSv1.3",
        ),
        (
            "imap",
            ports.imap,
            &["-starttls", "imap", "-tls1_2"],
            "TLSv1.2",
        ),
        (
            "pop3",
            ports.pop3,
            &["-starttls", "pop3", "-tls1_3"],
            "TLSv1.3",
        ),
        (
            "pop3",
            ports.pop3,
            &["-starttls", "pop3", "-tls1_2"],
            "TLSv1.2",
        ),
    ];
    for (name, port, args, version) in cases {
        let mut all = args.to_vec();
        all.push("-brief");
        let text = s_client(port, &all);
        assert!(
            text.contains(&format!("Protocol version: {version}")),
            "{name} {args:?}:\n{text}\n{}",
            server.log()
        );
        assert!(
            text.contains("Verification error: self-signed certificate"),
            "{name} {args:?}: the server's self-signed certificate:\n{text}"
        );
    }
    assert!(server.stop().success());
}
