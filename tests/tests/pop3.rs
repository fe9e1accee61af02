//! End-to-end POP3 with Python's poplib: byte-exact download (dot-stuffing round
//! trip), stable UIDLs, [IN-USE], durable DELE, usage flags, POP3S and STLS.

use tests::{Options, Site, python};

fn deliver(site: &Site, to: &str, bodies: &[&str]) {
    let mut script =
        String::from("import smtplib, sys\nl = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))\n");
    for b in bodies {
        script.push_str(&format!(
            "l.sendmail('s@example.org', ['{to}'], {b:?}.encode())\n"
        ));
    }
    script.push_str("l.quit()\n");
    python(&script, &[&site.ports.lmtp.to_string()]);
}

#[test]
fn poplib_downloads_byte_exact_and_deletes_durably() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "pat@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    site.cli_ok(
        &[
            "account",
            "add",
            "imaponly@example.com",
            "--password-stdin",
            "--flags",
            "imap",
        ],
        Some("pw\n"),
    );
    let server = site.start();
    deliver(
        &site,
        "pat@example.com",
        &[
            "Subject: one\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
            "Subject: two\r\n\r\nsecond\r\n",
            "Subject: three\r\n\r\nthird\r\n",
        ],
    );
    let cert = site.data.join("tls").join("cert.pem");
    let script = r#"
import poplib, ssl, sys
port, pop3s, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
p = poplib.POP3('127.0.0.1', port)
p.user('pat@example.com'); p.pass_('pw')
print('stat', p.stat())
uidl = [l.split()[1].decode() for l in p.uidl()[1]]
print('uidls', len(set(uidl)))
resp, lines, octets = p.retr(1)
print('retr1', lines)
# A second session on the same maildrop is refused while this one holds it.
q = poplib.POP3('127.0.0.1', port)
q.user('pat@example.com')
try:
    q.pass_('pw'); print('second: allowed')
except poplib.error_proto as e:
    print('second:', e.args[0].decode().split(' ')[0:2])
q.quit()
print('top', p.top(2, 0)[1])
p.dele(2)
p.quit()
# After QUIT the deletion is durable; UIDLs of the rest are unchanged.
p = poplib.POP3('127.0.0.1', port)
p.user('pat@example.com'); p.pass_('pw')
print('stat', p.stat()[0])
rest = [l.split()[1].decode() for l in p.uidl()[1]]
print('uidl kept', rest == [uidl[0], uidl[2]])
# A dropped connection deletes nothing.
p.dele(1)
p.sock.close()
p = poplib.POP3('127.0.0.1', port)
p.user('pat@example.com'); p.pass_('pw')
print('after drop', p.stat()[0])
p.quit()
# Usage flags: the password is right, but the account has no POP flag.
p = poplib.POP3('127.0.0.1', port)
p.user('imaponly@example.com')
try:
    p.pass_('pw')
except poplib.error_proto as e:
    print('imaponly:', e.args[0].decode().split(' ')[0:2])
ctx = ssl.create_default_context(cafile=cafile); ctx.check_hostname = False
p = poplib.POP3_SSL('127.0.0.1', pop3s, context=ctx)
p.user('pat@example.com'); p.pass_('pw'); print('pop3s', p.stat()[0]); p.quit()
p = poplib.POP3('127.0.0.1', port)
p.stls(context=ctx); p.user('pat@example.com'); p.pass_('pw'); print('stls', p.stat()[0]); p.quit()
"#;
    let out = python(
        script,
        &[
            &site.ports.pop3.to_string(),
            &site.ports.pop3s.to_string(),
            &cert.display().to_string(),
        ],
    );
    let ret_path = "b'Return-Path: <s@example.org>'";
    let want = format!(
        "stat (3, {})\n\
         uidls 3\n\
         retr1 [{ret_path}, b'Subject: one', b'', b'.leading dot', b'..two dots', b'.', b'end']\n\
         second: ['-ERR', '[IN-USE]']\n\
         top [{ret_path}, b'Subject: two', b'']\n\
         stat 2\n\
         uidl kept True\n\
         after drop 2\n\
         imaponly: ['-ERR', '[AUTH]']\n\
         pop3s 2\n\
         stls 2\n",
        // Return-Path lines, then each message as stored.
        3 * 30 + (14 + 2 + 14 + 12 + 3 + 5) + (14 + 2 + 8) + (16 + 2 + 7)
    );
    assert_eq!(out, want);
    server.stop();
}
