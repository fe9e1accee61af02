//! End-to-end: the server starts on its ports, shards are pinned, accounts work
//! offline and online, connections move to the owning shard after LOGIN.

use std::collections::BTreeMap;
use std::process::Command;

use tests::{Client, Options, Site, python};

fn route_shard(site: &Site, address: &str) -> usize {
    let out = site.cli_ok(&["route", address], None);
    let line = out
        .lines()
        .find(|l| l.starts_with("shard"))
        .expect("shard line");
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("shard number")
}

/// `count` addresses owned by each shard, with their shards.
fn users_per_shard(site: &Site, shards: usize, count: usize) -> BTreeMap<String, usize> {
    let mut per = vec![0; shards];
    let mut out = BTreeMap::new();
    for i in 0..500 {
        let addr = format!("user{i}@example.com");
        let s = route_shard(site, &addr);
        if per[s] < count {
            per[s] += 1;
            out.insert(addr, s);
        }
        if per.iter().all(|n| *n == count) {
            return out;
        }
    }
    panic!("could not find {count} users for each of {shards} shards");
}

fn add_user(site: &Site, addr: &str, password: &str) {
    site.cli_ok(
        &["account", "add", addr, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
}

#[test]
fn serve_answers_on_every_port_and_stops_on_sigterm() {
    let site = Site::new(Options::default());
    let server = site.start();
    let p = site.ports.clone();
    let mut imap = Client::connect(site.addr(p.imap));
    assert!(imap.line().starts_with("* OK"), "IMAP greeting");
    for (port, want) in [
        (p.pop3, "+OK"),
        (p.lmtp, "220 "),
        (p.lmtp + 1, "220 "),
        (p.lmtp + 2, "220 "),
        (p.poppassd, "200 "),
    ] {
        let mut c = Client::connect(site.addr(port));
        let l = c.line();
        assert!(l.starts_with(want), "port {port}: {l:?}");
    }
    let admin = site.data.join("admin.sock");
    assert!(admin.exists(), "admin socket");
    let status = server.stop();
    assert!(status.success(), "clean exit: {status}");
    assert!(!admin.exists(), "admin socket removed on stop");
    // The IMAP session that was open got a goodbye.
    let rest = imap.rest();
    assert!(rest.contains("* BYE"), "{rest:?}");
}

#[test]
fn shards_are_pinned_to_distinct_cpus() {
    let site = Site::new(Options::default());
    let server = site.start();
    // Each shard is a thread named shard-N-… pinned to one cpu; its helper threads
    // (blocking work) share the name but float.
    let mut pinned: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("proc");
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let comm = comm.trim().to_owned();
        if !comm.starts_with("shard-") {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).expect("status");
        let allowed = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("Cpus_allowed_list")
            .to_owned();
        let entry = pinned.entry(comm).or_default();
        if !allowed.contains(['-', ',']) {
            entry.push(allowed);
        }
    }
    assert_eq!(pinned.len(), 2, "two shards: {pinned:?}");
    for cpus in pinned.values() {
        assert_eq!(cpus.len(), 1, "one pinned thread per shard: {pinned:?}");
    }
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if ncpu >= 2 {
        let distinct: std::collections::BTreeSet<_> = pinned.values().map(|v| &v[0]).collect();
        assert_eq!(distinct.len(), 2, "distinct cpus: {pinned:?}");
    }
    server.stop();
}

#[test]
fn five_hundred_simultaneous_connections_are_greeted() {
    let site = Site::new(Options::default());
    let server = site.start();
    let mut clients: Vec<Client> = (0..500)
        .map(|_| Client::connect(site.addr(site.ports.imap)))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let l = c.line();
        assert!(l.starts_with("* OK"), "connection {i}: {l:?}");
    }
    let stats = site.cli_ok(&["stats"], None);
    let total: u64 = stats
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(7)?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 500, "sessions counted by the shards:\n{stats}");
    drop(clients);
    server.stop();
}

#[test]
fn route_prints_md5_bucket_and_shard() {
    let site = Site::new(Options::default());
    let addr = "Alice+Lists@Example.COM";
    let out = site.cli_ok(&["route", addr], None);
    let md5 = Command::new("sh")
        .arg("-c")
        .arg("printf %s alice@example.com | md5sum")
        .output()
        .expect("md5sum");
    let hex = String::from_utf8_lossy(&md5.stdout)[..32].to_owned();
    let bucket = u16::from_str_radix(&hex[..4], 16).expect("hex");
    assert!(out.contains(&format!("md5       {hex}")), "{out}");
    assert!(out.contains(&format!("bucket    {bucket} ")), "{out}");
    assert!(
        out.contains(&format!("shard     {} of 2", bucket % 2)),
        "{out}"
    );
    assert!(out.contains("address   alice@example.com"), "{out}");
    assert!(out.contains("folder    Lists"), "{out}");
    let lmtp = site.ports.lmtp + 1 + bucket % 2;
    assert!(
        out.contains(&format!("lmtp      127.0.0.1:{lmtp}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "users/{}/{}/alice@example.com",
            &hex[..2],
            &hex[2..4]
        )),
        "{out}"
    );
}

#[test]
fn accounts_offline_and_online() {
    let site = Site::new(Options::default());
    // Offline: the first verb creates the store.
    add_user(&site, "offline@example.com", "pw-one");
    let md5 = Command::new("sh")
        .arg("-c")
        .arg("printf %s offline@example.com | md5sum")
        .output()
        .expect("md5sum");
    let hex = String::from_utf8_lossy(&md5.stdout)[..32].to_owned();
    let profile = site
        .data
        .join("users")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join("offline@example.com")
        .join("profile");
    assert!(profile.exists(), "profile at {}", profile.display());
    let text = std::fs::read_to_string(&profile).expect("profile");
    assert!(
        !text.contains("pw-one"),
        "no plaintext password in the profile"
    );

    let dup = site.cli(&["account", "add", "offline@example.com"], None);
    assert!(!dup.status.success());
    let err = String::from_utf8_lossy(&dup.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("exists"), "{err}");

    let server = site.start();
    // A second server on the same store is refused.
    let second = site.cli(&["serve"], None);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err:?}");

    // Online: through the admin socket, on the owning shard.
    add_user(&site, "online@example.com", "pw-two");
    site.cli_ok(
        &[
            "account",
            "set",
            "online@example.com",
            "--quota",
            "1000000",
            "--flags",
            "imap,manage",
            "--name",
            "On Line",
        ],
        None,
    );
    let list = site.cli_ok(&["account", "list"], None);
    assert_eq!(list, "offline@example.com\nonline@example.com\n");
    let show = site.cli_ok(&["account", "show", "online@example.com"], None);
    assert!(show.contains("quota     1000000 bytes"), "{show}");
    assert!(show.contains("flags     imap,manage"), "{show}");
    assert!(show.contains("name      On Line"), "{show}");

    let missing = site.cli(&["account", "show", "nobody@example.com"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such account"));
    let bad = site.cli(&["account", "add", "not-an-address"], None);
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim().lines().count(),
        1
    );

    // Passwords set online take effect for login at once.
    site.cli_ok(
        &[
            "account",
            "passwd",
            "online@example.com",
            "--password-stdin",
        ],
        Some("pw-three\n"),
    );
    let out = python(
        "import imaplib,sys\n\
         m=imaplib.IMAP4('127.0.0.1',int(sys.argv[1]))\n\
         try:\n  m.login('online@example.com','pw-two'); print('old accepted')\n\
         except imaplib.IMAP4.error: print('old refused')\n\
         m=imaplib.IMAP4('127.0.0.1',int(sys.argv[1]))\n\
         print(m.login('online@example.com','pw-three')[0])\n\
         m.logout()\n",
        &[&site.ports.imap.to_string()],
    );
    assert_eq!(out, "old refused\nOK\n");

    site.cli_ok(&["account", "del", "offline@example.com"], None);
    assert!(!profile.exists());
    assert_eq!(
        site.cli_ok(&["account", "list"], None),
        "online@example.com\n"
    );
    server.stop();

    // And offline again, after the server stopped.
    assert_eq!(
        site.cli_ok(&["account", "list"], None),
        "online@example.com\n"
    );
}

#[test]
fn bad_config_is_one_line_naming_the_key() {
    let site = Site::new(Options::default());
    std::fs::write(&site.config, "[listen]\nimapp = \"127.0.0.1:1\"\n").expect("write");
    let out = site.cli(&["serve"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err:?}");
    assert!(err.contains("listen.imapp"), "{err}");
    // -c after the verb means the same.
    std::fs::write(&site.config, "").expect("write");
    let out = Command::new(tests::binary())
        .args(["route", "a@b.example", "-c"])
        .arg(&site.config)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every connection lands on shard 0; users of shard 1 must move there after LOGIN,
/// with the commands pipelined behind LOGIN answered after the move.
#[test]
fn login_hands_the_connection_to_the_owning_shard() {
    let site = Site::new(Options {
        shards: 2,
        engine_extra: "accept_shards = [0]".into(),
    });
    let users = users_per_shard(&site, 2, 3);
    for u in users.keys() {
        add_user(&site, u, "secret");
    }
    let server = site.start();
    let mut open = Vec::new();
    for user in users.keys() {
        let mut c = Client::connect(site.addr(site.ports.imap));
        assert!(c.line().starts_with("* OK"));
        // LOGIN and what follows it in one packet.
        c.send(format!("a LOGIN {user} secret\r\nb NOOP\r\nc CAPABILITY\r\n").as_bytes());
        let a = c.until_tagged("a");
        assert!(
            a.last().is_some_and(|l| l.starts_with("a OK")),
            "{user}: {a:?}"
        );
        let b = c.until_tagged("b");
        assert!(
            b.last().is_some_and(|l| l.starts_with("b OK")),
            "{user}: {b:?}"
        );
        let cap = c.until_tagged("c");
        assert!(
            cap.iter().any(|l| l.starts_with("* CAPABILITY")),
            "{user}: {cap:?}"
        );
        open.push((user.clone(), c));
    }
    // Each session runs on its owner.
    let who = site.cli_ok(&["who"], None);
    for (user, shard) in &users {
        let line = who
            .lines()
            .find(|l| l.contains(user.as_str()))
            .unwrap_or_else(|| panic!("{user} not in who:\n{who}"));
        let on: usize = line
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("shard");
        assert_eq!(
            on, *shard,
            "{user} runs on shard {on}, owner is {shard}:\n{who}"
        );
    }
    let stats = site.cli_ok(&["stats"], None);
    let rows: Vec<Vec<u64>> = stats
        .lines()
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0][2],
        3 + 3,
        "shard 0 accepted every connection:\n{stats}"
    );
    assert_eq!(rows[1][2], 0, "shard 1 accepted none:\n{stats}");
    assert_eq!(rows[0][3], 3, "three moved out of shard 0:\n{stats}");
    assert_eq!(rows[1][4], 3, "three moved into shard 1:\n{stats}");

    // A wrong password and an unknown user get the same answer.
    let mut answers = Vec::new();
    for user in [
        users.keys().next().expect("user").as_str(),
        "ghost@example.com",
    ] {
        let mut c = Client::connect(site.addr(site.ports.imap));
        c.line();
        c.send(format!("x LOGIN {user} wrong\r\n").as_bytes());
        answers.push(c.until_tagged("x").pop().expect("answer"));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(
        answers[0].starts_with("x NO [AUTHENTICATIONFAILED]"),
        "{answers:?}"
    );

    for (_, mut c) in open {
        c.send(b"z LOGOUT\r\n");
        let rest = c.rest();
        assert!(rest.contains("* BYE") && rest.contains("z OK"), "{rest:?}");
    }
    server.stop();
}

/// IMAPS and STARTTLS with the self-signed certificate made on first start; the TLS
/// session moves to the owning shard with the connection, pipelined commands too.
#[test]
fn tls_sessions_move_to_the_owning_shard() {
    let site = Site::new(Options {
        shards: 2,
        engine_extra: "accept_shards = [0]".into(),
    });
    let users = users_per_shard(&site, 2, 1);
    for u in users.keys() {
        add_user(&site, u, "secret");
    }
    let server = site.start();
    let cert = site.data.join("tls").join("cert.pem");
    assert!(cert.exists(), "self-signed certificate made on first start");
    let key = site.data.join("tls").join("key.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "key readable by its owner only");
    let script = r#"
import imaplib, ssl, sys
imaps, imap, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
users = sys.argv[4:]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
for u in users:
    m = imaplib.IMAP4_SSL('127.0.0.1', imaps, ssl_context=ctx)
    print('imaps', m.sock.version(), m.login(u, 'secret')[0], m.noop()[0])
    m.logout()
    # LOGIN and two commands in one TLS record, answered after the move.
    m = imaplib.IMAP4_SSL('127.0.0.1', imaps, ssl_context=ctx)
    m.send(('p1 LOGIN %s secret\r\np2 NOOP\r\np3 LOGOUT\r\n' % u).encode())
    got = []
    while True:
        line = m.readline()
        if not line:
            break
        got.append(line.split(b' ')[0:2])
    print('pipelined', b' '.join(b'/'.join(x) for x in got if x[0].startswith(b'p')).decode())
    m = imaplib.IMAP4('127.0.0.1', imap)
    caps = m.capabilities
    m.starttls(ssl_context=ctx)
    print('starttls', 'STARTTLS' in caps, m.sock.version(), m.login(u, 'secret')[0])
    m.logout()
"#;
    let mut args = vec![
        site.ports.imaps.to_string(),
        site.ports.imap.to_string(),
        cert.display().to_string(),
    ];
    args.extend(users.keys().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python(script, &args);
    let want = "imaps TLSv1.3 OK OK\npipelined p1/OK p2/OK p3/OK\nstarttls True TLSv1.3 OK\n";
    assert_eq!(out, want.repeat(2));
    let stats = site.cli_ok(&["stats"], None);
    let rows: Vec<Vec<u64>> = stats
        .lines()
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[1][4], 3,
        "three TLS sessions moved into shard 1:\n{stats}"
    );
    server.stop();
}
