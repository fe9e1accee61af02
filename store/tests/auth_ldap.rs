//! LDAP as a password source against a real OpenLDAP `slapd` (Debian's package),
//! started by the test in a temp dir on a free loopback port, rootless config as in
//! `shared/recipes/slapd.md`. Needs `apt-get install slapd ldap-utils`; fails with
//! that message when slapd is missing. The test installs nothing.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store::Address;
use store::auth::ldap::LDAP_TIMEOUT_DEFAULT;
use store::auth::{AuthResult, LdapConfig, LdapMode, LdapSource, Lookup, PasswordSource, Secret};

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
    panic!(
        "{name} not found: the LDAP tests need Debian's slapd (apt-get install slapd ldap-utils)"
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn run(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .env("LDAPNOINIT", "1")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Slapd {
    fn start() -> Slapd {
        let slapd = tool("slapd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        fs::create_dir(dir.path().join("db")).expect("db dir");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             suffix \"{BASE}\"\n\
             rootdn \"cn=admin,{BASE}\"\n\
             rootpw adminsecret\n\
             directory {d}/db\n\
             maxsize 10485760\n\
             access to attrs=userPassword\n    by anonymous auth\n    by self write\n    by * none\n\
             access to *\n    by * read\n"
        );
        let conf_path = dir.path().join("slapd.conf");
        fs::write(&conf_path, conf).expect("conf");
        let ssha = run(&tool("slappasswd"), &["-s", "secret"]);
        let person = |uid: &str, mail: &str, password: &str| {
            format!(
                "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
                 sn: {uid}\nmail: {mail}\nuserPassword: {password}\n\n"
            )
        };
        let ldif = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n{}{}{}{}{}",
            person("u1", "u1@example.com", &ssha),
            person("u2", "u2@example.com", "secret2"),
            person("u3", "third@example.com", "secret3"),
            // Two entries with one mail address: ambiguous, nobody logs in with it.
            person("twin1", "twin@example.com", "twinpw"),
            person("twin2", "twin@example.com", "twinpw"),
        );
        let ldif_path = dir.path().join("data.ldif");
        fs::write(&ldif_path, ldif).expect("ldif");
        let conf_arg = conf_path.display().to_string();
        run(
            &tool("slapadd"),
            &[
                "-q",
                "-f",
                &conf_arg,
                "-l",
                &ldif_path.display().to_string(),
            ],
        );

        for _attempt in 0..5 {
            let port = free_port();
            let log = fs::File::create(dir.path().join("slapd.log")).expect("log");
            let mut child = Command::new(&slapd)
                .args([
                    "-f",
                    &conf_arg,
                    "-h",
                    &format!("ldap://127.0.0.1:{port}/"),
                    "-d",
                    "none",
                ])
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
                        break; // another port
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

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
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

fn addr(text: &str) -> Address {
    Address::parse(text).expect("address")
}

fn source(url: String, mode: LdapMode) -> LdapSource {
    LdapSource::new(LdapConfig {
        url,
        mode,
        timeout: LDAP_TIMEOUT_DEFAULT,
    })
}

#[test]
fn bind_with_dn_template() {
    let slapd = Slapd::start();
    let ldap = source(
        slapd.url(),
        LdapMode::Bind {
            dn_template: format!("uid=%n,{PEOPLE}"),
        },
    );
    assert_eq!(
        ldap.verify(&addr("u1@example.com"), b"secret"),
        AuthResult::Ok,
        "{{SSHA}}"
    );
    assert_eq!(
        ldap.verify(&addr("u2@example.com"), b"secret2"),
        AuthResult::Ok,
        "cleartext"
    );
    assert_eq!(
        ldap.verify(&addr("u1@example.com"), b"wrong"),
        AuthResult::Failed
    );
    assert_eq!(
        ldap.verify(&addr("nobody@example.com"), b"secret"),
        AuthResult::Failed
    );
    // An empty password would be an unauthenticated bind, which LDAP accepts.
    assert_eq!(
        ldap.verify(&addr("u1@example.com"), b""),
        AuthResult::Failed
    );
    // DN metacharacters in the name are escaped, not interpreted.
    assert_eq!(
        ldap.verify(&addr("u1+x=y@example.com"), b"secret"),
        AuthResult::Ok,
        "+detail dropped"
    );
    assert_eq!(
        ldap.verify(&addr("u1=,ou=people@example.com"), b"secret"),
        AuthResult::Failed
    );
    // LDAP holds no SCRAM keys or CRAM secrets.
    assert_eq!(ldap.scram(&addr("u1@example.com")), Lookup::Missing);
    assert_eq!(ldap.cram_secret(&addr("u1@example.com")), Lookup::Missing);
}

#[test]
fn search_then_bind() {
    let slapd = Slapd::start();
    let anonymous = source(
        slapd.url(),
        LdapMode::SearchBind {
            base: PEOPLE.into(),
            filter_template: "(&(objectClass=inetOrgPerson)(mail=%u))".into(),
            bind_dn: None,
            bind_password: None,
        },
    );
    assert_eq!(
        anonymous.verify(&addr("third@example.com"), b"secret3"),
        AuthResult::Ok
    );
    assert_eq!(
        anonymous.verify(&addr("third@example.com"), b"secret"),
        AuthResult::Failed
    );
    assert_eq!(
        anonymous.verify(&addr("ghost@example.com"), b"secret3"),
        AuthResult::Failed
    );
    assert_eq!(
        anonymous.verify(&addr("twin@example.com"), b"twinpw"),
        AuthResult::Failed,
        "ambiguous"
    );
    // Filter metacharacters are escaped: "*" matches no one.
    assert_eq!(
        anonymous.verify(&addr("*@example.com"), b"secret3"),
        AuthResult::Failed
    );
    assert_eq!(
        anonymous.verify(&addr("third*@example.com"), b"secret3"),
        AuthResult::Failed
    );

    let service = |password: &str| {
        source(
            slapd.url(),
            LdapMode::SearchBind {
                base: BASE.into(),
                filter_template: "(mail=%u)".into(),
                bind_dn: Some(format!("cn=admin,{BASE}")),
                bind_password: Some(Secret::new(password.as_bytes().to_vec())),
            },
        )
    };
    assert_eq!(
        service("adminsecret").verify(&addr("u1@example.com"), b"secret"),
        AuthResult::Ok
    );
    assert_eq!(
        service("adminsecret").verify(&addr("u1@example.com"), b"nope"),
        AuthResult::Failed
    );
    // A wrong service password is the operator's problem, not the user's: temporary.
    assert_eq!(
        service("wrong").verify(&addr("u1@example.com"), b"secret"),
        AuthResult::Unavailable
    );
}

#[test]
fn directory_down_is_unavailable() {
    let slapd = Slapd::start();
    let url = slapd.url();
    drop(slapd);
    let ldap = source(
        url,
        LdapMode::Bind {
            dn_template: format!("uid=%n,{PEOPLE}"),
        },
    );
    assert_eq!(
        ldap.verify(&addr("u1@example.com"), b"secret"),
        AuthResult::Unavailable
    );
}
