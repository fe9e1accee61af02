//! Postfix end to end (recipe: shared/recipes/postfix.md; scripts/test.sh installs
//! Debian's postfix): a private rootless-layout Postfix in a temp dir, smtpd on a
//! free loopback port, `relay_recipient_maps` and `transport_maps` = msgstore's
//! socketmap. Mail sent with Python's smtplib lands in the store through the owning
//! shard's LMTP port; unknown and disabled recipients are refused at Postfix's RCPT.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tests::{Options, Site, python};

const WAIT: Duration = Duration::from_secs(30);

/// A private Postfix master, stopped (SIGTERM, then SIGKILL) on drop.
struct Postfix {
    master: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Postfix {
    fn start(dir: &Path, socketmap: u16) -> Postfix {
        std::fs::create_dir_all(dir).expect("postfix dir");
        for sub in ["etc", "queue", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("postfix dir");
        }
        // The master opens data/master.lock as user postfix: every parent must be
        // traversable (temp dirs are 0700).
        let mut p = Some(dir);
        while let Some(d) = p {
            if d == Path::new("/") || d == Path::new("/tmp") {
                break;
            }
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                .expect("chmod 0755");
            p = d.parent();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let sm = format!("socketmap:inet:127.0.0.1:{socketmap}");
        let d = dir.display();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             maillog_file = {d}/log/postfix.log\n\
             maillog_file_prefixes = {d}\n\
             myhostname = mx.test\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             local_transport = error:local delivery is disabled\n\
             alias_maps =\n\
             alias_database =\n\
             virtual_alias_domains =\n\
             default_transport = error:outbound delivery is disabled in tests\n\
             relay_transport = error:no transport_maps entry for this relay domain\n\
             relay_domains = example.com\n\
             relay_recipient_maps = {sm}:recipient\n\
             transport_maps = {sm}:transport\n\
             smtpd_relay_restrictions = reject_unauth_destination\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             smtpd_error_sleep_time = 0\n"
        );
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             pickup    unix  n       -       n       60      1       pickup\n\
             cleanup   unix  n       -       n       -       0       cleanup\n\
             qmgr      unix  n       -       n       300     1       qmgr\n\
             rewrite   unix  -       -       n       -       -       trivial-rewrite\n\
             bounce    unix  -       -       n       -       0       bounce\n\
             defer     unix  -       -       n       -       0       bounce\n\
             trace     unix  -       -       n       -       0       bounce\n\
             verify    unix  -       -       n       -       1       verify\n\
             flush     unix  n       -       n       1000?   0       flush\n\
             proxymap  unix  -       -       n       -       -       proxymap\n\
             showq     unix  n       -       n       -       -       showq\n\
             error     unix  -       -       n       -       -       error\n\
             retry     unix  -       -       n       -       -       error\n\
             discard   unix  -       -       n       -       -       discard\n\
             lmtp      unix  -       -       n       -       -       lmtp\n\
             anvil     unix  -       -       n       -       1       anvil\n\
             scache    unix  -       -       n       -       1       scache\n\
             postlog   unix-dgram n  -       n       -       1       postlogd\n"
        );
        let etc = dir.join("etc");
        for (name, text) in [("main.cf", main_cf), ("master.cf", master_cf)] {
            let path = etc.join(name);
            std::fs::write(&path, text).expect("postfix config");
            // Postfix waits for a config file younger than ~2 s to "cool down".
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(60)))
                .expect("back-date the config");
        }
        let check = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&etc)
            .arg("check")
            .output()
            .expect("postfix is needed: install Debian's postfix (scripts/test.sh does)");
        assert!(
            check.status.success(),
            "postfix check failed: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let master = Command::new("/usr/lib/postfix/sbin/master")
            .arg("-c")
            .arg(&etc)
            .args(["-e", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the postfix master");
        let mut postfix = Postfix {
            master: Some(master),
            dir: dir.to_path_buf(),
            port,
        };
        postfix.wait_ready();
        postfix
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/postfix.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self
                .master
                .as_mut()
                .and_then(|m| m.try_wait().ok().flatten())
            {
                panic!("postfix master exited with {status}:\n{}", self.log());
            }
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::BufRead;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut line = String::new();
                let _ = std::io::BufReader::new(s).read_line(&mut line);
                if line.starts_with("220") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "postfix not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Postfix's listeners use SO_REUSEPORT: make sure the port is ours alone.
        let hex = format!(":{:04X}", self.port);
        let tcp = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let listeners = tcp
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[3] == "0A" && f[1].ends_with(&hex)
            })
            .count();
        assert_eq!(listeners, 1, "port {} is shared", self.port);
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Some(mut m) = self.master.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(m.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while m.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// `msgstore route`'s field.
fn route(site: &Site, address: &str, field: &str) -> String {
    let out = site.cli_ok(&["route", address], None);
    out.lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_owned()
}

fn stored_messages(site: &Site, user: &str) -> Vec<Vec<u8>> {
    let dir = route(site, user, "path");
    let mut found = Vec::new();
    for mbox in std::fs::read_dir(Path::new(&dir).join("mail"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(mbox.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) {
                found.push(std::fs::read(f.path()).expect("message file"));
            }
        }
    }
    found
}

#[test]
fn postfix_delivers_through_the_socketmap_to_the_owning_shard() {
    postfix_delivers(false);
}

#[test]
fn postfix_delivers_over_the_shard_unix_sockets() {
    postfix_delivers(true);
}

/// Postfix → msgstore, the transport naming each owner's TCP port or unix socket.
fn postfix_delivers(unix: bool) {
    let site = Site::new(Options::default());
    if unix {
        let mut config = std::fs::read_to_string(&site.config).expect("config");
        config = config.replace("[listen]\n", "[listen]\nlmtp_transport = \"unix\"\n");
        std::fs::write(&site.config, config).expect("config");
    }
    // One user on each shard.
    let mut users: Vec<(String, String)> = Vec::new();
    for n in 0..40 {
        let a = format!("user{n}@example.com");
        let shard = route(&site, &a, "shard");
        if !users.iter().any(|(_, s)| *s == shard) {
            users.push((a, shard));
        }
        if users.len() == 2 {
            break;
        }
    }
    assert_eq!(users.len(), 2, "users on both shards");
    for (u, _) in &users {
        site.cli_ok(&["account", "add", u], None);
    }
    site.cli_ok(
        &["account", "add", "off@example.com", "--flags", "disabled"],
        None,
    );
    let server = site.start();
    let postfix = Postfix::start(&site.dir.path().join("postfix"), site.ports.socketmap);

    let out = python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo('client.test')
for rcpt in sys.argv[2:]:
    s.rset()
    s.mail('sender@example.org')
    code, text = s.rcpt(rcpt)
    if code != 250:
        print(rcpt, code, text.decode().split(' ')[0])
        continue
    code, text = s.data(('From: sender@example.org\r\nTo: %s\r\nSubject: via postfix\r\n\r\nhello %s\r\n.dot line\r\n' % (rcpt, rcpt)).encode())
    print(rcpt, code)
s.quit()
"#,
        &[
            postfix.port.to_string().as_str(),
            users[0].0.as_str(),
            users[1].0.as_str(),
            "nobody@example.com",
            "off@example.com",
        ],
    );
    assert_eq!(
        out,
        format!(
            "{} 250\n{} 250\nnobody@example.com 550 5.1.1\noff@example.com 550 5.1.1\n",
            users[0].0, users[1].0
        ),
        "postfix log:\n{}",
        postfix.log()
    );
    for (user, _) in &users {
        let deadline = Instant::now() + WAIT;
        let message = loop {
            if let Some(m) = stored_messages(&site, user).pop() {
                break m;
            }
            assert!(
                Instant::now() < deadline,
                "nothing for {user}; postfix log:\n{}\nmsgstore log:\n{}",
                postfix.log(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = String::from_utf8_lossy(&message);
        assert!(
            text.starts_with("Return-Path: <sender@example.org>\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: via postfix\r\n"), "{text}");
        assert!(text.contains(&format!("\r\nhello {user}\r\n.dot line\r\n")));
        // Postfix went straight to the owner's own LMTP port or socket.
        let relay = if unix {
            let path = route(&site, user, "lmtp_unix");
            let path = std::path::absolute(&path).expect("absolute");
            format!("[{}], ", path.display())
        } else {
            let own = route(&site, user, "lmtp");
            let port = own.rsplit(':').next().expect("port").to_owned();
            format!("relay=127.0.0.1[127.0.0.1]:{port}")
        };
        let deadline = Instant::now() + WAIT;
        let line = loop {
            let log = postfix.log();
            if let Some(l) = log
                .lines()
                .find(|l| l.contains(&format!("to=<{user}>")) && l.contains("status=sent"))
            {
                break l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no delivery line for {user}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(line.contains(&relay), "{relay} not in {line}");
    }
    drop(postfix);
    if unix {
        // Shard 0's socket takes the other shard's user too (over the mesh).
        let sock = route(&site, &users[0].0, "lmtp_unix").replace(
            &format!(
                "shard-{}.sock",
                users[0].1.split(' ').next().expect("shard")
            ),
            "shard-0.sock",
        );
        let out = python(
            r#"
import smtplib, sys
l = smtplib.LMTP(sys.argv[1])
for rcpt in sys.argv[2:]:
    l.sendmail('s@example.org', [rcpt], b'Subject: unix\r\n\r\nhi\r\n')
    print(rcpt, 'ok')
l.quit()
"#,
            &[&sock, &users[0].0, &users[1].0],
        );
        assert_eq!(out, format!("{} ok\n{} ok\n", users[0].0, users[1].0));
        for (user, _) in &users {
            assert_eq!(stored_messages(&site, user).len(), 2, "{user}");
        }
    }
    server.stop();
}
