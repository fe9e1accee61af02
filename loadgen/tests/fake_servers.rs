//! Runs the real `loadgen` binary for about two seconds against tiny fake servers written here
//! (std threads on 127.0.0.1:0) and checks what a user sees: the JSON report and the exit status.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Every fake connection gives up after this, so no test thread outlives the test for long.
const CONN_LIFETIME: Duration = Duration::from_secs(20);

fn temp_json(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loadgen-test-{}-{name}.json", std::process::id()))
}

/// Accepts connections until the test process ends; each is served on its own thread.
fn serve(handler: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(CONN_LIFETIME));
            thread::spawn(move || handler(stream));
        }
    });
    port
}

fn run_loadgen(args: &[&str]) -> (i32, Duration, String) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--workers", "2"])
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        t0.elapsed(),
        format!("{stdout}\n{stderr}"),
    )
}

fn read_json(path: &PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("json written");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("valid json")
}

const BODY: &str = "From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n.dot line\r\n";

/// A minimal IMAP server: enough of LOGIN/SELECT/FETCH/STORE/SEARCH/APPEND/EXPUNGE/NOOP.
fn fake_imap(stream: TcpStream) {
    let mut out = stream.try_clone().expect("clone");
    let mut input = BufReader::new(stream);
    let mut exists: u32 = 3;
    let _ = out.write_all(b"* OK fake IMAP ready\r\n");
    let started = Instant::now();
    let mut line = String::new();
    while started.elapsed() < CONN_LIFETIME {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.trim_end().splitn(3, ' ');
        let tag = words.next().unwrap_or("*").to_string();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let rest = words.next().unwrap_or("").to_string();
        let reply = match verb.as_str() {
            "SELECT" => format!("* {exists} EXISTS\r\n{tag} OK [READ-WRITE] done\r\n"),
            "FETCH" if rest.contains("BODY.PEEK[]") => {
                let n = rest.split(' ').next().unwrap_or("1");
                format!(
                    "* {n} FETCH (RFC822.SIZE {} BODY[] {{{}}}\r\n{BODY})\r\n{tag} OK done\r\n",
                    BODY.len(),
                    BODY.len()
                )
            }
            "FETCH" => format!(
                "* 1 FETCH (FLAGS (\\Seen) ENVELOPE (NIL \"hi\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n{tag} OK done\r\n"
            ),
            "UID" => format!("* SEARCH 1 2\r\n{tag} OK done\r\n"),
            "EXPUNGE" => {
                exists -= 1;
                format!("* 1 EXPUNGE\r\n{tag} OK done\r\n")
            }
            "APPEND" => {
                let n: usize = rest
                    .rsplit('{')
                    .next()
                    .and_then(|s| s.trim_end_matches('}').parse().ok())
                    .unwrap_or(0);
                let _ = out.write_all(b"+ go ahead\r\n");
                let mut literal = vec![0; n + 2];
                if input.read_exact(&mut literal).is_err() {
                    return;
                }
                exists += 1;
                format!("* {exists} EXISTS\r\n{tag} OK [APPENDUID 1 1] done\r\n")
            }
            "IDLE" => {
                let _ = out.write_all(b"+ idling\r\n");
                line.clear();
                if input.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                format!("{tag} OK idle done\r\n")
            }
            "LOGOUT" => {
                let _ = out.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes());
                return;
            }
            _ => format!("{tag} OK done\r\n"),
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A minimal LMTP server answering one reply per recipient after DATA.
/// (port, recipient) pairs as the shard listeners received them.
type Seen = Arc<Mutex<Vec<(u16, String)>>>;

fn lmtp_session(stream: TcpStream, seen: Option<(u16, Seen)>) {
    let mut out = stream.try_clone().expect("clone");
    let mut input = BufReader::new(stream);
    let _ = out.write_all(b"220 fake LMTP\r\n");
    let mut rcpts = 0;
    let mut line = String::new();
    let started = Instant::now();
    while started.elapsed() < CONN_LIFETIME {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("LHLO") {
            "250-fake\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".to_string()
        } else if upper.starts_with("MAIL") {
            rcpts = 0;
            "250 2.1.0 ok\r\n".to_string()
        } else if upper.starts_with("RCPT") {
            rcpts += 1;
            if let Some((port, seen)) = &seen {
                let addr = line
                    .trim_end()
                    .trim_start_matches("RCPT TO:<")
                    .trim_end_matches('>');
                seen.lock().expect("lock").push((*port, addr.to_string()));
            }
            "250 2.1.5 ok\r\n".to_string()
        } else if upper.starts_with("DATA") {
            let _ = out.write_all(b"354 go\r\n");
            loop {
                line.clear();
                if input.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
            }
            "250 2.0.0 saved\r\n".repeat(rcpts)
        } else if upper.starts_with("QUIT") {
            let _ = out.write_all(b"221 bye\r\n");
            return;
        } else {
            "250 ok\r\n".to_string()
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn fake_lmtp(stream: TcpStream) {
    lmtp_session(stream, None);
}

#[test]
fn imap_mix_against_fake_server() {
    let port = serve(fake_imap).to_string();
    let json = temp_json("imap");
    let (code, took, out) = run_loadgen(&[
        "imap",
        "--port",
        &port,
        "--users",
        "5",
        "--clients",
        "4",
        "--duration",
        "2",
        "--sizes",
        "small",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let v = read_json(&json);
    assert!(
        v["ops_per_sec"].as_f64().expect("ops_per_sec") > 10.0,
        "{v}"
    );
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    for name in ["fetch_body", "fetch_envelope", "append", "noop", "login"] {
        let c = &v["commands"][name];
        assert!(c["count"].as_u64().expect("count") > 0, "{name}: {v}");
        for key in ["p50_us", "p99_us", "p999_us", "max_us"] {
            assert!(c[key].as_f64().is_some(), "{name}.{key}: {v}");
        }
    }
    assert!(out.contains("fetch_body"), "table printed: {out}");
}

#[test]
fn idle_memory_ramp_measures_each_step_and_reports_slopes() {
    let port = serve(fake_imap).to_string();
    // The fake server is this test process: its memory is what the ramp reads.
    let pid = std::process::id().to_string();
    let json = temp_json("idle");
    let (code, took, out) = run_loadgen(&[
        "idle",
        "--port",
        &port,
        "--users",
        "3",
        "--clients",
        "6",
        "--steps",
        "3",
        "--warmup",
        "4",
        "--server-pid",
        &pid,
        "--duration",
        "60",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    // The ramp ends the run, long before --duration: 4 readings of 2.6 s.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let v = read_json(&json);
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    // Warm-up (4) and the three steps log in: at least 4 + 6 logins.
    assert!(v["commands"]["login"]["count"].as_u64() >= Some(10), "{v}");
    let baseline = &v["memory_baseline"];
    assert_eq!(baseline["held"].as_u64(), Some(0), "{v}");
    let held: Vec<u64> = v["memory_points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            assert!(p["rss_bytes"].as_u64() > Some(0), "{p}");
            assert!(p["pss_bytes"].as_u64() > Some(0), "{p}");
            p["held"].as_u64().expect("held")
        })
        .collect();
    assert_eq!(held, [2, 4, 6], "{v}");
    assert!(v["rss_per_conn_bytes"].as_f64().is_some(), "{v}");
    assert!(v["pss_per_conn_bytes"].as_f64().is_some(), "{v}");
    assert!(v.get("memory_incomplete").is_none(), "{v}");
    assert!(out.contains("server PSS per idle connection"), "{out}");
}

#[test]
fn idle_memory_ramp_that_cannot_finish_fails() {
    // Nothing listens: no connection is ever held, so the first step never completes.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port().to_string()
    };
    let pid = std::process::id().to_string();
    let json = temp_json("idle-fail");
    let (code, _, out) = run_loadgen(&[
        "idle",
        "--port",
        &port,
        "--clients",
        "2",
        "--steps",
        "2",
        "--warmup",
        "0",
        "--server-pid",
        &pid,
        "--duration",
        "2",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{out}");
    let v = read_json(&json);
    assert!(v["memory_incomplete"].as_str().is_some(), "{v}");
    assert!(v.get("rss_per_conn_bytes").is_none(), "{v}");
}

#[test]
fn imap_open_loop_rate_is_held() {
    let port = serve(fake_imap).to_string();
    let json = temp_json("imap-rate");
    let (code, _, out) = run_loadgen(&[
        "imap",
        "--port",
        &port,
        "--clients",
        "4",
        "--duration",
        "2",
        "--rate",
        "200",
        "--sizes",
        "small",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    let v = read_json(&json);
    let ops = v["ops_per_sec"].as_f64().expect("ops_per_sec");
    // 200/s scheduled, plus the four logins; the fake answers instantly.
    assert!((180.0..230.0).contains(&ops), "{ops}: {v}");
    assert_eq!(v["open_loop"].as_bool(), Some(true));
}

#[test]
fn lmtp_deliveries_against_fake_server() {
    let port = serve(fake_lmtp).to_string();
    let json = temp_json("lmtp");
    let (code, _, out) = run_loadgen(&[
        "lmtp",
        "--port",
        &port,
        "--clients",
        "2",
        "--duration",
        "2",
        "--sizes",
        "small",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    let v = read_json(&json);
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    assert!(
        v["commands"]["deliver"]["count"].as_u64().expect("count") > 10,
        "{v}"
    );
    assert!(
        v["counters"]["recipients_delivered"]
            .as_u64()
            .expect("rcpts")
            > 10,
        "{v}"
    );
}

/// Accepts connections until the test process ends, serving each with `handler` on its own
/// thread.
fn serve_with(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(CONN_LIFETIME));
            let handler = handler.clone();
            thread::spawn(move || handler(stream));
        }
    });
    port
}

/// A strict LMTP server for the client's command order. It refuses RCPT for `user2` (so
/// some transactions have no recipient: DATA gets 503 and the client must RSET) and
/// records in `violations` anything an RFC 2033/2920 client must not do. With
/// `pipelining` it advertises PIPELINING and answers nothing of a transaction before its
/// DATA arrived (a client that waits for each reply stalls); without, it checks that no
/// command arrives before the previous one was answered.
fn strict_lmtp(stream: TcpStream, pipelining: bool, violations: &Mutex<Vec<String>>) {
    let violation = |what: String| violations.lock().expect("lock").push(what);
    let mut out = stream.try_clone().expect("clone");
    let mut input = BufReader::new(stream);
    let _ = out.write_all(b"220 strict LMTP\r\n");
    // Replies of the current pipelined group, sent when DATA arrives.
    let mut held = String::new();
    let (mut in_mail, mut accepted) = (false, 0);
    let mut line = String::new();
    let started = Instant::now();
    while started.elapsed() < CONN_LIFETIME {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if !pipelining && !input.buffer().is_empty() {
            violation(format!("pipelined without PIPELINING: {line:?}"));
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("LHLO") {
            if pipelining {
                "250-strict\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
            } else {
                "250-strict\r\n250 ENHANCEDSTATUSCODES\r\n"
            }
        } else if upper.starts_with("MAIL FROM:") {
            if in_mail {
                violation("nested MAIL".into());
            }
            (in_mail, accepted) = (true, 0);
            "250 2.1.0 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if !in_mail {
                violation("RCPT without MAIL".into());
                "503 5.5.1 send MAIL first\r\n"
            } else if upper.contains("USER2@") {
                "550 5.1.1 user unknown\r\n"
            } else {
                accepted += 1;
                "250 2.1.5 ok\r\n"
            }
        } else if upper == "DATA\r\n" {
            if accepted == 0 {
                // RFC 2033 §4.2: the transaction stays open; the client must RSET.
                "503 5.5.1 no valid recipients\r\n"
            } else {
                held.push_str("354 go\r\n");
                let _ = out.write_all(std::mem::take(&mut held).as_bytes());
                if !input.buffer().is_empty() {
                    violation("data before 354".into());
                }
                loop {
                    line.clear();
                    if input.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                in_mail = false;
                let replies = "250 2.0.0 saved\r\n".repeat(accepted);
                if out.write_all(replies.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        } else if upper.starts_with("RSET") {
            in_mail = false;
            "250 2.0.0 ok\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = out.write_all(b"221 bye\r\n");
            return;
        } else {
            violation(format!("unexpected line {line:?}"));
            "500 5.5.2 what?\r\n"
        };
        held.push_str(reply);
        // A pipelined group is answered whole once its DATA is in; everything else at once.
        let answer_now = !(pipelining && in_mail) || upper == "DATA\r\n";
        if answer_now && out.write_all(std::mem::take(&mut held).as_bytes()).is_err() {
            return;
        }
    }
}

/// Runs `loadgen lmtp` for two seconds against [`strict_lmtp`]; returns the JSON report.
fn lmtp_against_strict_server(pipelining: bool) -> serde_json::Value {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = violations.clone();
    let port = serve_with(move |s| strict_lmtp(s, pipelining, &seen)).to_string();
    let json = temp_json(&format!("strict-{pipelining}"));
    let (code, _, out) = run_loadgen(&[
        "lmtp",
        "--port",
        &port,
        "--users",
        "4",
        "--clients",
        "2",
        "--duration",
        "2",
        "--sizes",
        "small",
        // A quarter or more of the recipients are refused, by design.
        "--max-error-ratio",
        "1",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    let v = read_json(&json);
    assert_eq!(
        *violations.lock().expect("lock"),
        Vec::<String>::new(),
        "{v}"
    );
    v
}

/// The refusals the strict server makes, and nothing else (no protocol error, no timeout).
fn assert_only_refusals(v: &serde_json::Value) {
    let reasons = v["error_reasons"].as_object().expect("error_reasons");
    assert!(!reasons.is_empty(), "user2 is refused: {v}");
    for reason in reasons.keys() {
        assert!(
            reason.contains("550 5.1.1 user unknown") || reason.contains("no recipient accepted"),
            "unexpected error {reason}: {v}"
        );
    }
    assert!(
        reasons.keys().any(|r| r.contains("no recipient accepted")),
        "some transaction had user2 alone: {v}"
    );
    assert!(
        v["commands"]["deliver"]["count"].as_u64().expect("count") > 10,
        "{v}"
    );
    assert!(
        v["counters"]["recipients_delivered"]
            .as_u64()
            .expect("rcpts")
            > 10,
        "{v}"
    );
}

#[test]
fn lmtp_pipelines_when_the_server_offers_it() {
    // The server answers nothing before DATA: a client waiting for each reply stalls.
    let v = lmtp_against_strict_server(true);
    assert_only_refusals(&v);
}

#[test]
fn lmtp_sends_one_command_at_a_time_without_pipelining() {
    let v = lmtp_against_strict_server(false);
    assert_only_refusals(&v);
}

/// Binds three consecutive ports P, P+1, P+2 (P is the shared port, unused here).
fn consecutive_listeners() -> (u16, Vec<TcpListener>) {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = first.local_addr().expect("addr").port();
        if base > 65_000 {
            continue;
        }
        let rest: Vec<_> = (1..=2)
            .filter_map(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if rest.len() == 2 {
            return (base, rest);
        }
    }
    panic!("no three consecutive free ports");
}

#[test]
fn shard_aware_lmtp_delivers_to_the_owner() {
    let (base, listeners) = consecutive_listeners();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for listener in listeners {
        let port = listener.local_addr().expect("addr").port();
        let seen = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                thread::spawn(move || lmtp_session(stream, Some((port, seen))));
            }
        });
    }
    let json = temp_json("shard");
    let port = base.to_string();
    let (code, _, out) = run_loadgen(&[
        "lmtp",
        "--port",
        &port,
        "--shard-aware",
        "--shards",
        "2",
        "--users",
        "20",
        "--clients",
        "2",
        "--duration",
        "2",
        "--sizes",
        "small",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}");
    let _ = read_json(&json);
    let seen = seen.lock().expect("lock");
    assert!(seen.len() > 10, "{} deliveries", seen.len());
    let ports: std::collections::BTreeSet<u16> = seen.iter().map(|(p, _)| *p).collect();
    assert_eq!(ports.len(), 2, "both shards used");
    for (port, rcpt) in seen.iter() {
        let shard = loadgen::shard::shard_of(rcpt, 2);
        assert_eq!(*port, base + 1 + shard, "{rcpt} went to the wrong shard");
    }
}

/// Greets, then never answers anything.
fn stalling_imap(mut stream: TcpStream) {
    let _ = stream.write_all(b"* OK fake IMAP ready\r\n");
    let mut sink = [0u8; 1024];
    let started = Instant::now();
    while started.elapsed() < CONN_LIFETIME {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Closes straight away, half the time after a line of garbage.
fn closing_imap(mut stream: TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n");
}

#[test]
fn stalling_server_counts_timeouts_and_exits_promptly() {
    let port = serve(stalling_imap).to_string();
    let json = temp_json("stall");
    let (code, took, out) = run_loadgen(&[
        "imap",
        "--port",
        &port,
        "--clients",
        "3",
        "--duration",
        "2",
        "--timeout",
        "0.5",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{out}");
    // duration + grace (5 s) is the ceiling; with a 0.5 s timeout it ends well before.
    assert!(took < Duration::from_secs(7), "took {took:?}");
    let v = read_json(&json);
    assert!(v["errors"].as_u64().expect("errors") >= 3, "{v}");
    let reasons = v["error_reasons"].to_string();
    assert!(reasons.contains("timeout"), "{reasons}");
}

#[test]
fn garbage_and_closing_server_is_an_error_not_a_hang() {
    let port = serve(closing_imap).to_string();
    let json = temp_json("garbage");
    let (code, took, out) = run_loadgen(&[
        "imap",
        "--port",
        &port,
        "--clients",
        "2",
        "--duration",
        "2",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(took < Duration::from_secs(7), "took {took:?}");
    let v = read_json(&json);
    assert!(v["errors"].as_u64().expect("errors") > 2, "{v}");
    let reasons = v["error_reasons"].to_string();
    assert!(
        reasons.contains("garbage") || reasons.contains("greeting"),
        "{reasons}"
    );
}

#[test]
fn refused_connections_back_off_and_fail() {
    // Bind and drop to get a port that is very likely closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
        .to_string();
    let json = temp_json("refused");
    let (code, took, out) = run_loadgen(&[
        "pop3",
        "--port",
        &port,
        "--clients",
        "2",
        "--duration",
        "1",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let v = read_json(&json);
    let errors = v["errors"].as_u64().expect("errors");
    // Backoff from 20 ms doubling: a handful of attempts per client in one second, not thousands.
    assert!((2..100).contains(&errors), "{errors}: {v}");
}

#[test]
fn refuses_non_loopback_targets() {
    let (code, _, out) = run_loadgen(&[
        "imap",
        "--host",
        "192.0.2.1",
        "--port",
        "143",
        "--duration",
        "1",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("loopback"), "{out}");
}
