//! The end-to-end harness: starts the real `msgstore` binary on free loopback ports
//! with a temp data directory, waits for `msgstore ready`, and stops it.
//!
//! The binary is the one `cargo build` put beside the test executable
//! (`target/<profile>/msgstore`); the README's test command builds it first.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to log `msgstore ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server may take before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout for test clients: a hung server fails the test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Path of the `msgstore` binary built for this profile.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/msgstore
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("msgstore");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (the README's test command does)",
        bin.display()
    );
    bin
}

/// The ports a test server listens on.
#[derive(Clone, Debug)]
pub struct Ports {
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    /// Shared LMTP port; shard i listens on `lmtp + 1 + i`.
    pub lmtp: u16,
    pub poppassd: u16,
    pub managesieve: u16,
    pub http: u16,
    pub socketmap: u16,
}

impl Ports {
    /// Finds a run of free loopback ports: 8 services plus the LMTP port and one per
    /// shard above it, all consecutive so the LMTP shard ports fit. The run lies
    /// below the kernel's ephemeral range, so client sockets of other tests cannot
    /// take a port between the check and the server's bind, and each call in this
    /// process starts from a different place so parallel tests do not collide.
    pub fn free(shards: usize) -> Ports {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let need = 9 + shards;
        let low = 10_000u32;
        let high = ephemeral_low().saturating_sub(need as u32).max(low + 1_000);
        let span = high - low;
        for _ in 0..200 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let seed = std::process::id().wrapping_mul(7919).wrapping_add(nanos());
            let base = low + (seed.wrapping_add(n.wrapping_mul(97)) % span);
            let base = base as u16;
            let held: Vec<TcpListener> = (0..need as u16)
                .filter_map(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
                .collect();
            if held.len() == need {
                return Ports {
                    imap: base,
                    imaps: base + 1,
                    pop3: base + 2,
                    pop3s: base + 3,
                    poppassd: base + 4,
                    managesieve: base + 5,
                    http: base + 6,
                    socketmap: base + 7,
                    lmtp: base + 8,
                };
            }
        }
        panic!("no run of {need} free loopback ports found");
    }
}

/// The first port the kernel hands out to outgoing connections.
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Options for a test server.
#[derive(Clone, Debug)]
pub struct Options {
    pub shards: usize,
    /// Extra TOML appended to `[engine]`.
    pub engine_extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            shards: 2,
            engine_extra: String::new(),
        }
    }
}

/// A store directory with its config file; servers and CLI runs use it.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    pub ports: Ports,
    pub opts: Options,
}

impl Site {
    pub fn new(opts: Options) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("msgstore-test")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let ports = Ports::free(opts.shards);
        let config = dir.path().join("msgstore.toml");
        let toml = format!(
            "[store]\nroots = [\"{data}\"]\n\n[engine]\nshards = {shards}\n{extra}\n\n[listen]\n\
             imap = \"127.0.0.1:{}\"\nimaps = \"127.0.0.1:{}\"\npop3 = \"127.0.0.1:{}\"\n\
             pop3s = \"127.0.0.1:{}\"\nlmtp = \"127.0.0.1:{}\"\npoppassd = \"127.0.0.1:{}\"\n\
             managesieve = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\nsocketmap = \"127.0.0.1:{}\"\n",
            ports.imap,
            ports.imaps,
            ports.pop3,
            ports.pop3s,
            ports.lmtp,
            ports.poppassd,
            ports.managesieve,
            ports.http,
            ports.socketmap,
            data = data.display(),
            shards = opts.shards,
            extra = opts.engine_extra,
        );
        std::fs::write(&config, toml).expect("write config");
        Site {
            dir,
            config,
            data,
            ports,
            opts,
        }
    }

    /// Runs `msgstore -c CONFIG ARGS…`, feeding `stdin` when given.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(binary());
        cmd.arg("-c").arg(&self.config).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn msgstore");
        if let Some(text) = stdin {
            let mut input = child.stdin.take().expect("stdin");
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        wait_output(child, Duration::from_secs(60))
    }

    /// Like `cli`, but panics unless the command succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "msgstore {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn start(&self) -> Server {
        Server::start(self)
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("output"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                panic!("msgstore did not finish within {limit:?}");
            }
        }
    }
}

/// A running server; killed on drop if the test did not stop it.
pub struct Server {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(site: &Site) -> Server {
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("-c")
            .arg(&site.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn msgstore serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            let mut ready_tx = Some(ready_tx);
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line.contains("msgstore ready")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
                sink.lock().map(|mut l| l.push_str(&line)).ok();
                line.clear();
            }
        });
        let mut server = Server {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return server;
            }
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "msgstore exited with {status} before ready:\n{}",
                    server.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "msgstore not ready within {START_TIMEOUT:?}:\n{}",
                    server.log()
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGTERM, then wait; SIGKILL if it does not stop in time (and panic).
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running child");
        signal(&child, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader thread drain the last log lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "msgstore did not stop within {STOP_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A line-oriented test client over plain TCP.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        Client {
            reader: BufReader::new(stream),
            writer,
        }
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        line
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Reads until the server closes the connection.
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }

    /// Reads lines until one starts with `tag ` (the tagged IMAP answer); returns all.
    pub fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "connection closed before {tag}: {lines:?}");
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
    }
}

/// Runs a Python 3 script (real client libraries: imaplib, poplib, smtplib) and
/// returns its stdout; panics with its stderr when it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the end-to-end tests");
    let out = wait_output(child, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Replays the corpus of a Dovecot parity fixture script (`tests/fixtures/NAME`, run
/// with `--check HOST PORT USER PASSWORD`) against a fresh two-shard server and returns
/// what the script printed: its comparison of msgstore's answers with the recorded ones.
pub fn dovecot_parity_check(script: &str) -> String {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "ann@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let server = site.start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(script);
    let run = format!(
        "import runpy, sys\nsys.argv = ['x', '--check'] + sys.argv[1:]\nrunpy.run_path({:?}, run_name='__main__')\n",
        script.display().to_string()
    );
    let out = python(
        &run,
        &[
            "127.0.0.1",
            &site.ports.imap.to_string(),
            "ann@example.com",
            "pw",
        ],
    );
    server.stop();
    out
}

/// Every message file of `user` (all mailboxes, by UID) with its bytes: what FETCH
/// BODY[] and RETR send.
pub fn message_files(site: &Site, user: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let out = site.cli_ok(&["account", "show", user], None);
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix("path      "))
        .expect("path line");
    let mut files = Vec::new();
    let mail = Path::new(dir.trim()).join("mail");
    for mbox in std::fs::read_dir(&mail).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(mbox.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.chars().all(|c| c.is_ascii_digit()) {
                files.push((f.path(), std::fs::read(f.path()).expect("read")));
            }
        }
    }
    files.sort_by_key(|(p, _)| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    });
    files
}
