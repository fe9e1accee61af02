//! End-to-end: failed-login throttling, plaintext policy, idle timeouts, and the
//! per-IP connection limit — checked by what a client sees, not by timing.

use tests::{Client, Options, Site, python};

fn site_with(auth_and_limits: &str) -> Site {
    let site = Site::new(Options::default());
    let mut cfg = std::fs::read_to_string(&site.config).expect("config");
    cfg.push_str(auth_and_limits);
    std::fs::write(&site.config, cfg).expect("config");
    site
}

fn login(site: &Site, user: &str, password: &str) -> String {
    let mut c = Client::connect(site.addr(site.ports.imap));
    c.line();
    c.send(format!("a LOGIN {user} {password}\r\n").as_bytes());
    c.until_tagged("a").pop().expect("answer")
}

#[test]
fn repeated_failures_block_even_the_right_password() {
    let site = site_with(
        "\n[auth]\nfailures_before_delay = 100\nfailures_before_block = 3\nblock_seconds = 600\n",
    );
    site.cli_ok(
        &["account", "add", "carol@example.com", "--password-stdin"],
        Some("right\n"),
    );
    let server = site.start();
    assert!(login(&site, "carol@example.com", "right").starts_with("a OK"));
    for _ in 0..3 {
        assert!(
            login(&site, "carol@example.com", "wrong").starts_with("a NO [AUTHENTICATIONFAILED]")
        );
    }
    let blocked = login(&site, "carol@example.com", "right");
    assert!(
        blocked.starts_with("a NO [AUTHENTICATIONFAILED]"),
        "{blocked}"
    );
    let stats = site.cli_ok(&["stats"], None);
    let blocked_total: u64 = stats
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(8)?.parse::<u64>().ok())
        .sum();
    assert!(blocked_total >= 1, "blocked logins counted:\n{stats}");
    server.stop();
}

#[test]
fn plaintext_login_waits_for_starttls_when_configured() {
    let site = site_with("\n[auth]\nplaintext_without_tls = false\n");
    site.cli_ok(
        &["account", "add", "dave@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let server = site.start();
    let mut c = Client::connect(site.addr(site.ports.imap));
    let greeting = c.line();
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    c.send(b"a LOGIN dave@example.com pw\r\n");
    let answer = c.until_tagged("a").pop().expect("answer");
    assert!(answer.starts_with("a NO [PRIVACYREQUIRED]"), "{answer}");
    let cert = site.data.join("tls").join("cert.pem");
    let out = python(
        "import imaplib, ssl, sys\n\
         ctx = ssl.create_default_context(cafile=sys.argv[2]); ctx.check_hostname = False\n\
         m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n\
         m.starttls(ssl_context=ctx)\n\
         print(m.login('dave@example.com', 'pw')[0])\n\
         m.logout()\n",
        &[&site.ports.imap.to_string(), &cert.display().to_string()],
    );
    assert_eq!(out, "OK\n");
    server.stop();
}

#[test]
fn silent_connections_are_logged_out_and_per_ip_limit_holds() {
    let site = site_with("\n[limits]\nidle_preauth_seconds = 1\nconnections_per_ip = 4\n");
    let server = site.start();
    let mut c = Client::connect(site.addr(site.ports.imap));
    assert!(c.line().starts_with("* OK"));
    let rest = c.rest();
    assert!(rest.contains("* BYE Autologout"), "{rest:?}");

    // Every connection comes from 127.0.0.1: past the limit on a shard, new ones
    // are refused with a BYE instead of a greeting.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        let mut c = Client::connect(site.addr(site.ports.imap));
        let l = c.line();
        if l.starts_with("* BYE [UNAVAILABLE] Too many connections") {
            refused += 1;
        } else {
            assert!(l.starts_with("* OK"), "{l}");
            open.push(c);
        }
    }
    assert!(
        open.len() <= 4 * 2,
        "at most 4 per shard: {} open",
        open.len()
    );
    assert!(refused >= 4, "{refused} refused");
    drop(open);
    server.stop();
}
