//! Command line: argument parsing, validation, and turning a finished run into the report
//! files and the exit status.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::client::{Mode, RunConfig};
use crate::message::Sizes;
use crate::mix::{self, IMAP_DEFAULT, Mix, POP3_DEFAULT};
use crate::rss::Ramp;
use crate::schedule::Schedule;
use crate::stats::Report;

/// Exit status when the run finished but errors/ops exceeded --max-error-ratio, or nothing
/// succeeded at all.
pub const EXIT_TOO_MANY_ERRORS: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for IMAP, POP3 and LMTP servers (loopback only)",
    long_about = "Load generator for IMAP, POP3 and LMTP servers, thread-per-core, with HDR \
latency histograms per command. Closed loop by default; --rate makes it open loop (latency \
measured from the intended send time). Targets must be loopback addresses.\n\n\
Exit status: 0 ok, 1 errors/ops above --max-error-ratio (or no successful operation), \
2 usage or setup error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// IMAP: LOGIN a random user, SELECT INBOX, run the weighted mix (see below)
    Imap(LoadArgs),
    /// POP3: USER/PASS, STAT, LIST, then RETR (checked against LIST), DELE, QUIT (see below)
    Pop3(LoadArgs),
    /// LMTP: deliveries of generated MIME messages to 1-3 random users per transaction
    Lmtp(LoadArgs),
    /// IMAP IDLE: hold C connections (LOGIN, SELECT INBOX, IDLE) for the duration; with
    /// --server-pid measure the server's memory per idle connection instead (see below)
    Idle(IdleArgs),
    /// Fill accounts 1..N with M messages each over LMTP (same corpus every time)
    Populate(PopulateArgs),
}

#[derive(Debug, Clone, Args)]
struct Target {
    /// Server address; only loopback (127.0.0.0/8, ::1) is accepted
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Users are user_format with {} replaced by 1..=users
    #[arg(long, default_value = "user{}@example.com")]
    user_format: String,
    /// Password of every test user
    #[arg(long, default_value = "secret")]
    password: String,
    /// Implicit TLS (IMAPS/POP3S style); certificates are not verified (test servers)
    #[arg(long)]
    tls: bool,
    /// LMTP: deliver each recipient to its owning shard's port (port + 1 + shard)
    #[arg(long, requires = "shards")]
    shard_aware: bool,
    /// Shard count of the server, for --shard-aware
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    shards: Option<u16>,
    /// Per-request timeout in seconds; a request taking longer is an error and the client
    /// reconnects
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Worker threads (one pinned executor each); default: one per core
    #[arg(long)]
    workers: Option<usize>,
    /// Message sizes for APPEND, LMTP and populate: small 2-8 KB, mixed (mostly small, tail to
    /// 1 MB), large ~1 MB
    #[arg(long, value_enum, default_value_t = Sizes::Mixed)]
    sizes: Sizes,
    /// Write the report as JSON
    #[arg(long)]
    json: Option<PathBuf>,
    /// Exit 1 when errors/ops is above this
    #[arg(long, default_value_t = 0.01)]
    max_error_ratio: f64,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Server port (for LMTP with --shard-aware: the shared port)
    #[arg(long)]
    port: u16,
    /// Number of test users
    #[arg(long, default_value_t = 50)]
    users: u32,
    /// Concurrent client connections
    #[arg(long, default_value_t = 16)]
    clients: u64,
    /// Seconds of load
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Open loop: this many requests per second in total, on a fixed schedule
    #[arg(long)]
    rate: Option<f64>,
    /// Weights overriding the default mix: TOML, `name = weight` per line
    #[arg(long)]
    mix: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time into this SVG
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct IdleArgs {
    /// Server process: measure its memory (with all descendants) per idle connection; the run
    /// then lasts as long as the ramp, --duration being its time limit
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --server-pid: connections opened and closed before measuring
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// With --server-pid: memory is measured at C*k/S held connections for k = 1..=S
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..))]
    steps: u64,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Args)]
struct PopulateArgs {
    /// LMTP port of the server
    #[arg(long)]
    lmtp_port: u16,
    /// Accounts 1..=users are filled
    #[arg(long)]
    users: u32,
    /// Messages per account
    #[arg(long)]
    messages: u32,
    /// Concurrent LMTP connections
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 1800.0)]
    max_time: f64,
    #[command(flatten)]
    target: Target,
}

fn command_with_mix_help() -> clap::Command {
    let imap = format!(
        "Default IMAP mix (override with --mix FILE):\n{}",
        mix::describe(IMAP_DEFAULT)
    );
    let pop3 = format!(
        "Default POP3 mix (override with --mix FILE):\n{}",
        mix::describe(POP3_DEFAULT)
    );
    let mix_file = "\nA mix file is TOML: `name = weight` lines, or [imap]/[pop3] sections.";
    let idle = "Clients are spread over the users in turn (client c is user (c mod users) + 1).\n\n\
With --server-pid, memory per idle connection is measured, not divided by a before/after \
difference (which charges one-time costs such as the first logins' password hashing to the \
connections): --warmup connections are opened and closed first, then C*k/S connections are \
held at once for k = 1..=S (--steps), and the server's RSS and PSS (summed over it and its \
descendants, from /proc/PID/smaps_rollup) are read at each after 2 s. The cost per \
connection is the least-squares slope over those points; the JSON has it as \
rss_per_conn_bytes and pss_per_conn_bytes, with the points in memory_points.";
    Cli::command()
        .mut_subcommand("imap", |c| c.after_help(format!("{imap}\n{mix_file}")))
        .mut_subcommand("pop3", |c| c.after_help(format!("{pop3}\n{mix_file}")))
        .mut_subcommand("idle", |c| c.after_help(idle))
}

fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 7.0 * 86_400.0) {
        bail!("{what} must be between 0 and one week of seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

fn check_target(t: &Target) -> anyhow::Result<()> {
    if !t.host.is_loopback() {
        bail!(
            "refusing to target {}: loadgen only sends load to loopback addresses",
            t.host
        );
    }
    if !t.user_format.contains("{}") {
        bail!("--user-format must contain {{}} for the user number");
    }
    if t.max_error_ratio.is_nan() || t.max_error_ratio < 0.0 {
        bail!("--max-error-ratio must be a non-negative number");
    }
    Ok(())
}

fn workers_for(t: &Target, clients: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let w = t.workers.unwrap_or(cores).max(1);
    w.min(clients.max(1) as usize)
}

fn load_config(mode: Mode, a: &LoadArgs) -> anyhow::Result<RunConfig> {
    check_target(&a.target)?;
    if a.clients == 0 || a.users == 0 {
        bail!("--clients and --users must be at least 1");
    }
    let duration = seconds(a.duration, "--duration")?;
    let rate = match a.rate {
        None => None,
        Some(r) => Some(Schedule::new(r, a.clients).context("--rate must be a positive number")?),
    };
    let defaults = match mode {
        Mode::Imap => Some(("imap", IMAP_DEFAULT)),
        Mode::Pop3 => Some(("pop3", POP3_DEFAULT)),
        _ => None,
    };
    let mix = match (defaults, &a.mix) {
        (Some((section, d)), Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading mix file {}", path.display()))?;
            Some(Mix::parse(&text, section, d).with_context(|| format!("in {}", path.display()))?)
        }
        (Some((_, d)), None) => Some(Mix::from_defaults(d)),
        (None, Some(_)) => bail!("--mix applies to imap and pop3 only"),
        (None, None) => None,
    };
    if a.target.shard_aware && mode != Mode::Lmtp {
        bail!("--shard-aware applies to lmtp and populate only");
    }
    let start = Instant::now();
    Ok(RunConfig {
        mode,
        host: a.target.host,
        port: a.port,
        users: a.users,
        user_format: a.target.user_format.clone(),
        password: a.target.password.clone(),
        clients: a.clients,
        workers: workers_for(&a.target, a.clients),
        rate,
        mix,
        tls: a.target.tls,
        shards: a.target.shards.filter(|_| a.target.shard_aware),
        request_timeout: seconds(a.target.timeout, "--timeout")?,
        sizes: a.target.sizes,
        messages_per_user: 0,
        start,
        deadline: start + duration,
        idle: Default::default(),
    })
}

fn populate_config(a: &PopulateArgs) -> anyhow::Result<RunConfig> {
    check_target(&a.target)?;
    if a.users == 0 || a.clients == 0 {
        bail!("--users and --clients must be at least 1");
    }
    let clients = a.clients.min(u64::from(a.users));
    let start = Instant::now();
    Ok(RunConfig {
        mode: Mode::Populate,
        host: a.target.host,
        port: a.lmtp_port,
        users: a.users,
        user_format: a.target.user_format.clone(),
        password: a.target.password.clone(),
        clients,
        workers: workers_for(&a.target, clients),
        rate: None,
        mix: None,
        tls: a.target.tls,
        shards: a.target.shards.filter(|_| a.target.shard_aware),
        request_timeout: seconds(a.target.timeout, "--timeout")?,
        sizes: a.target.sizes,
        messages_per_user: a.messages,
        start,
        deadline: start + seconds(a.max_time, "--max-time")?,
        idle: Default::default(),
    })
}

/// Parses the command line, runs, writes the reports; returns the exit status.
pub fn main() -> anyhow::Result<u8> {
    let matches = command_with_mix_help().get_matches();
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .unwrap_or_else(|e| e);
    let (cfg, target, plot, memory) = match &cli.command {
        Command::Imap(a) => (load_config(Mode::Imap, a)?, &a.target, &a.plot, None),
        Command::Pop3(a) => (load_config(Mode::Pop3, a)?, &a.target, &a.plot, None),
        Command::Lmtp(a) => (load_config(Mode::Lmtp, a)?, &a.target, &a.plot, None),
        Command::Idle(a) => {
            let memory = match a.server_pid {
                None => None,
                Some(pid) => {
                    if a.steps > a.load.clients {
                        bail!("--steps must not exceed --clients");
                    }
                    let ramp = Ramp {
                        warmup: a.warmup.min(a.load.clients),
                        steps: a.steps,
                        top: a.load.clients,
                    };
                    Some((pid, ramp))
                }
            };
            let l = &a.load;
            (load_config(Mode::Idle, l)?, &l.target, &l.plot, memory)
        }
        Command::Populate(a) => (populate_config(a)?, &a.target, &None, None),
    };
    eprintln!(
        "loadgen {}: {}:{} clients {} workers {} {}",
        cfg.mode.name(),
        cfg.host,
        cfg.port,
        cfg.clients,
        cfg.workers,
        match cfg.rate {
            Some(_) => "open loop",
            None => "closed loop",
        }
    );
    let report = crate::runner::run(cfg, memory)?;
    finish(&report, target, plot.as_deref())
}

fn finish(report: &Report, target: &Target, plot: Option<&std::path::Path>) -> anyhow::Result<u8> {
    print!("{}", report.table());
    if let Some(path) = &target.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    print_memory(report);
    if let Some(path) = plot {
        crate::plot::write_svg(report, path)?;
    }
    if let Some(why) = report.extra.get("memory_incomplete") {
        eprintln!("loadgen: the memory ramp did not finish: {why}");
        return Ok(EXIT_TOO_MANY_ERRORS);
    }
    let ratio = report.error_ratio();
    if report.ops() == 0 {
        eprintln!("loadgen: no operation succeeded");
        return Ok(EXIT_TOO_MANY_ERRORS);
    }
    if ratio > target.max_error_ratio {
        eprintln!(
            "loadgen: error ratio {ratio:.4} (errors {} / ops {}) exceeds --max-error-ratio {}",
            report.errors(),
            report.ops(),
            target.max_error_ratio
        );
        return Ok(EXIT_TOO_MANY_ERRORS);
    }
    Ok(0)
}

/// The memory ramp's points and slopes (idle with --server-pid).
fn print_memory(report: &Report) {
    let kib = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(0.0) / 1024.0;
    let Some(points) = report.extra.get("memory_points").and_then(|v| v.as_array()) else {
        return;
    };
    println!("server memory      held    RSS KiB    PSS KiB  processes");
    let baseline = report.extra.get("memory_baseline").filter(|b| !b.is_null());
    for (name, p) in baseline
        .map(|b| ("after warm-up", b))
        .into_iter()
        .chain(points.iter().map(|p| ("", p)))
    {
        println!(
            "  {name:<14} {:>8} {:>10.0} {:>10.0} {:>10}",
            p["held"].as_u64().unwrap_or(0),
            kib(p, "rss_bytes"),
            kib(p, "pss_bytes"),
            p["processes"].as_u64().unwrap_or(0)
        );
    }
    if report.extra.contains_key("rss_per_conn_bytes") {
        let e = serde_json::Value::Object(report.extra.clone());
        println!(
            "server RSS per idle connection: {:.2} KiB (least-squares slope)",
            kib(&e, "rss_per_conn_bytes")
        );
        println!(
            "server PSS per idle connection: {:.2} KiB (least-squares slope)",
            kib(&e, "pss_per_conn_bytes")
        );
    }
}
