//! Several IMAP sessions on one mailbox through the real engine: each hears of the
//! others' changes when IMAP allows (flags as FETCH, expunges only at a command that may
//! announce them, deliveries as EXISTS), and a session that selects later sees the
//! mailbox as it is. Sessions on the same mailbox share one message list in the engine
//! (`b::MessageList`): these answers are what sharing must not change.

use tests::{Client, Options, Site};

fn deliver(site: &Site, subject: &str) {
    let mut l = Client::connect(site.addr(site.ports.lmtp));
    let reply = |l: &mut Client| loop {
        let line = l.line();
        assert!(line.len() > 3, "LMTP closed: {line:?}");
        if line.as_bytes()[3] == b' ' {
            assert!(line.starts_with('2') || line.starts_with('3'), "{line}");
            return;
        }
    };
    reply(&mut l);
    for cmd in [
        "LHLO test\r\n",
        "MAIL FROM:<s@example.org>\r\n",
        "RCPT TO:<ann@example.com>\r\n",
        "DATA\r\n",
    ] {
        l.send(cmd.as_bytes());
        reply(&mut l);
    }
    l.send(format!("Subject: {subject}\r\n\r\nhello\r\n.\r\n").as_bytes());
    reply(&mut l);
    l.send(b"QUIT\r\n");
}

fn session(site: &Site, tag: &str) -> Client {
    let mut c = Client::connect(site.addr(site.ports.imap));
    c.line();
    c.send(format!("{tag}0 LOGIN ann@example.com pw\r\n").as_bytes());
    let login = c.until_tagged(&format!("{tag}0"));
    assert!(login.last().is_some_and(|l| l.contains("OK")), "{login:?}");
    c.send(format!("{tag}1 SELECT INBOX\r\n").as_bytes());
    let select = c.until_tagged(&format!("{tag}1"));
    assert!(
        select.last().is_some_and(|l| l.contains("OK")),
        "{select:?}"
    );
    c
}

/// The untagged lines of a command's answer (tagged line checked OK).
fn run(c: &mut Client, tag: &str, command: &str) -> Vec<String> {
    c.send(format!("{tag} {command}\r\n").as_bytes());
    let mut lines = c.until_tagged(tag);
    let done = lines.pop().unwrap_or_default();
    assert!(done.starts_with(&format!("{tag} OK")), "{command}: {done}");
    lines.iter().map(|l| l.trim_end().to_owned()).collect()
}

#[test]
fn sessions_on_one_mailbox_hear_of_each_others_changes_in_time() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "ann@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let _server = site.start();
    for s in ["one", "two", "three"] {
        deliver(&site, s);
    }
    let mut a = session(&site, "a");
    let mut b = session(&site, "b");
    let mut c = session(&site, "c");

    // Flags set by B reach A at its next command.
    assert_eq!(
        run(&mut b, "b2", "STORE 2 +FLAGS (\\Flagged)"),
        ["* 2 FETCH (FLAGS (\\Flagged))"]
    );
    assert_eq!(run(&mut a, "a2", "NOOP"), ["* 2 FETCH (FLAGS (\\Flagged))"]);

    // B expunges message 1: A's FETCH may not announce it, its NOOP does.
    run(&mut b, "b3", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(run(&mut b, "b4", "EXPUNGE"), ["* 1 EXPUNGE"]);
    let fetched = run(&mut a, "a3", "FETCH 1:* (UID)");
    assert_eq!(
        fetched,
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)"
        ],
        "no EXPUNGE during FETCH"
    );
    assert_eq!(run(&mut a, "a4", "NOOP"), ["* 1 EXPUNGE"]);

    // C, quiet all along, hears both at once: the flag change numbered before the
    // expunge it precedes.
    assert_eq!(
        run(&mut c, "c2", "NOOP"),
        ["* 2 FETCH (FLAGS (\\Flagged))", "* 1 EXPUNGE"]
    );

    // A delivery wakes A in IDLE.
    a.send(b"a5 IDLE\r\n");
    assert!(a.line().starts_with('+'));
    deliver(&site, "four");
    assert_eq!(a.line().trim_end(), "* 3 EXISTS");
    a.send(b"DONE\r\n");
    a.until_tagged("a5");

    // A session selecting now, and the ones that catch up, see the mailbox as it is.
    let mut d = session(&site, "d");
    let now = [
        "* 1 FETCH (UID 2 FLAGS (\\Flagged))",
        "* 2 FETCH (UID 3 FLAGS ())",
        "* 3 FETCH (UID 4 FLAGS ())",
    ];
    assert_eq!(run(&mut d, "d2", "FETCH 1:* (UID FLAGS)"), now);
    assert_eq!(run(&mut a, "a6", "FETCH 1:* (UID FLAGS)"), now);
    let c_lines = run(&mut c, "c3", "NOOP");
    assert_eq!(c_lines, ["* 3 EXISTS", "* 0 RECENT"]);
    assert_eq!(run(&mut c, "c4", "FETCH 1:* (UID FLAGS)"), now);
    // B, which expunged, caught up too.
    run(&mut b, "b5", "NOOP");
    assert_eq!(run(&mut b, "b6", "FETCH 1:* (UID FLAGS)"), now);

    // A flag change after all that: every session hears of it once.
    run(&mut d, "d3", "STORE 3 +FLAGS.SILENT (\\Seen)");
    for (s, tag) in [(&mut a, "a7"), (&mut b, "b7"), (&mut c, "c5")] {
        assert_eq!(run(s, tag, "NOOP"), ["* 3 FETCH (FLAGS (\\Seen))"]);
        assert!(run(s, &format!("{tag}x"), "NOOP").is_empty());
    }
}
