//! Real POP3 download clients against msgstore: Debian's fetchmail downloads a
//! maildrop (plain loopback, then POP3S) into an MDA, byte-exact apart from the
//! Received header fetchmail adds, and deletes it on the server; and RETR of large
//! messages, which goes by sendfile when the file needs no dot-stuffing, stays
//! byte-exact either way.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::{Options, Site, message_files, python};

const USER: &str = "pat@example.com";

/// Delivers CPython's email test messages (`msg_*.txt`), messages with lines
/// starting with ".", and two 1 MB messages (one needs dot-stuffing, one does
/// not) over LMTP. Returns how many were sent.
fn deliver_corpus(site: &Site) -> usize {
    let script = r#"
import glob, os, smtplib, sys, test.test_email
data = os.path.join(os.path.dirname(test.test_email.__file__), 'data')
names = sorted(glob.glob(os.path.join(data, 'msg_*.txt')))
assert len(names) > 40, names
bodies = [open(n, 'rb').read() for n in names]
bodies.append(b'Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n. \r\nend\r\n')
bodies.append(b'.starts with a dot: x\r\n\r\nbody\r\n.')
line = b'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/abcdefghij\r\n'
big = b'Subject: big\r\nContent-Type: text/plain\r\n\r\n' + line * (1024 * 1024 // len(line))
bodies.append(big)
bodies.append(big + b'.dot line near the end\r\n' + line * 3)
l = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))
for b in bodies:
    l.sendmail('tester@example.org', [sys.argv[2]], b)
l.quit()
print(len(bodies))
"#;
    python(script, &[&site.ports.lmtp.to_string(), USER])
        .trim()
        .parse()
        .expect("count")
}

/// Removes the `Received:` header (with its continuation lines) that fetchmail
/// adds to each message (after any Return-Path and Delivered-To lines).
fn strip_fetchmail_received(message: &[u8]) -> Vec<u8> {
    const MARK: &[u8] = b"Received: from 127.0.0.1 [127.0.0.1]\r\n";
    let at = message
        .windows(MARK.len())
        .position(|w| w == MARK)
        .filter(|&at| at == 0 || message[at - 1] == b'\n')
        .unwrap_or_else(|| {
            panic!(
                "no fetchmail Received header: {:?}",
                String::from_utf8_lossy(&message[..message.len().min(300)])
            )
        });
    let mut end = at + MARK.len();
    while matches!(message.get(end), Some(b' ' | b'\t')) {
        let nl = message[end..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("continuation line");
        end += nl + 1;
    }
    let mut out = message[..at].to_vec();
    out.extend_from_slice(&message[end..]);
    out
}

/// `message` with the two changes fetchmail makes to header lines: a line starting
/// with `From ` (an mbox separator that some of CPython's messages carry) is
/// dropped, and a line starting with `.` keeps the stuffing dot POP3 put on it
/// (fetchmail undoes dot-stuffing in the body only; poplib gets the header line
/// right, see `large_retr_goes_by_sendfile_when_no_stuffing_is_needed`).
fn as_fetchmail_writes_headers(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    let mut in_header = true;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |nl| nl + 1);
        let line = &rest[..end];
        if in_header && (line == b"\r\n" || line == b"\n") {
            in_header = false;
        }
        if in_header && line.starts_with(b".") {
            out.push(b'.');
        }
        if !(in_header && line.starts_with(b"From ")) {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    out
}

/// Runs fetchmail once against `port` with `extra` poll options; every message
/// goes to an MDA that writes it to `out/<n>`. `bad-header accept`: some of
/// CPython's messages have header lines fetchmail would otherwise leave on the
/// server. Returns the messages in order and fetchmail's output.
fn fetchmail(site: &Site, name: &str, port: u16, extra: &str) -> (Vec<Vec<u8>>, String) {
    let dir = site.dir.path().join(name);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let mda = dir.join("mda.py");
    std::fs::write(
        &mda,
        "import os, sys\nd = sys.argv[1]\nn = len(os.listdir(d))\n\
         open(os.path.join(d, '%04d' % n), 'wb').write(sys.stdin.buffer.read())\n",
    )
    .expect("mda");
    let rc = dir.join("fetchmailrc");
    let text = format!(
        "set no syslog\n\
         poll 127.0.0.1 protocol pop3 port {port} timeout 60 bad-header accept\n\
         \x20 user \"{USER}\" there with password \"pw\" is root here\n\
         \x20 mda \"python3 {mda} {out}\"\n\
         \x20 no keep fetchall no rewrite no stripcr no mimedecode {extra}\n",
        mda = mda.display(),
        out = out.display(),
    );
    let mut f = std::fs::File::create(&rc).expect("rc");
    f.write_all(text.as_bytes()).expect("write rc");
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut child = Command::new("fetchmail")
        .arg("-f")
        .arg(&rc)
        .arg("--idfile")
        .arg(dir.join("fetchids"))
        .arg("--pidfile")
        .arg(dir.join("fetchmail.pid"))
        .env("HOME", &dir)
        .env("FETCHMAILHOME", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fetchmail is needed (scripts/test.sh installs it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("fetchmail did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = child.wait_with_output().expect("output");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    // Exit 0: messages were retrieved.
    assert_eq!(result.status.code(), Some(0), "fetchmail failed:\n{log}");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    let messages = names
        .iter()
        .map(|p| std::fs::read(p).expect("message"))
        .collect();
    (messages, log)
}

/// Delivers the corpus, downloads it with fetchmail and checks it. Files of
/// messages expunged before are unlinked only at the next checkpoint, so the
/// messages of this round are the files with a UID above `after`. Returns the
/// highest UID seen.
fn check_download(site: &Site, name: &str, port: u16, extra: &str, after: u64) -> u64 {
    let count = deliver_corpus(site);
    let stored: Vec<(PathBuf, Vec<u8>)> = message_files(site, USER)
        .into_iter()
        .filter(|(path, _)| uid_of(path) > after)
        .collect();
    assert_eq!(stored.len(), count);
    let last = stored
        .iter()
        .map(|(path, _)| uid_of(path))
        .max()
        .unwrap_or(after);
    let (got, log) = fetchmail(site, name, port, extra);
    assert_eq!(got.len(), count, "{name}: every message downloaded\n{log}");
    for (i, ((path, want), got)) in stored.iter().zip(&got).enumerate() {
        let body = strip_fetchmail_received(got);
        let want = &as_fetchmail_writes_headers(want);
        if body != *want {
            let at = body.iter().zip(want).take_while(|(a, b)| a == b).count();
            let around = |m: &[u8]| {
                String::from_utf8_lossy(&m[at.saturating_sub(80)..(at + 80).min(m.len())])
                    .into_owned()
            };
            panic!(
                "{name}: message {} ({}) differs at byte {at}: {} bytes, {} stored\n got: {:?}\nwant: {:?}",
                i + 1,
                path.display(),
                body.len(),
                want.len(),
                around(&body),
                around(want),
            );
        }
    }
    // fetchall + no keep: deleted on the server at QUIT.
    let stat = python(
        "import poplib, sys\np = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         p.user(sys.argv[2]); p.pass_('pw'); print(p.stat()); p.quit()\n",
        &[&site.ports.pop3.to_string(), USER],
    );
    assert_eq!(stat.trim(), "(0, 0)", "{name}: messages left on the server");
    last
}

fn uid_of(path: &Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("message file named by its UID")
}

#[test]
fn fetchmail_downloads_byte_exact_and_deletes_plain_and_pop3s() {
    let site = Site::new(Options::default());
    site.cli_ok(&["account", "add", USER, "--password-stdin"], Some("pw\n"));
    let server = site.start();
    // Plain loopback, STLS not tried (the sendfile path serves the 1 MB message).
    let last = check_download(&site, "plain", site.ports.pop3, "sslproto ''", 0);
    // POP3S: implicit TLS; the certificate is the self-signed one made at start.
    let cert = site.data.join("tls").join("cert.pem");
    check_download(
        &site,
        "pop3s",
        site.ports.pop3s,
        &format!(
            "ssl sslcertck sslcertfile \"{}\" sslcommonname localhost",
            cert.display()
        ),
        last,
    );
    assert!(server.stop().success());
}

/// The bytes the whole process has written through write-like calls and sendfile
/// (`wchar` of /proc/PID/io). `send()` on a socket does not count; sendfile does,
/// so a RETR by sendfile shows here and one through the stuffer does not.
fn wchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

#[test]
fn large_retr_goes_by_sendfile_when_no_stuffing_is_needed() {
    let site = Site::new(Options::default());
    site.cli_ok(&["account", "add", USER, "--password-stdin"], Some("pw\n"));
    let server = site.start();
    let count = deliver_corpus(&site);
    let stored = message_files(&site, USER);
    assert_eq!(stored.len(), count);
    let (big_ready, big_dots) = (count - 1, count);
    let script = r#"
import poplib, sys
port, user, which, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
p = poplib.POP3('127.0.0.1', port)
p.user(user); p.pass_('pw')
resp, lines, octets = p.retr(which)
open(out, 'wb').write(b''.join(l + b'\r\n' for l in lines))
p.quit()
"#;
    // The two 1 MB messages, then the small ones with lines starting with "."
    // in the body and in the header (never by sendfile).
    for (which, by_sendfile) in [
        (big_ready, Some(true)),
        (big_dots, Some(false)),
        (count - 3, None),
        (count - 2, None),
    ] {
        let out = site.dir.path().join(format!("retr{which}"));
        let before = wchar(server.pid());
        python(
            script,
            &[
                &site.ports.pop3.to_string(),
                USER,
                &which.to_string(),
                &out.display().to_string(),
            ],
        );
        let written = wchar(server.pid()) - before;
        let want = &stored[which - 1].1;
        let got = std::fs::read(&out).expect("retr");
        assert!(got == *want, "message {which} differs");
        if by_sendfile == Some(true) {
            assert!(
                written >= want.len() as u64,
                "message {which}: {written} bytes by sendfile, {} in the message",
                want.len()
            );
        } else if by_sendfile == Some(false) {
            assert!(
                written < want.len() as u64 / 2,
                "message {which}: {written} bytes counted, stuffer path expected"
            );
        }
    }
    assert!(server.stop().success());
}

/// A client that reads slowly through a small receive buffer, a message larger
/// than the most a socket buffers here (net.ipv4.tcp_wmem max, 4 MiB): the
/// server's socket fills, sendfile stops short (EAGAIN) and the rest goes after
/// waits for room. The message still arrives whole and exact, and the session goes
/// on.
#[test]
fn sendfile_retr_to_a_slow_reader_arrives_whole() {
    let site = Site::new(Options::default());
    site.cli_ok(&["account", "add", USER, "--password-stdin"], Some("pw\n"));
    let server = site.start();
    python(SIX_MB, &[&site.ports.lmtp.to_string(), USER]);
    let stored = message_files(&site, USER);
    assert_eq!(stored.len(), 1);
    let big_ready = 1;
    let script = r#"
import socket, sys, time
port, user, which, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(60)
s.connect(('127.0.0.1', port))
f = s.makefile('rb', buffering=0)
def line():
    got = b''
    while not got.endswith(b'\r\n'):
        b = s.recv(1)
        if not b:
            raise SystemExit('closed')
        got += b
    return got
print(line()[:3].decode())
s.sendall(b'USER %s\r\nPASS pw\r\nRETR %d\r\n' % (user.encode(), which))
print(line()[:3].decode(), line()[:3].decode())
first = line()
print(first.split()[0].decode())
body = bytearray()
start = time.monotonic()
# Slow for the first 128 KiB (small reads with pauses: the server's socket fills
# meanwhile), then as fast as it goes.
while not body.endswith(b'\r\n.\r\n'):
    chunk = s.recv(2048 if len(body) < 131072 else 65536)
    if not chunk:
        raise SystemExit('closed mid-message')
    body += chunk
    if len(body) < 131072:
        time.sleep(0.005)
msg = bytes(body[:-3])
# Undo the dot-stuffing (none is expected for this message).
lines = msg.split(b'\r\n')
msg = b'\r\n'.join(l[1:] if l.startswith(b'.') else l for l in lines)
open(out, 'wb').write(msg)
s.sendall(b'NOOP\r\nQUIT\r\n')
print(line()[:3].decode(), line()[:3].decode())
"#;
    let out_path = site.dir.path().join("slow");
    let out = python(
        script,
        &[
            &site.ports.pop3.to_string(),
            USER,
            &big_ready.to_string(),
            &out_path.display().to_string(),
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["+OK", "+OK +OK", "+OK", "+OK +OK"],
        "{}",
        server.log()
    );
    let got = std::fs::read(&out_path).expect("message");
    assert!(
        got == stored[big_ready - 1].1,
        "slow reader: {} bytes, {} stored",
        got.len(),
        stored[big_ready - 1].1.len()
    );
    assert!(server.stop().success());
}

/// Delivers one 6 MiB message with no line starting with "." to `argv[2]`.
const SIX_MB: &str = r"
import smtplib, sys
line = b'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/abcdefghij\r\n'
msg = b'Subject: six megabytes\r\n\r\n' + line * (6 * 1024 * 1024 // len(line))
l = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))
l.sendmail('s@example.org', [sys.argv[2]], msg)
l.quit()
";
