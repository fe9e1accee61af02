//! End-to-end IMAP on the wire: COMPRESS=DEFLATE (RFC 4978) with imaplib over a zlib
//! wrapper, plain and inside TLS.

use tests::{Options, Site, python};

/// imaplib with COMPRESS DEFLATE: after the OK the socket is wrapped in raw DEFLATE
/// both ways (zlib wbits=-15, a sync flush per write, as RFC 4978 asks).
const COMPRESS_CLIENT: &str = r#"
import imaplib, ssl, sys, zlib

imaplib.Commands['COMPRESS'] = ('AUTH', 'SELECTED')

class Deflated:
    def __init__(self, sock):
        self.sock, self.buf = sock, b''
        self.z = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.d = zlib.decompressobj(-15)
        self.raw_in = 0
    def sendall(self, data):
        self.sock.sendall(self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH))
    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError('connection closed')
        self.raw_in += len(chunk)
        self.buf += self.d.decompress(chunk)
    def readline(self, limit=-1):
        while b'\n' not in self.buf:
            self._fill()
        i = self.buf.index(b'\n') + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line
    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out
    def close(self):
        pass
    def shutdown(self, how):
        self.sock.shutdown(how)

def compress(m):
    typ, data = m._simple_command('COMPRESS', 'DEFLATE')
    if typ != 'OK':
        return typ, data
    z = Deflated(m.sock)
    m.sock, m.file = z, z
    return typ, data

def session(m, label):
    m.login('ann@example.com', 'pw')
    caps = m.capability()[1][0].split()
    print(label, 'offered', b'COMPRESS=DEFLATE' in caps)
    print(label, 'compress', compress(m)[0])
    caps = m.capability()[1][0].split()
    print(label, 'after', b'COMPRESS=DEFLATE' in caps)
    typ, data = m._simple_command('COMPRESS', 'DEFLATE')
    print(label, 'again', typ, b'COMPRESSIONACTIVE' in (data[0] or b''))
    body = b'Subject: squeeze\r\n\r\n' + b'all work and no play\r\n' * 20000
    print(label, 'append', m.append('INBOX', None, None, body)[0])
    m.select('INBOX')
    typ, resp = m.fetch('1', '(BODY.PEEK[])')
    print(label, 'body', resp[0][1] == body)
    print(label, 'squeezed', m.sock.raw_in < len(body) // 10)
    print(label, 'noop', m.noop()[0])
    m.store('1', '+FLAGS', '\\Deleted')
    m.expunge()
    print(label, 'logout', m.logout()[0])

imap, imaps = int(sys.argv[1]), int(sys.argv[2])
m = imaplib.IMAP4('127.0.0.1', imap)
print('preauth', b'COMPRESS=DEFLATE' in m.capability()[1][0].split())
session(m, 'plain')
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
session(imaplib.IMAP4_SSL('127.0.0.1', imaps, ssl_context=ctx), 'tls')
"#;

/// A site whose one account is ann@example.com, password `pw` (every client here).
fn site_with_ann() -> Site {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "ann@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    site
}

#[test]
fn compress_deflate_with_imaplib_plain_and_tls() {
    let site = site_with_ann();
    let server = site.start();
    let out = python(
        COMPRESS_CLIENT,
        &[&site.ports.imap.to_string(), &site.ports.imaps.to_string()],
    );
    let mut want = String::from("preauth False\n");
    for label in ["plain", "tls"] {
        want.push_str(&format!(
            "{label} offered True\n{label} compress OK\n{label} after False\n\
             {label} again NO True\n{label} append OK\n{label} body True\n\
             {label} squeezed True\n{label} noop OK\n{label} logout BYE\n"
        ));
    }
    assert_eq!(out, want);
    server.stop();
}

/// mbsync (Debian's isync) syncing a multi-folder account both ways: a first sync
/// to an empty Maildir, changes on both sides (new message, flag, delete, new
/// folder), a second sync, and a third that must find nothing to do.
const MBSYNC_CLIENT: &str = r#"
import email, imaplib, os, re, smtplib, subprocess, sys, time
lmtp, imap, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
maildir = os.path.join(work, 'mail')
os.makedirs(maildir)
rc = os.path.join(work, 'mbsyncrc')
open(rc, 'w').write(f'''IMAPAccount acct
Host 127.0.0.1
Port {imap}
User ann@example.com
Pass pw
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account acct

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Remove Both
Expunge Both
SyncState *
''')

def mbsync(label):
    p = subprocess.run(['mbsync', '-c', rc, '-a'], capture_output=True, text=True, timeout=60)
    print(label, 'mbsync', p.returncode)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)

def msg(subject):
    return f'From: s@example.org\r\nTo: ann@example.com\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n'.encode()

FLAGS = {'\\Seen': 'S', '\\Flagged': 'F', '\\Answered': 'R', '\\Draft': 'D'}

def server_state():
    m = imaplib.IMAP4('127.0.0.1', imap)
    m.login('ann@example.com', 'pw')
    state = {}
    for line in m.list()[1]:
        name = line.decode().rsplit(' ', 1)[1].strip('"')
        m.select(name, readonly=True)
        typ, data = m.fetch('1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
        items = []
        for d in data:
            if not isinstance(d, tuple):
                continue
            flags = re.search(rb'FLAGS \(([^)]*)\)', d[0]).group(1).decode().split()
            subject = email.message_from_bytes(d[1])['Subject']
            items.append((subject, ''.join(sorted(FLAGS[f] for f in flags if f in FLAGS))))
        state[name] = sorted(items)
    m.logout()
    return state

def local_state():
    state = {}
    for path, dirs, files in os.walk(maildir):
        if not os.path.isdir(os.path.join(path, 'cur')):
            continue
        name = os.path.relpath(path, maildir)
        items = []
        for sub in ('cur', 'new'):
            for f in os.listdir(os.path.join(path, sub)):
                raw = open(os.path.join(path, sub, f), 'rb').read()
                subject = email.message_from_bytes(raw)['Subject']
                flags = f.split(':2,', 1)[1] if ':2,' in f else ''
                items.append((subject, ''.join(sorted(c for c in flags if c in 'SFRD'))))
        state[name] = sorted(items)
    return state

l = smtplib.LMTP('127.0.0.1', lmtp)
for s in ('in-1', 'in-2', 'in-3'):
    l.sendmail('s@example.org', ['ann@example.com'], msg(s))
l.quit()
m = imaplib.IMAP4('127.0.0.1', imap)
m.login('ann@example.com', 'pw')
m.create('Work')
m.create('Work/Deep')
m.append('Work', '(\\Seen)', None, msg('work-1'))
m.append('Work', None, None, msg('work-2'))
m.append('Work/Deep', None, None, msg('deep-1'))
m.logout()

mbsync('first')
print('first agree', server_state() == local_state())
print('first local', local_state())

# Server side: flag one, delete another.
m = imaplib.IMAP4('127.0.0.1', imap)
m.login('ann@example.com', 'pw')
m.select('INBOX')
typ, data = m.search(None, 'HEADER', 'Subject', 'in-1')
m.store(data[0], '+FLAGS', '\\Flagged')
typ, data = m.search(None, 'HEADER', 'Subject', 'in-2')
m.store(data[0], '+FLAGS', '\\Deleted')
m.expunge()
m.logout()
# Local side: a new message, a flag, a new folder.
def drop(folder, name, body, flags=None):
    os.makedirs(os.path.join(maildir, folder, 'tmp'), exist_ok=True)
    os.makedirs(os.path.join(maildir, folder, 'cur'), exist_ok=True)
    os.makedirs(os.path.join(maildir, folder, 'new'), exist_ok=True)
    if flags is None:
        open(os.path.join(maildir, folder, 'new', name), 'wb').write(body)
    else:
        open(os.path.join(maildir, folder, 'cur', name + ':2,' + flags), 'wb').write(body)
drop('INBOX', f'{int(time.time())}.local1.test', msg('local-1'))
drop('Local', f'{int(time.time())}.local2.test', msg('local-2'), 'S')
renamed = 0
for sub in ('new', 'cur'):
    d = os.path.join(maildir, 'Work', sub)
    for f in list(os.listdir(d)):
        if os.path.join(d, f).endswith(':2,R'):
            continue
        if b'work-2' in open(os.path.join(d, f), 'rb').read():
            base = f.split(':2,', 1)[0]
            os.rename(os.path.join(d, f), os.path.join(maildir, 'Work', 'cur', base + ':2,R'))
            renamed += 1
assert renamed == 1, renamed

mbsync('second')
server, local = server_state(), local_state()
print('second agree', server == local)
print('second server', server)
mbsync('third')
print('third agree', server_state() == local_state() == server)
"#;

#[test]
fn mbsync_syncs_a_multi_folder_account_both_ways() {
    let site = site_with_ann();
    let server = site.start();
    let work = tempfile::tempdir().expect("temp dir");
    let out = python(
        MBSYNC_CLIENT,
        &[
            &site.ports.lmtp.to_string(),
            &site.ports.imap.to_string(),
            &work.path().display().to_string(),
        ],
    );
    let first = "{'INBOX': [('in-1', ''), ('in-2', ''), ('in-3', '')], \
                 'Work': [('work-1', 'S'), ('work-2', '')], 'Work/Deep': [('deep-1', '')]}";
    let second = "{'INBOX': [('in-1', 'F'), ('in-3', ''), ('local-1', '')], \
                  'Local': [('local-2', 'S')], 'Work': [('work-1', 'S'), ('work-2', 'R')], \
                  'Work/Deep': [('deep-1', '')]}";
    assert_eq!(
        out,
        format!(
            "first mbsync 0\nfirst agree True\nfirst local {first}\nsecond mbsync 0\n\
             second agree True\nsecond server {second}\nthird mbsync 0\nthird agree True\n"
        )
    );
    server.stop();
}

/// A 50 MB APPEND is streamed to disk: the server's peak RSS (VmHWM) grows by far less
/// than the message, the message comes back byte-exact, bare LFs of a staged message
/// become CRLF across read boundaries, and APPENDLIMIT is advertised and enforced
/// (NO [TOOBIG] before a synchronising literal is sent, BYE for a non-synchronising one).
const BIG_APPEND_CLIENT: &str = r#"
import imaplib, re, socket, sys
imap, pid = int(sys.argv[1]), int(sys.argv[2])
def hwm():
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
m = imaplib.IMAP4('127.0.0.1', imap)
m.login('ann@example.com', 'pw')
caps = m.capability()[1][0].decode().split()
limit = [int(c.split('=')[1]) for c in caps if c.startswith('APPENDLIMIT=')]
print('appendlimit', limit)
before = hwm()
line = b'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?\r\n'
body = b'Subject: big\r\nFrom: a@example.org\r\n\r\n' + line * (50_000_000 // len(line))
typ, data = m.append('INBOX', None, None, body)
print('append', typ, data[0].split(b']')[0].split(b' ')[0].decode())
after = hwm()
grew = after - before
print('rss grew', grew, 'from', before, file=sys.stderr)
print('rss grew under 16 MB', grew < 16_000_000)
m.select('INBOX')
typ, resp = m.fetch('1', '(RFC822.SIZE BODY.PEEK[])')
print('size', int(re.search(rb'RFC822.SIZE (\d+)', resp[0][0]).group(1)) == len(body))
print('exact', resp[0][1] == body)
del resp
# Bare LFs, one right at every 4 KiB read boundary, in a staged (> 1 MiB) message.
lf = b'Subject: lf\n\n' + (b'x' * 4095 + b'\n') * 600
typ, data = m.append('INBOX', None, None, lf)
typ, resp = m.fetch('2', '(BODY.PEEK[])')
print('crlf', resp[0][1] == lf.replace(b'\n', b'\r\n'))
typ, data = m.append('INBOX', None, None, b'x' * (limit[0] + 1))
print('toobig', typ, b'TOOBIG' in data[0])
print('still', m.noop()[0])
m.logout()
s = socket.create_connection(('127.0.0.1', imap))
f = s.makefile('rwb')
f.readline()
f.write(b'a LOGIN ann@example.com pw\r\n'); f.flush(); f.readline()
f.write(b'b APPEND INBOX {%d+}\r\n' % (limit[0] + 1)); f.flush()
print('bye', f.readline().decode().strip())
"#;

#[test]
fn fifty_megabyte_append_streams_to_disk() {
    let site = site_with_ann();
    let server = site.start();
    let out = python(
        BIG_APPEND_CLIENT,
        &[&site.ports.imap.to_string(), &server.pid().to_string()],
    );
    assert_eq!(
        out,
        "appendlimit [67108864]\nappend OK [APPENDUID\nrss grew under 16 MB True\nsize True\n\
         exact True\ncrlf True\ntoobig NO True\nstill OK\n\
         bye * BYE [TOOBIG] Message too big for APPENDLIMIT\n"
    );
    server.stop();
}

/// Large bodies on a plain connection go out by sendfile(2): whole, partial and
/// section answers are byte-exact, in order with the text around them (two messages
/// in one FETCH, then a NOOP pipelined behind it).
const SENDFILE_CLIENT: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('ann@example.com', 'pw')
bodies = []
for n in range(2):
    text = b''.join(b'line %d of message %d \x01\xfe\r\n' % (i, n) for i in range(9000))
    bodies.append(b'Subject: big %d\r\n\r\n' % n + text)
    print('append', n, m.append('INBOX', None, None, bodies[-1])[0])
m.select('INBOX')
typ, resp = m.fetch('1:2', '(UID BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[]<1000.200000>)')
parts = [r for r in resp if isinstance(r, tuple)]
print('fetch', typ, len(parts))
for n in range(2):
    whole, text, partial = parts[3 * n][1], parts[3 * n + 1][1], parts[3 * n + 2][1]
    head = len(b'Subject: big %d\r\n\r\n' % n)
    print('exact', n, whole == bodies[n], text == bodies[n][head:], partial == bodies[n][1000:201000])
tag = m._new_tag()
m.send(tag + b' NOOP\r\n')
print('noop', m._command_complete('NOOP', tag)[0])
print('logout', m.logout()[0])
"#;

#[test]
fn large_bodies_by_sendfile_on_plain_connections() {
    let site = site_with_ann();
    let server = site.start();
    let out = python(SENDFILE_CLIENT, &[&site.ports.imap.to_string()]);
    assert_eq!(
        out,
        "append 0 OK\nappend 1 OK\nfetch OK 6\nexact 0 True True True\n\
         exact 1 True True True\nnoop OK\nlogout BYE\n"
    );
    server.stop();
}
