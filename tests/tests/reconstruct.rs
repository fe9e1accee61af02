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
