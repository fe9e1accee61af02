//! End-to-end forwarding database: `msgstore forward add|del|list`, delivery through
//! forwards (with and without an account, keep-copy), loops bounced.

use tests::{Options, Site, python};

fn count_messages(site: &Site, user: &str) -> usize {
    let out = site.cli_ok(&["account", "show", user], None);
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix("path      "))
        .expect("path")
        .trim()
        .to_owned();
    let mut n = 0;
    for mbox in std::fs::read_dir(std::path::Path::new(&dir).join("mail"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(mbox.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
            {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn forwards_deliver_locally_keep_copies_and_bounce_loops() {
    let site = Site::new(Options::default());
    for u in ["bob@example.com", "carl@example.com", "dan@example.com"] {
        site.cli_ok(&["account", "add", u, "--password-stdin"], Some("pw\n"));
    }
    // Offline, before the server runs; and online below.
    site.cli_ok(
        &["forward", "add", "alias@example.com", "bob@example.com"],
        None,
    );
    let server = site.start();
    site.cli_ok(
        &[
            "forward",
            "add",
            "carl@example.com",
            "dan@example.com",
            "--keep-copy",
        ],
        None,
    );
    site.cli_ok(
        &["forward", "add", "ping@example.com", "pong@example.com"],
        None,
    );
    site.cli_ok(
        &["forward", "add", "pong@example.com", "ping@example.com"],
        None,
    );
    site.cli_ok(
        &[
            "forward",
            "add",
            "out@example.com",
            "someone@elsewhere.example",
        ],
        None,
    );
    let list = site.cli_ok(&["forward", "list"], None);
    assert!(
        list.contains("alias@example.com -> bob@example.com\n"),
        "{list}"
    );
    assert!(
        list.contains("carl@example.com -> dan@example.com (keep copy)\n"),
        "{list}"
    );

    let out = python(
        r#"
import smtplib, sys
l = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))
for rcpt in ['alias@example.com', 'carl@example.com', 'ping@example.com', 'out@example.com', 'nobody@example.com']:
    try:
        l.sendmail('s@example.org', [rcpt], b'Subject: fw\r\n\r\nhi\r\n')
        print(rcpt, 'delivered')
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = e.recipients[rcpt]
        print(rcpt, code, msg.decode().split(' ')[0])
    except smtplib.SMTPDataError as e:
        print(rcpt, e.smtp_code, e.smtp_error.decode().split(' ')[0])
l.quit()
"#,
        &[&site.ports.lmtp.to_string()],
    );
    assert_eq!(
        out,
        "alias@example.com delivered\n\
         carl@example.com delivered\n\
         ping@example.com 554 5.4.6\n\
         out@example.com 451 4.3.0\n\
         nobody@example.com 550 5.1.1\n"
    );
    assert_eq!(
        count_messages(&site, "bob@example.com"),
        1,
        "alias reached bob"
    );
    assert_eq!(
        count_messages(&site, "carl@example.com"),
        1,
        "carl kept a copy"
    );
    assert_eq!(
        count_messages(&site, "dan@example.com"),
        1,
        "and dan got one"
    );

    site.cli_ok(&["forward", "del", "alias@example.com"], None);
    let gone = site.cli(&["forward", "list", "alias@example.com"], None);
    assert!(!gone.status.success());
    server.stop();
}

#[test]
fn a_forward_to_a_subaddress_files_into_that_folder() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "bob@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    site.cli_ok(
        &[
            "forward",
            "add",
            "list@example.com",
            "bob+lists@example.com",
        ],
        None,
    );
    let server = site.start();
    let out = python(
        r#"
import imaplib, smtplib, sys
imap_port, lmtp_port = int(sys.argv[1]), int(sys.argv[2])
m = imaplib.IMAP4('127.0.0.1', imap_port)
m.login('bob@example.com', 'pw')
assert m.create('Lists')[0] == 'OK'
l = smtplib.LMTP('127.0.0.1', lmtp_port)
l.sendmail('s@example.org', ['list@example.com'], b'Subject: to the list\r\n\r\nhi\r\n')
l.sendmail('s@example.org', ['bob+nosuchfolder@example.com'], b'Subject: direct\r\n\r\nhi\r\n')
l.quit()
for box in ['Lists', 'INBOX']:
    typ, data = m.select(box)
    typ, subj = m.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    subjects = [p[1].decode().strip() for p in subj if isinstance(p, tuple)]
    print(box, data[0].decode(), subjects)
m.logout()
"#,
        &[&site.ports.imap.to_string(), &site.ports.lmtp.to_string()],
    );
    assert_eq!(
        out,
        "Lists 1 ['Subject: to the list']\nINBOX 1 ['Subject: direct']\n"
    );
    server.stop();
}
