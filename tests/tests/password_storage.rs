//! End-to-end: what the store keeps of a password. Account add, `passwd` and
//! poppassd write the full verifiers (argon2id + SCRAM keys, and a sealed
//! CRAM-MD5/APOP secret only for accounts that enable it); no file anywhere under
//! the data directory holds a password in the clear.

use std::path::Path;

use tests::{Options, Site, python};

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

fn profile(site: &Site, user: &str) -> String {
    let show = site.cli_ok(&["account", "show", user], None);
    let path = show
        .lines()
        .find_map(|l| l.strip_prefix("path"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no path in {show}"));
    std::fs::read_to_string(Path::new(path).join("profile")).expect("profile")
}

fn password_line(site: &Site, user: &str) -> String {
    profile(site, user)
        .lines()
        .find_map(|l| l.strip_prefix("password_hash "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn verifiers_are_stored_and_no_file_holds_a_password() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "plain@example.com", "--password-stdin"],
        Some("Plain-Secret-1\n"),
    );
    site.cli_ok(
        &[
            "account",
            "add",
            "cram@example.com",
            "--password-stdin",
            "--cram-md5",
        ],
        Some("Cram-Secret-2\n"),
    );
    let plain = password_line(&site, "plain@example.com");
    assert!(
        plain.starts_with("msv1;argon2id=$argon2id$") && plain.contains(";scram-sha-256=4096,"),
        "{plain}"
    );
    assert!(!plain.contains(";cram="), "{plain}");
    let cram = password_line(&site, "cram@example.com");
    assert!(cram.contains(";cram="), "{cram}");
    let show = site.cli_ok(&["account", "show", "cram@example.com"], None);
    assert!(
        show.contains("password  set (argon2id scram-sha-256 cram-md5)\n"),
        "{show}"
    );
    let key = site.data.join("keys").join("secret.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("server key").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{}", key.display());

    // Online: passwd through the admin socket, poppassd through the protocol.
    let server = site.start();
    site.cli_ok(
        &[
            "account",
            "passwd",
            "plain@example.com",
            "--password-stdin",
            "--cram-md5",
        ],
        Some("Plain-Secret-3\n"),
    );
    assert!(password_line(&site, "plain@example.com").contains(";cram="));
    let out = python(
        r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
f = s.makefile('rwb')
def say(line):
    if line:
        f.write(line.encode() + b'\r\n'); f.flush()
    print(f.readline().decode().split(' ')[0], flush=True)
for line in [None, 'user cram@example.com', 'pass Cram-Secret-2',
             'newpass Cram-Secret-4', 'quit']:
    say(line)
"#,
        &[&site.ports.poppassd.to_string()],
    );
    assert_eq!(out, "200\n200\n200\n200\n200\n");
    // The account had a CRAM-MD5 secret: the new password keeps one.
    assert!(password_line(&site, "cram@example.com").contains(";cram="));
    site.cli_ok(
        &["account", "set", "cram@example.com", "--cram-md5", "off"],
        None,
    );
    let dropped = password_line(&site, "cram@example.com");
    assert!(
        !dropped.contains(";cram=") && dropped.contains(";scram-sha-256="),
        "{dropped}"
    );
    let bad = site.cli(
        &["account", "set", "cram@example.com", "--cram-md5", "on"],
        None,
    );
    assert!(!bad.status.success());
    server.stop();

    for secret in [
        "Plain-Secret-1",
        "Cram-Secret-2",
        "Plain-Secret-3",
        "Cram-Secret-4",
    ] {
        let found = files_containing(&site.data, secret.as_bytes());
        assert!(found.is_empty(), "{secret} in {found:?}");
    }
}
