//! End-to-end SASL: Python's imaplib logs in with AUTHENTICATE and every mechanism
//! (SCRAM-SHA-256 driven by `scramp`'s client, which checks the server signature)
//! over plain loopback, STARTTLS and IMAPS; SASL-IR; an unknown SCRAM user goes
//! through a whole decoy exchange; failed SASL logins are throttled like LOGIN.

use tests::{Client, Options, Site, python};

/// Helpers every Python script below starts with: `auth(m, mech, user, pw)` runs
/// one AUTHENTICATE on an imaplib connection and prints OK or NO.
const PY_AUTH: &str = r#"
import base64, imaplib, poplib, socket, ssl, sys
from scramp import ScramClient

def mech_object(mech, user, pw):
    if mech == 'PLAIN':
        return lambda challenge: b'\0' + user.encode() + b'\0' + pw.encode()
    if mech == 'LOGIN':
        answers = iter([user.encode(), pw.encode()])
        return lambda challenge: next(answers)
    if mech == 'CRAM-MD5':
        import hmac
        return lambda challenge: user.encode() + b' ' + hmac.HMAC(
            pw.encode(), challenge, 'md5').hexdigest().encode()
    if mech == 'SCRAM-SHA-256':
        client = ScramClient(['SCRAM-SHA-256'], user, pw)
        state = {'step': 0}
        def step(challenge):
            state['step'] += 1
            if state['step'] == 1:
                return client.get_client_first().encode()
            if state['step'] == 2:
                client.set_server_first(challenge.decode())
                return client.get_client_final().encode()
            # Raises unless the server signature is right.
            client.set_server_final(challenge.decode())
            state['verified'] = True
            return b''
        step.state = state
        return step
    raise ValueError(mech)

def auth(m, mech, user, pw):
    obj = mech_object(mech, user, pw)
    try:
        typ, _ = m.authenticate(mech, obj)
    except imaplib.IMAP4.error as e:
        return 'NO'
    if mech == 'SCRAM-SHA-256' and not obj.state.get('verified'):
        return 'UNVERIFIED'
    return typ

def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    return ctx
"#;

fn site(extra_auth: &str) -> Site {
    let site = Site::new(Options::default());
    let mut cfg = std::fs::read_to_string(&site.config).expect("config");
    cfg.push_str(
        "\n[auth]\nmechanisms = [\"SCRAM-SHA-256\", \"CRAM-MD5\", \"PLAIN\", \"LOGIN\"]\n",
    );
    cfg.push_str(extra_auth);
    std::fs::write(&site.config, cfg).expect("config");
    site
}

fn add(site: &Site, user: &str, password: &str, cram: bool) {
    let mut args = vec!["account", "add", user, "--password-stdin"];
    if cram {
        args.push("--cram-md5");
    }
    site.cli_ok(&args, Some(&format!("{password}\n")));
}

#[test]
fn imaplib_authenticates_with_every_mechanism_over_plain_starttls_and_imaps() {
    let site = site("");
    add(&site, "sam@example.com", "Sam-Pass-1", true);
    add(&site, "nocram@example.com", "Nocram-Pass-2", false);
    let server = site.start();
    let cert = site.data.join("tls").join("cert.pem");
    let script = format!(
        "{PY_AUTH}{}",
        r#"
imap, imaps, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def connect(kind):
    if kind == 'plain':
        return imaplib.IMAP4('127.0.0.1', imap)
    if kind == 'starttls':
        m = imaplib.IMAP4('127.0.0.1', imap)
        m.starttls(ssl_context=tls_context(cafile))
        return m
    return imaplib.IMAP4_SSL('127.0.0.1', imaps, ssl_context=tls_context(cafile))
for kind in ['plain', 'starttls', 'imaps']:
    m = connect(kind)
    caps = sorted(c for c in m.capabilities if c.startswith('AUTH=') or c == 'SASL-IR')
    print(kind, ' '.join(caps))
    for mech in ['PLAIN', 'LOGIN', 'CRAM-MD5', 'SCRAM-SHA-256']:
        m = connect(kind)
        right = auth(m, mech, 'sam@example.com', 'Sam-Pass-1')
        # After a login the session works (INBOX exists on the owning shard).
        selected = m.select('INBOX')[0] if right == 'OK' else '-'
        m2 = connect(kind)
        wrong = auth(m2, mech, 'sam@example.com', 'wrong')
        print(kind, mech, right, selected, wrong)
# No CRAM-MD5 secret kept for this account: CRAM-MD5 fails like a wrong password,
# the other mechanisms work.
for mech in ['CRAM-MD5', 'SCRAM-SHA-256', 'PLAIN']:
    print('nocram', mech, auth(connect('plain'), mech, 'nocram@example.com', 'Nocram-Pass-2'))
"#
    );
    let out = python(
        &script,
        &[
            &site.ports.imap.to_string(),
            &site.ports.imaps.to_string(),
            &cert.display().to_string(),
        ],
    );
    let caps = "AUTH=CRAM-MD5 AUTH=LOGIN AUTH=PLAIN AUTH=SCRAM-SHA-256 SASL-IR";
    let mut want = String::new();
    for kind in ["plain", "starttls", "imaps"] {
        want.push_str(&format!("{kind} {caps}\n"));
        for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"] {
            want.push_str(&format!("{kind} {mech} OK OK NO\n"));
        }
    }
    want.push_str("nocram CRAM-MD5 NO\nnocram SCRAM-SHA-256 OK\nnocram PLAIN OK\n");
    assert_eq!(out, want);
    server.stop();
}

#[test]
fn cleartext_mechanisms_wait_for_tls_where_plaintext_is_refused() {
    let site = site("plaintext_without_tls = false\n");
    add(&site, "tia@example.com", "Tia-Pass-1", false);
    let server = site.start();
    let mut c = Client::connect(site.addr(site.ports.imap));
    let greeting = c.line();
    assert!(
        greeting.contains("AUTH=SCRAM-SHA-256")
            && !greeting.contains("AUTH=PLAIN")
            && !greeting.contains("AUTH=LOGIN"),
        "{greeting}"
    );
    // A downgrade attempt: PLAIN though it was not offered.
    c.send(b"a AUTHENTICATE PLAIN AHRpYUBleGFtcGxlLmNvbQBUaWEtUGFzcy0x\r\n");
    let answer = c.until_tagged("a").pop().expect("answer");
    assert!(answer.starts_with("a NO [PRIVACYREQUIRED]"), "{answer}");
    let cert = site.data.join("tls").join("cert.pem");
    let script = format!(
        "{PY_AUTH}{}",
        r#"
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
print(auth(m, 'SCRAM-SHA-256', 'tia@example.com', 'Tia-Pass-1'))
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.starttls(ssl_context=tls_context(sys.argv[2]))
print('AUTH=PLAIN' in m.capabilities, auth(m, 'PLAIN', 'tia@example.com', 'Tia-Pass-1'))
"#
    );
    let out = python(
        &script,
        &[&site.ports.imap.to_string(), &cert.display().to_string()],
    );
    assert_eq!(out, "OK\nTrue OK\n");
    server.stop();
}

/// One raw SCRAM exchange with SASL-IR; prints every server line.
const PY_RAW_SCRAM: &str = r#"
def raw_scram(port, user, pw):
    s = socket.create_connection(('127.0.0.1', port))
    f = s.makefile('rwb')
    f.readline()
    client = ScramClient(['SCRAM-SHA-256'], user, pw)
    first = base64.b64encode(client.get_client_first().encode())
    f.write(b'a AUTHENTICATE SCRAM-SHA-256 ' + first + b'\r\n'); f.flush()
    line = f.readline().decode().rstrip('\r\n')
    if not line.startswith('+ '):
        return [line]
    server_first = base64.b64decode(line[2:]).decode()
    client.set_server_first(server_first)
    f.write(base64.b64encode(client.get_client_final().encode()) + b'\r\n'); f.flush()
    final = f.readline().decode().rstrip('\r\n')
    s.close()
    fields = dict(kv.split('=', 1) for kv in server_first.split(','))
    return [len(base64.b64decode(fields['s'])), fields['i'], final]
"#;

#[test]
fn unknown_scram_user_looks_like_a_wrong_password_and_failures_are_throttled() {
    let site =
        site("failures_before_delay = 100\nfailures_before_block = 3\nblock_seconds = 600\n");
    add(&site, "uma@example.com", "Uma-Pass-1", false);
    let server = site.start();
    let script = format!(
        "{PY_AUTH}{PY_RAW_SCRAM}{}",
        r#"
port = int(sys.argv[1])
print(raw_scram(port, 'nobody@example.com', 'x'))
print(raw_scram(port, 'uma@example.com', 'wrong'))
print(raw_scram(port, 'uma@example.com', 'wrong'))
# The third failure blocks the account (on its owning shard, whichever shard the
# connection landed on): even the right password, any mechanism, fails now.
print(raw_scram(port, 'uma@example.com', 'wrong'))
print(auth(imaplib.IMAP4('127.0.0.1', port), 'SCRAM-SHA-256', 'uma@example.com', 'Uma-Pass-1'))
print(auth(imaplib.IMAP4('127.0.0.1', port), 'PLAIN', 'uma@example.com', 'Uma-Pass-1'))
m = imaplib.IMAP4('127.0.0.1', port)
try:
    print(m.login('uma@example.com', 'Uma-Pass-1')[0])
except imaplib.IMAP4.error:
    print('NO')
"#
    );
    let out = python(&script, &[&site.ports.imap.to_string()]);
    let failed = "a NO [AUTHENTICATIONFAILED] Authentication failed.";
    let lines: Vec<&str> = out.lines().collect();
    let shape = format!("[16, '4096', '{failed}']");
    assert_eq!(lines[..4], [&shape[..]; 4], "{out}");
    assert_eq!(lines[4..], ["NO", "NO", "NO"], "{out}");
    let stats = site.cli_ok(&["stats"], None);
    assert!(stats.lines().count() > 1, "{stats}");
    server.stop();
}

#[test]
fn sasl_ir_and_bad_input_on_the_wire() {
    let site = site("");
    add(&site, "val@example.com", "Val-Pass-1", false);
    let server = site.start();
    let mut c = Client::connect(site.addr(site.ports.imap));
    c.line();
    // PLAIN with SASL-IR: \0val@example.com\0Val-Pass-1
    c.send(b"a AUTHENTICATE PLAIN AHZhbEBleGFtcGxlLmNvbQBWYWwtUGFzcy0x\r\n");
    let answer = c.until_tagged("a").pop().expect("answer");
    assert!(answer.starts_with("a OK [CAPABILITY"), "{answer}");
    let mut c = Client::connect(site.addr(site.ports.imap));
    c.line();
    c.send(b"b AUTHENTICATE SCRAM-SHA-256\r\n");
    assert_eq!(c.line(), "+ \r\n");
    c.send(b"not base64!\r\n");
    assert_eq!(c.until_tagged("b"), ["b BAD Invalid SASL response\r\n"]);
    c.send(b"c AUTHENTICATE LOGIN\r\n");
    assert_eq!(c.line(), "+ VXNlcm5hbWU6\r\n");
    c.send(b"*\r\n");
    assert_eq!(c.until_tagged("c"), ["c BAD AUTHENTICATE cancelled\r\n"]);
    c.send(b"d AUTHENTICATE PLAIN\r\n");
    assert_eq!(c.line(), "+ \r\n");
    c.send(&[b'A'; 9000]);
    c.send(b"\r\n");
    assert_eq!(c.until_tagged("d"), ["d BAD SASL response too long\r\n"]);
    c.send(b"e NOOP\r\n");
    assert_eq!(c.until_tagged("e"), ["e OK NOOP completed\r\n"]);
    server.stop();
}

#[test]
fn poplib_logs_in_with_apop_auth_plain_and_scram() {
    let site = site("");
    add(&site, "pat@example.com", "Pat-Pass-1", true);
    add(&site, "noapop@example.com", "Noapop-Pass-2", false);
    let server = site.start();
    let cert = site.data.join("tls").join("cert.pem");
    let script = format!(
        "{PY_AUTH}{}",
        r#"
pop, pop3s, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def connect(kind):
    if kind == 'pop3s':
        return poplib.POP3_SSL('127.0.0.1', pop3s, context=tls_context(cafile))
    p = poplib.POP3('127.0.0.1', pop)
    if kind == 'stls':
        p.stls(context=tls_context(cafile))
    return p
def apop(kind, user, pw):
    p = connect(kind)
    try:
        answer = p.apop(user, pw).decode().split(' ')[0]
        stat = p.stat()
        p.quit()
        return answer + ' ' + str(stat)
    except poplib.error_proto as e:
        return e.args[0].decode()
def sasl(kind, mech, user, pw):
    p = connect(kind)
    p._putcmd('AUTH ' + mech + (' ' + base64.b64encode(b'\0' + user.encode() + b'\0' + pw.encode()).decode() if mech == 'PLAIN' else ''))
    if mech == 'SCRAM-SHA-256':
        client = ScramClient(['SCRAM-SHA-256'], user, pw)
        line = p._getline()[0]
        assert line == b'+ ', line
        p._putcmd(base64.b64encode(client.get_client_first().encode()).decode())
        line = p._getline()[0]
        if not line.startswith(b'+ '):
            return line.decode()
        client.set_server_first(base64.b64decode(line[2:]).decode())
        p._putcmd(base64.b64encode(client.get_client_final().encode()).decode())
        line = p._getline()[0]
        if not line.startswith(b'+ '):
            return line.decode()
        client.set_server_final(base64.b64decode(line[2:]).decode())
        p._putcmd('')
    answer = p._getline()[0].decode()
    if answer.startswith('+OK'):
        answer = '+OK ' + str(p.stat())
        p.quit()
    return answer
p = connect('plain')
print(p.getwelcome().decode().split(' ')[-1].startswith('<'))
print(sorted(p.capa()['SASL']))
p.quit()
for kind in ['plain', 'stls', 'pop3s']:
    print(kind, apop(kind, 'pat@example.com', 'Pat-Pass-1'), '|', apop(kind, 'pat@example.com', 'nope'))
    for mech in ['PLAIN', 'SCRAM-SHA-256']:
        print(kind, mech, sasl(kind, mech, 'pat@example.com', 'Pat-Pass-1'), '|',
              sasl(kind, mech, 'pat@example.com', 'nope'))
print('noapop', apop('plain', 'noapop@example.com', 'Noapop-Pass-2'))
print('noapop', sasl('plain', 'SCRAM-SHA-256', 'noapop@example.com', 'Noapop-Pass-2'))
"#
    );
    let out = python(
        &script,
        &[
            &site.ports.pop3.to_string(),
            &site.ports.pop3s.to_string(),
            &cert.display().to_string(),
        ],
    );
    let failed = "-ERR [AUTH] Authentication failed";
    let mut want = String::from("True\n['CRAM-MD5', 'LOGIN', 'PLAIN', 'SCRAM-SHA-256']\n");
    for kind in ["plain", "stls", "pop3s"] {
        want.push_str(&format!("{kind} +OK (0, 0) | {failed}\n"));
        for mech in ["PLAIN", "SCRAM-SHA-256"] {
            want.push_str(&format!("{kind} {mech} +OK (0, 0) | {failed}\n"));
        }
    }
    want.push_str(&format!("noapop {failed}\nnoapop +OK (0, 0)\n"));
    assert_eq!(out, want);
    server.stop();
}
