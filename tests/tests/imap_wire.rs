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

#[test]
fn compress_deflate_with_imaplib_plain_and_tls() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "ann@example.com", "--password-stdin"],
        Some("pw\n"),
    );
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
