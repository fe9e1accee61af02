//! `limits.connections_per_shard`: a shard refuses sessions past its limit whatever
//! address they come from (clients bound to distinct 127.0.0.x source addresses, so
//! the per-IP limit is not what stops them), with each protocol's busy answer.

use tests::{Options, Site, python};

#[test]
fn a_shard_refuses_sessions_past_its_limit_from_any_address() {
    let site = Site::new(Options::default());
    let mut cfg = std::fs::read_to_string(&site.config).expect("config");
    cfg.push_str("\n[limits]\nconnections_per_shard = 3\n");
    std::fs::write(&site.config, cfg).expect("config");
    let server = site.start();
    let script = r#"
import socket, sys
imap, pop3 = int(sys.argv[1]), int(sys.argv[2])
def run(port, busy):
    held, ok, refused = [], 0, 0
    for i in range(16):
        s = socket.socket()
        s.settimeout(20)
        s.bind(('127.0.0.%d' % (i + 2), 0))
        s.connect(('127.0.0.1', port))
        line = s.makefile('rb').readline()
        if line.startswith(busy):
            refused += 1
            s.close()
        else:
            ok += 1
            held.append(s)
    for s in held:
        s.close()
    return ok, refused
ok, refused = run(imap, b'* BYE [UNAVAILABLE]')
print('imap', ok <= 6, ok >= 3, refused == 16 - ok)
ok, refused = run(pop3, b'-ERR [SYS/TEMP]')
print('pop3', ok <= 6, ok >= 3, refused == 16 - ok)
"#;
    let out = python(
        script,
        &[&site.ports.imap.to_string(), &site.ports.pop3.to_string()],
    );
    assert_eq!(
        out,
        "imap True True True\npop3 True True True\n",
        "{}",
        server.log()
    );
    server.stop();
}

#[test]
fn connections_per_shard_out_of_range_is_a_one_line_config_error() {
    let site = Site::new(Options::default());
    let mut cfg = std::fs::read_to_string(&site.config).expect("config");
    cfg.push_str("\n[limits]\nconnections_per_shard = 0\n");
    std::fs::write(&site.config, cfg).expect("config");
    let out = site.cli(&["serve"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`limits.connections_per_shard`: must be at least 1"),
        "{err}"
    );
}

#[test]
fn a_connection_past_its_command_rate_is_slowed_not_cut() {
    let site = Site::new(Options {
        shards: 1,
        ..Options::default()
    });
    site.cli_ok(
        &["account", "add", "pace@example.com", "--password-stdin"],
        Some("pw-pace\n"),
    );
    let mut cfg = std::fs::read_to_string(&site.config).expect("config");
    cfg.push_str("\n[limits]\nimap_commands_per_second = 40\n");
    std::fs::write(&site.config, cfg).expect("config");
    let server = site.start();
    // 120 NOOPs pipelined in one write: every one is answered, in order, and the
    // shard counts the reads it held back.
    let script = r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
f = s.makefile('rwb')
f.readline()
f.write(b'a LOGIN pace@example.com pw-pace\r\n'); f.flush()
while not f.readline().startswith(b'a '): pass
f.write(b''.join(b'n%d NOOP\r\n' % i for i in range(120))); f.flush()
done = []
while len(done) < 120:
    line = f.readline()
    if not line:
        break
    if line.startswith(b'n'):
        done.append(line.split()[0].decode())
print(len(done), done == ['n%d' % i for i in range(120)])
f.write(b'z LOGOUT\r\n'); f.flush()
"#;
    let out = python(script, &[&site.ports.imap.to_string()]);
    assert_eq!(out, "120 True\n", "{}", server.log());
    let stats = site.cli_ok(&["stats"], None);
    let slowed: u64 = stats
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stats: {stats}"));
    assert!(slowed > 0, "no read was held back: {stats}");
    server.stop();
}
