//! End-to-end reconstruct: delete every index and cache file of a user, rebuild
//! from the message files (offline, and online through the running server), and the
//! messages are all served again with their UIDs.

use std::path::{Path, PathBuf};

use tests::{Options, Site, python};

fn user_dir(site: &Site, user: &str) -> PathBuf {
    let out = site.cli_ok(&["account", "show", user], None);
    PathBuf::from(
        out.lines()
            .find_map(|l| l.strip_prefix("path      "))
            .expect("path")
            .trim(),
    )
}

/// Removes `index` and `cache` of every mailbox; returns how many files went.
fn wipe_indexes(dir: &Path) -> usize {
    let mut n = 0;
    for mbox in std::fs::read_dir(dir.join("mail"))
        .expect("mail dir")
        .flatten()
    {
        for name in ["index", "cache"] {
            if std::fs::remove_file(mbox.path().join(name)).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Whole UIDLs (UIDVALIDITY and UID: issue 6 wants them stable across reconstruct),
/// the message sizes, and IMAP STATUS UIDVALIDITY.
const POP_LIST: &str = r#"
import imaplib, poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
p.user(sys.argv[2]); p.pass_('pw')
uidl = [l.decode().split()[1] for l in p.uidl()[1]]
bodies = [b'\n'.join(p.retr(i + 1)[1]) for i in range(len(uidl))]
p.quit()
i = imaplib.IMAP4('127.0.0.1', int(sys.argv[3]))
i.login(sys.argv[2], 'pw')
print(uidl)
print([len(b) for b in bodies])
print(i.status('INBOX', '(UIDVALIDITY)')[1][0].decode())
i.logout()
"#;

/// IMAP STATUS UIDNEXT of INBOX.
const UIDNEXT: &str = r#"
import imaplib, re, sys
i = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
i.login(sys.argv[2], 'pw')
print(re.search(rb'UIDNEXT (\d+)', i.status('INBOX', '(UIDNEXT)')[1][0]).group(1).decode())
i.logout()
"#;

fn uidnext(site: &Site, user: &str) -> u64 {
    python(UIDNEXT, &[&site.ports.imap.to_string(), user])
        .trim()
        .parse()
        .expect("UIDNEXT")
}

#[test]
fn reconstruct_restores_every_message_offline_and_online() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "rick@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let server = site.start();
    python(
        "import smtplib, sys\n\
         l = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))\n\
         for i in range(5):\n\
         \x20   l.sendmail('s@example.org', ['rick@example.com'], ('Subject: m%d\\r\\n\\r\\n' % i + 'x' * i * 100 + '\\r\\n').encode())\n\
         l.quit()\n",
        &[&site.ports.lmtp.to_string()],
    );
    let pop = site.ports.pop3.to_string();
    let imap = site.ports.imap.to_string();
    // The last message is deleted: a lost index must not make its UID come back.
    python(
        "import poplib, sys\n\
         p = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         p.user('rick@example.com'); p.pass_('pw'); p.dele(5); p.quit()\n",
        &[&pop],
    );
    let before = python(POP_LIST, &[&pop, "rick@example.com", &imap]);
    assert!(before.contains("UIDVALIDITY"), "{before}");
    let uidnext_before = uidnext(&site, "rick@example.com");
    assert_eq!(uidnext_before, 6);
    server.stop();

    // Offline.
    let dir = user_dir(&site, "rick@example.com");
    assert!(wipe_indexes(&dir) >= 2, "index and cache removed");
    let out = site.cli_ok(&["reconstruct", "rick@example.com"], None);
    assert!(
        out.contains("[1/1] rick@example.com: 1 mailboxes, 4 messages"),
        "{out}"
    );
    let server = site.start();
    assert_eq!(python(POP_LIST, &[&pop, "rick@example.com", &imap]), before);
    assert!(uidnext(&site, "rick@example.com") >= uidnext_before);

    // Online, through the running server.
    assert!(wipe_indexes(&dir) >= 2);
    let out = site.cli_ok(&["reconstruct", "--all"], None);
    assert!(
        out.contains("rick@example.com: 1 mailboxes, 4 messages"),
        "{out}"
    );
    assert_eq!(python(POP_LIST, &[&pop, "rick@example.com", &imap]), before);
    let next = uidnext(&site, "rick@example.com");
    assert!(next >= uidnext_before);
    // A new delivery gets a UID no message ever had.
    python(
        "import smtplib, sys\n\
         l = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))\n\
         l.sendmail('s@example.org', ['rick@example.com'], b'Subject: new\\r\\n\\r\\nhi\\r\\n')\n\
         l.quit()\n",
        &[&site.ports.lmtp.to_string()],
    );
    let after = python(POP_LIST, &[&pop, "rick@example.com", &imap]);
    let new_uidl = after
        .lines()
        .next()
        .and_then(|l| {
            l.trim_matches(['[', ']'])
                .split(", ")
                .last()
                .map(str::to_owned)
        })
        .expect("uidl");
    assert!(!before.contains(&new_uidl), "{new_uidl} reused: {before}");
    assert_eq!(
        u64::from_str_radix(&new_uidl.trim_matches('\'')[8..], 16).ok(),
        Some(next)
    );
    let missing = site.cli(&["reconstruct", "ghost@example.com"], None);
    assert!(!missing.status.success());
    server.stop();
}

/// An online reconstruct runs off the shard thread: while it rebuilds a large mailbox of
/// one user, another user of the same shard logs in and fetches.
#[test]
fn online_reconstruct_does_not_block_the_shard() {
    let site = Site::new(Options {
        shards: 1,
        ..Options::default()
    });
    for user in ["big@example.com", "other@example.com"] {
        site.cli_ok(&["account", "add", user, "--password-stdin"], Some("pw\n"));
    }
    let server = site.start();
    python(
        "import smtplib, sys\n\
         l = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))\n\
         for rcpt in ['big@example.com', 'other@example.com']:\n\
         \x20   l.sendmail('s@example.org', [rcpt], b'Subject: hello\\r\\n\\r\\nfor ' + rcpt.encode() + b'\\r\\n')\n\
         l.quit()\n",
        &[&site.ports.lmtp.to_string()],
    );
    // Message files the index does not know (as if restored from a backup): reconstruct
    // adopts them, which takes a while.
    let inbox = user_dir(&site, "big@example.com").join("mail/1");
    const ADOPTED: u32 = 12_000;
    for uid in 100..100 + ADOPTED {
        let body = format!(
            "Subject: restored {uid}\r\nFrom: a@example.org\r\n\r\n{}\r\n",
            "line\r\n".repeat(20)
        );
        std::fs::write(inbox.join(uid.to_string()), body).expect("write message");
    }
    let mut cli = std::process::Command::new(tests::binary())
        .arg("-c")
        .arg(&site.config)
        .args(["reconstruct", "big@example.com"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn reconstruct");
    // The rebuild's new index exists from its start to its end.
    let rebuilding = inbox.join(".index.rebuild");
    let mut started = false;
    for _ in 0..6000 {
        if rebuilding.exists() {
            started = true;
            break;
        }
        assert!(
            cli.try_wait().expect("wait").is_none(),
            "reconstruct ended before it was seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(started, "reconstruct never started");
    let t0 = std::time::Instant::now();
    let mut imap = tests::Client::connect(site.addr(site.ports.imap));
    assert!(imap.line().starts_with("* OK"));
    imap.send(b"a LOGIN other@example.com pw\r\n");
    assert!(
        imap.until_tagged("a")
            .last()
            .is_some_and(|l| l.starts_with("a OK"))
    );
    imap.send(b"b SELECT INBOX\r\nc FETCH 1 (BODY[TEXT])\r\n");
    imap.until_tagged("b");
    let lines = imap.until_tagged("c");
    let fetched = lines.get(1).cloned().unwrap_or_default();
    eprintln!("other user served in {:?}", t0.elapsed());
    assert_eq!(fetched.trim(), "for other@example.com");
    // The new index is renamed into place when the rebuild ends: still there means the
    // other user was served in the middle of it (a reconstruct on the shard thread would
    // have made the fetch wait for its end).
    assert!(
        rebuilding.exists(),
        "the other user was served only after the rebuild ended"
    );
    for _ in 0..12_000 {
        if !rebuilding.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    eprintln!("rebuild ended after {:?}", t0.elapsed());
    let out = cli.wait_with_output().expect("reconstruct output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "big@example.com: 1 mailboxes, {} messages",
            ADOPTED + 1
        )),
        "{}",
        stdout.lines().next().unwrap_or_default()
    );
    // And the reconstructed user is served again.
    let count = python(
        "import imaplib, sys\n\
         i = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n\
         i.login('big@example.com', 'pw')\n\
         print(i.select('INBOX')[1][0].decode())\n\
         i.logout()\n",
        &[&site.ports.imap.to_string()],
    );
    assert_eq!(count.trim(), (ADOPTED + 1).to_string());
    server.stop();
}
