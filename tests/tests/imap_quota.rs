//! SETQUOTA (RFC 9208) end to end with imaplib: an account with the manage flag sets
//! another account's storage limit (on whichever shard owns it), the owner sees it
//! in GETQUOTA and LMTP enforces it; an ordinary account is refused with NOPERM.

use tests::{Options, Site, python};

#[test]
fn manage_account_sets_quota_of_another_account() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &[
            "account",
            "add",
            "admin@example.com",
            "--flags",
            "imap,manage",
            "--password-stdin",
        ],
        Some("pw-admin\n"),
    );
    // Several users so that some live on the shard the admin does not own.
    let users: Vec<String> = (0..6).map(|i| format!("u{i}@example.com")).collect();
    for u in &users {
        site.cli_ok(
            &["account", "add", u, "--password-stdin"],
            Some("pw-user\n"),
        );
    }
    let server = site.start();
    let script = r#"
import imaplib, smtplib, sys
imap, lmtp, users = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
a = imaplib.IMAP4('127.0.0.1', imap)
a.login('admin@example.com', 'pw-admin')
for u in users:
    typ, data = a._simple_command('SETQUOTA', '"%s"' % u, '(STORAGE 2)')
    print('set', u, typ)
typ, data = a._simple_command('SETQUOTA', '"nobody@example.com"', '(STORAGE 2)')
print('unknown', typ, data[0].decode())
a.logout()
l = smtplib.LMTP('127.0.0.1', lmtp)
for u in users:
    m = imaplib.IMAP4('127.0.0.1', imap)
    m.login(u, 'pw-user')
    typ, data = m.getquota('""')
    print('get', u, typ, data[0].decode())
    typ, data = m._simple_command('SETQUOTA', '""', '(STORAGE 100000)')
    print('self-set', typ, data[0].decode())
    m.logout()
    # 4 KiB does not fit in 2 KiB.
    try:
        l.sendmail('s@example.org', [u], b'Subject: big\r\n\r\n' + b'x' * 4096 + b'\r\n')
        print('lmtp', 'accepted')
    except smtplib.SMTPRecipientsRefused as e:
        print('lmtp', list(e.recipients.values())[0][0])
l.quit()
"#;
    let mut args = vec![site.ports.imap.to_string(), site.ports.lmtp.to_string()];
    args.extend(users.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python(script, &args);
    let mut want = String::new();
    for u in &users {
        want.push_str(&format!("set {u} OK\n"));
    }
    want.push_str("unknown NO [NONEXISTENT] Mailbox doesn't exist\n");
    for u in &users {
        want.push_str(&format!(
            "get {u} OK \"\" (STORAGE 0 2)\nself-set NO [NOPERM] Permission denied\nlmtp 552\n"
        ));
    }
    assert_eq!(out, want, "server log:\n{}", server.log());
    for u in &users {
        let shown = site.cli_ok(&["account", "show", u], None);
        assert!(shown.contains("2048"), "{u}: {shown}");
    }
    server.stop();
}
