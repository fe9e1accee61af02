//! End-to-end IMAP with Python's imaplib against the real store: LMTP delivery,
//! SELECT/FETCH/STORE/SEARCH/COPY/EXPUNGE/APPEND, bodies byte-exact, another
//! session's changes, and IDLE woken by a delivery.

use tests::{Options, Site, python};

#[test]
fn imaplib_reads_and_changes_mail_delivered_over_lmtp() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "ann@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let server = site.start();
    let script = r#"
import glob, imaplib, os, re, smtplib, socket, sys, test.test_email, time
lmtp, imap = int(sys.argv[1]), int(sys.argv[2])
data = os.path.join(os.path.dirname(test.test_email.__file__), 'data')
names = sorted(glob.glob(os.path.join(data, 'msg_*.txt')))[:20]
l = smtplib.LMTP('127.0.0.1', lmtp)
sent = []
for n in names:
    raw = open(n, 'rb').read()
    l.sendmail('s@example.org', ['ann@example.com'], raw)
    wire = raw if raw.endswith(b'\r\n') else raw + b'\r\n'
    sent.append(b'Return-Path: <s@example.org>\r\n' + re.sub(rb'(?<!\r)\n', b'\r\n', wire))
m = imaplib.IMAP4('127.0.0.1', imap)
m.login('ann@example.com', 'pw')
typ, data = m.select('INBOX')
print('exists', data[0].decode() == str(len(names)))
ok = True
for i, want in enumerate(sent):
    typ, resp = m.fetch(str(i + 1), '(RFC822.SIZE BODY.PEEK[])')
    size = int(re.search(rb'RFC822.SIZE (\d+)', resp[0][0]).group(1))
    ok = ok and resp[0][1] == want and size == len(want)
print('bodies', ok)
print('store', m.store('1:2', '+FLAGS', '\\Flagged')[0])
print('search', m.search(None, 'FLAGGED')[1])
print('create', m.create('Archive')[0])
print('copy', m.copy('1:3', 'Archive')[1][0].split(b']')[0].split(b' ')[0].decode())
print('status', m.status('Archive', '(MESSAGES)')[1])
print('delete-flag', m.store('1', '+FLAGS', '\\Deleted')[0])
print('expunge', m.expunge()[1])
print('append', m.append('Archive', '(\\Seen)', None, b'Subject: appended\r\n\r\nhi\r\n')[1][0].split(b' ')[0].decode())
# A second session sees the first one's change at NOOP.
m2 = imaplib.IMAP4('127.0.0.1', imap)
m2.login('ann@example.com', 'pw')
m2.select('INBOX')
m.store('1', '+FLAGS', '\\Answered')
typ, data = m2.noop()
print('noop', any(b'Answered' in (d or b'') for d in m2.untagged_responses.get('FETCH', [])))
m2.logout()
# IDLE (raw, imaplib of 3.11 has none): a delivery wakes it with EXISTS.
s = socket.create_connection(('127.0.0.1', imap))
f = s.makefile('rwb')
def cmd(line):
    f.write(line + b'\r\n'); f.flush()
f.readline()
cmd(b'a LOGIN ann@example.com pw'); f.readline()
cmd(b'b SELECT INBOX')
while not f.readline().startswith(b'b '): pass
cmd(b'c IDLE')
print('idle', f.readline().strip().decode())
l.sendmail('s@example.org', ['ann@example.com'], b'Subject: wake\r\n\r\nup\r\n')
s.settimeout(20)
line = f.readline()
print('woken', line.strip().endswith(b'EXISTS'))
cmd(b'DONE')
while not f.readline().startswith(b'c '): pass
cmd(b'd LOGOUT')
l.quit()
m.logout()
"#;
    let out = python(
        script,
        &[&site.ports.lmtp.to_string(), &site.ports.imap.to_string()],
    );
    assert_eq!(
        out,
        "exists True\nbodies True\nstore OK\nsearch [b'1 2']\ncreate OK\ncopy [COPYUID\n\
         status [b'\"Archive\" (MESSAGES 3)']\ndelete-flag OK\nexpunge [b'1']\nappend [APPENDUID\n\
         noop True\nidle + idling\nwoken True\n"
    );
    server.stop();
}
