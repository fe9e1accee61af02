//! End-to-end poppassd: the password it sets is the one IMAP and POP3 accept at once.

use tests::{Options, Site, python};

#[test]
fn poppassd_changes_the_password_imap_and_pop3_use() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "pia@example.com", "--password-stdin"],
        Some("old-password\n"),
    );
    let server = site.start();
    let out = python(
        r#"
import imaplib, poplib, socket, sys
port, imap, pop = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(('127.0.0.1', port))
f = s.makefile('rwb')
def say(line):
    if line:
        f.write(line.encode() + b'\r\n'); f.flush()
    print(f.readline().decode().strip().split(' ')[0], flush=True)
say(None)
say('user pia@example.com')
say('pass wrong-password')
say('user pia@example.com')
say('pass old-password')
say('newpass short')
say('newpass new-password-1')
say('quit')
def imap_login(pw):
    m = imaplib.IMAP4('127.0.0.1', imap)
    try:
        return m.login('pia@example.com', pw)[0]
    except imaplib.IMAP4.error:
        return 'NO'
def pop_login(pw):
    p = poplib.POP3('127.0.0.1', pop)
    p.user('pia@example.com')
    try:
        return p.pass_(pw).decode().split(' ')[0]
    except poplib.error_proto:
        return '-ERR'
print('imap', imap_login('old-password'), imap_login('new-password-1'))
print('pop3', pop_login('old-password'), pop_login('new-password-1'))
"#,
        &[
            &site.ports.poppassd.to_string(),
            &site.ports.imap.to_string(),
            &site.ports.pop3.to_string(),
        ],
    );
    assert_eq!(
        out,
        "200\n200\n500\n200\n200\n500\n200\n200\nimap NO OK\npop3 -ERR +OK\n"
    );
    let profile = std::fs::read_to_string(
        site.cli_ok(&["account", "show", "pia@example.com"], None)
            .lines()
            .find_map(|l| l.strip_prefix("path      "))
            .map(|p| std::path::Path::new(p.trim()).join("profile"))
            .expect("path"),
    )
    .expect("profile");
    assert!(
        !profile.contains("new-password-1"),
        "no plaintext password stored"
    );
    server.stop();
}
