//! End-to-end password locations per domain (`[auth.domains."DOMAIN"]`): a Dovecot
//! passwd-file domain, a shadow(5) domain and two LDAP domains (bind as the user; search + bind) against
//! Debian's `slapd`, started by the test in a temp dir on a free loopback port
//! (shared/recipes/slapd.md). The accounts exist in the store without a password;
//! IMAP LOGIN and AUTHENTICATE check the domain's source. A mechanism the source
//! cannot serve (SCRAM or CRAM-MD5 from LDAP) fails like a wrong password.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Options, Site, python};

const BASE: &str = "dc=example,dc=com";
const PEOPLE: &str = "ou=people,dc=example,dc=com";

/// A throw-away slapd; stopped with SIGTERM when dropped.
struct Slapd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} not found: this test needs Debian's slapd (apt-get install slapd ldap-utils)");
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Slapd {
    /// `people`: (uid, mail, userPassword).
    fn start(people: &[(&str, &str, &str)]) -> Slapd {
        let slapd = tool("slapd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        fs::create_dir(dir.path().join("db")).expect("db dir");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             database mdb\nsuffix \"{BASE}\"\nrootdn \"cn=admin,{BASE}\"\nrootpw adminsecret\n\
             directory {d}/db\nmaxsize 10485760\n\
             access to attrs=userPassword\n    by anonymous auth\n    by self write\n    by * none\n\
             access to *\n    by * read\n"
        );
        let conf_path = dir.path().join("slapd.conf");
        fs::write(&conf_path, conf).expect("conf");
        let mut ldif = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n\
             o: Example\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        );
        for (uid, mail, password) in people {
            ldif.push_str(&format!(
                "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
                 sn: {uid}\nmail: {mail}\nuserPassword: {password}\n\n"
            ));
        }
        let ldif_path = dir.path().join("data.ldif");
        fs::write(&ldif_path, ldif).expect("ldif");
        let conf_arg = conf_path.display().to_string();
        let added = Command::new(tool("slapadd"))
            .args([
                "-q",
                "-f",
                &conf_arg,
                "-l",
                &ldif_path.display().to_string(),
            ])
            .env("LDAPNOINIT", "1")
            .output()
            .expect("slapadd");
        assert!(
            added.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        for _attempt in 0..5 {
            let port = free_port();
            let log = fs::File::create(dir.path().join("slapd.log")).expect("log");
            let mut child = Command::new(&slapd)
                .args(["-f", &conf_arg, "-h", &format!("ldap://127.0.0.1:{port}/")])
                .args(["-d", "none"])
                .env("LDAPNOINIT", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn slapd");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = fs::read_to_string(dir.path().join("slapd.log")).unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("slapd exited with {status}: {log}");
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Slapd {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                assert!(Instant::now() < deadline, "slapd did not start listening");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("no free port for slapd after 5 attempts");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// `login(user, pw)` and `auth(mech, user, pw)` against the IMAP port in argv[1];
/// each prints OK or NO.
const PY: &str = r#"
import hmac, imaplib, sys
from scramp import ScramClient
port = int(sys.argv[1])
def login(user, pw):
    m = imaplib.IMAP4('127.0.0.1', port)
    try:
        typ = m.login(user, pw)[0]
        m.select('INBOX')
        return typ
    except imaplib.IMAP4.error:
        return 'NO'
def auth(mech, user, pw):
    m = imaplib.IMAP4('127.0.0.1', port)
    if mech == 'PLAIN':
        obj = lambda c: b'\0' + user.encode() + b'\0' + pw.encode()
    elif mech == 'CRAM-MD5':
        obj = lambda c: user.encode() + b' ' + hmac.HMAC(pw.encode(), c, 'md5').hexdigest().encode()
    else:
        client = ScramClient(['SCRAM-SHA-256'], user, pw)
        steps = iter([
            lambda c: client.get_client_first().encode(),
            lambda c: (client.set_server_first(c.decode()), client.get_client_final().encode())[1],
            lambda c: (client.set_server_final(c.decode()), b'')[1],
        ])
        obj = lambda c: next(steps)(c)
    try:
        return m.authenticate(mech, obj)[0]
    except imaplib.IMAP4.error:
        return 'NO'
"#;

#[test]
fn passwd_file_and_ldap_accounts_log_in_over_imap() {
    let slapd = Slapd::start(&[
        ("lena", "lena@ldap.example", "Lena-Ldap-1"),
        ("sid", "sid@search.example", "Sid-Ldap-2"),
    ]);
    let site = Site::new(Options::default());
    let passwd = site.dir.path().join("files.passwd");
    fs::write(
        &passwd,
        "# Dovecot passwd-file\nfred:{PLAIN}Fred-File-1::::::\n\
         fay:{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg=\n",
    )
    .expect("passwd-file");
    // shadow(5), sha512-crypt made by `openssl passwd -6 -salt saltsalt Shadow-Pass-3`.
    let shadow = site.dir.path().join("shadow");
    fs::write(
        &shadow,
        "root:*:19000:0:99999:7:::\nsue:$6$saltsalt$rMyTjnpU4WB8yH3eKrED.UbpFEAROb71u6Mnmj2ZMsVZpxIDPT7TbQxrp7sLcSlw8qzGHnvvaWt/XSL1HygEY.:19000:0:99999:7:::\n",
    )
    .expect("shadow");
    let mut cfg = fs::read_to_string(&site.config).expect("config");
    cfg.push_str(&format!(
        "\n[auth]\nmechanisms = [\"SCRAM-SHA-256\", \"CRAM-MD5\", \"PLAIN\", \"LOGIN\"]\n\
         [auth.domains.\"files.example\"]\nsource = \"passwd-file\"\npath = \"{}\"\n\
         user = \"local-part\"\n\
         [auth.domains.\"ldap.example\"]\nsource = \"ldap\"\nurl = \"ldap://127.0.0.1:{port}\"\n\
         dn_template = \"uid=%n,{PEOPLE}\"\n\
         [auth.domains.\"search.example\"]\nsource = \"ldap\"\nurl = \"ldap://127.0.0.1:{port}\"\n\
         base = \"{PEOPLE}\"\nfilter = \"(mail=%u)\"\n\
         [auth.domains.\"shadow.example\"]\nsource = \"shadow\"\npath = \"{}\"\n",
        passwd.display(),
        shadow.display(),
        port = slapd.port,
    ));
    fs::write(&site.config, cfg).expect("config");
    for user in [
        "fred@files.example",
        "fay@files.example",
        "lena@ldap.example",
        "sid@search.example",
        "sue@shadow.example",
        "root@shadow.example",
    ] {
        site.cli_ok(&["account", "add", user], None);
    }
    let server = site.start();
    let out = python(
        &format!(
            "{PY}{}",
            r#"
print('fred', login('fred@files.example', 'Fred-File-1'), login('fred@files.example', 'x'),
      auth('PLAIN', 'fred@files.example', 'Fred-File-1'),
      auth('SCRAM-SHA-256', 'fred@files.example', 'Fred-File-1'),
      auth('CRAM-MD5', 'fred@files.example', 'Fred-File-1'),
      auth('SCRAM-SHA-256', 'fred@files.example', 'x'))
print('fay', login('fay@files.example', 'password'), login('fay@files.example', 'Password'))
print('ghost', login('ghost@files.example', 'Fred-File-1'))
print('lena', login('lena@ldap.example', 'Lena-Ldap-1'), login('lena@ldap.example', 'x'),
      auth('PLAIN', 'lena@ldap.example', 'Lena-Ldap-1'),
      auth('SCRAM-SHA-256', 'lena@ldap.example', 'Lena-Ldap-1'),
      auth('CRAM-MD5', 'lena@ldap.example', 'Lena-Ldap-1'))
print('sid', login('sid@search.example', 'Sid-Ldap-2'), login('sid@search.example', 'x'))
print('sue', login('sue@shadow.example', 'Shadow-Pass-3'), login('sue@shadow.example', 'x'),
      login('root@shadow.example', ''))
"#
        ),
        &[&site.ports.imap.to_string()],
    );
    assert_eq!(
        out,
        "fred OK NO OK OK OK NO\nfay OK NO\nghost NO\nlena OK NO OK NO NO\nsid OK NO\n\
         sue OK NO NO\n"
    );
    // The password of an LDAP account is not the store's to change.
    let changed = python(
        r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
f = s.makefile('rwb')
for line in [None, 'user lena@ldap.example', 'pass Lena-Ldap-1', 'newpass Another-Pass-9']:
    if line:
        f.write(line.encode() + b'\r\n'); f.flush()
    last = f.readline().decode().split(' ')[0]
print(last)
"#,
        &[&site.ports.poppassd.to_string()],
    );
    assert_eq!(changed, "500\n");
    server.stop();
    drop(slapd);
}
