//! End-to-end socketmap with Postfix's own client (`postmap -q`, Debian's postfix;
//! scripts/test.sh installs it): transport to the owning shard's LMTP port,
//! recipient validation, forwarding targets.

use std::process::Command;

use tests::{Options, Site};

fn postmap(site: &Site, map: &str, key: &str) -> (i32, String) {
    // postmap reads main.cf; one in the test's own folder naming the host, so postmap
    // does not try to look the machine's name up in DNS.
    let config = site.dir.path().join("postfix");
    std::fs::create_dir_all(&config).expect("postfix dir");
    std::fs::write(
        config.join("main.cf"),
        b"myhostname = localhost.localdomain\nmydomain = localdomain\n",
    )
    .expect("main.cf");
    let out = Command::new("/usr/sbin/postmap")
        .arg("-c")
        .arg(&config)
        .arg("-q")
        .arg(key)
        .arg(format!(
            "socketmap:inet:127.0.0.1:{}:{map}",
            site.ports.socketmap
        ))
        .output()
        .expect("postmap is needed: install Debian's postfix (scripts/test.sh does)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[test]
fn postfix_asks_transport_recipient_and_virtual() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "sam@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    site.cli_ok(
        &[
            "account",
            "add",
            "off@example.com",
            "--password-stdin",
            "--flags",
            "disabled",
        ],
        Some("pw\n"),
    );
    site.cli_ok(
        &[
            "forward",
            "add",
            "info@example.com",
            "sam@example.com",
            "x@elsewhere.example",
        ],
        None,
    );
    let route = site.cli_ok(&["route", "sam@example.com"], None);
    let lmtp = route
        .lines()
        .find_map(|l| l.strip_prefix("lmtp      "))
        .expect("lmtp line")
        .trim()
        .to_owned();
    let server = site.start();
    assert_eq!(
        postmap(&site, "transport", "Sam+news@Example.com"),
        (0, format!("lmtp:inet:{lmtp}"))
    );
    assert_eq!(
        postmap(&site, "recipient", "sam@example.com"),
        (0, "OK".into())
    );
    assert_eq!(
        postmap(&site, "recipient", "info@example.com").0,
        0,
        "a forward-only address is valid"
    );
    // postmap exits 1 for "not found".
    assert_eq!(postmap(&site, "recipient", "nobody@example.com").0, 1);
    assert_eq!(postmap(&site, "recipient", "off@example.com").0, 1);
    assert_eq!(
        postmap(&site, "recipient", "example.com").0,
        1,
        "bare domains have no entry"
    );
    assert_eq!(
        postmap(&site, "virtual", "info@example.com"),
        (0, "sam@example.com, x@elsewhere.example".into())
    );
    assert_eq!(postmap(&site, "virtual", "sam@example.com").0, 1);
    server.stop();
}
