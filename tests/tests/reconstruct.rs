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

const POP_LIST: &str = r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
p.user(sys.argv[2]); p.pass_('pw')
# The UID half of each UIDL: a lost index takes UIDNEXT with it, so reconstruct
# must give the mailbox a new UIDVALIDITY (RFC 3501 2.3.1.1), but UIDs stay.
uidl = [l.decode().split()[1][8:] for l in p.uidl()[1]]
bodies = [b'\n'.join(p.retr(i + 1)[1]) for i in range(len(uidl))]
p.quit()
print(uidl)
print([len(b) for b in bodies])
"#;

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
    let before = python(POP_LIST, &[&pop, "rick@example.com"]);
    server.stop();

    // Offline.
    let dir = user_dir(&site, "rick@example.com");
    assert!(wipe_indexes(&dir) >= 2, "index and cache removed");
    let out = site.cli_ok(&["reconstruct", "rick@example.com"], None);
    assert!(
        out.contains("[1/1] rick@example.com: 1 mailboxes, 5 messages"),
        "{out}"
    );
    let server = site.start();
    assert_eq!(python(POP_LIST, &[&pop, "rick@example.com"]), before);

    // Online, through the running server.
    assert!(wipe_indexes(&dir) >= 2);
    let out = site.cli_ok(&["reconstruct", "--all"], None);
    assert!(
        out.contains("rick@example.com: 1 mailboxes, 5 messages"),
        "{out}"
    );
    assert_eq!(python(POP_LIST, &[&pop, "rick@example.com"]), before);
    let missing = site.cli(&["reconstruct", "ghost@example.com"], None);
    assert!(!missing.status.success());
    server.stop();
}
