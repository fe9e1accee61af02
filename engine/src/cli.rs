//! The `msgstore` command line (DESIGN §10). Every verb works offline on a stopped
//! store and, when a server holds the store, through its admin socket; the answer is
//! the same either way. Errors are one line on stderr and a non-zero exit.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use store::{Address, Bucket, Store, StoreLock};

use crate::admin::proto::{AccountView, AdminRequest, AdminResponse};
use crate::admin::{client, ops};
use crate::config::{Config, Service};

#[derive(Parser, Debug)]
#[command(
    name = "msgstore",
    version,
    about = "A message store for ISPs: IMAP, POP3, LMTP delivery"
)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server in the foreground until SIGTERM/SIGINT.
    Serve,
    /// Create, inspect, change and delete accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// The forwarding database: mail for an address goes to other addresses.
    Forward {
        #[command(subcommand)]
        command: ForwardCommand,
    },
    /// The outbound queue (mail leaving the store: external forwards, bounces).
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Print where an address lives: bucket, shard, LMTP socket, folder.
    Route { address: String },
    /// Per-shard counters of the running server.
    Stats,
    /// Sessions of the running server, per shard.
    Who,
    /// Internal: print the cache record (precomputed MIME structure) of a CRLF message
    /// file. The server runs it for a large APPEND, so that message is never read whole
    /// into the server's memory.
    #[command(hide = true)]
    PrecomputeMessage { path: PathBuf },
    /// Rebuild mailbox lists, indexes and caches from the message files, keeping
    /// what can be kept of flags and UIDs. Works online and offline.
    Reconstruct {
        /// Accounts to rebuild.
        addresses: Vec<String>,
        /// Every account of the store.
        #[arg(long, conflicts_with = "addresses")]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ForwardCommand {
    /// Forward ADDRESS to one or more TARGETs (local or external).
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
        /// Deliver to ADDRESS's own account too.
        #[arg(long)]
        keep_copy: bool,
    },
    /// Remove ADDRESS's forwarding entry.
    Del { address: String },
    /// Every entry, or ADDRESS's.
    List { address: Option<String> },
}

#[derive(Subcommand, Debug)]
enum QueueCommand {
    /// Every queued message: id, sender, attempts, next attempt, recipients.
    List,
    /// Try every waiting message now.
    Flush,
    /// Remove a message from the queue (no bounce is sent).
    Del { id: String },
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Create an account.
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Quota in bytes; 0 means no limit.
        #[arg(long, value_name = "BYTES")]
        quota: Option<u64>,
        /// Usage flags, comma separated: imap,pop,manage,disabled (default imap,pop).
        #[arg(long)]
        flags: Option<String>,
        /// The owner's full name.
        #[arg(long)]
        name: Option<String>,
        /// Keep the password sealed for CRAM-MD5 and APOP (plaintext-equivalent;
        /// `[auth] cram_md5 = true` does this for every account).
        #[arg(long)]
        cram_md5: bool,
    },
    /// List every account, one address a line.
    List,
    /// Show an account's profile.
    Show { address: String },
    /// Delete an account and all its mail.
    Del { address: String },
    /// Set an account's password (read from standard input).
    Passwd {
        address: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Keep the password sealed for CRAM-MD5 and APOP (see `account add`).
        #[arg(long)]
        cram_md5: bool,
    },
    /// Change an account's quota, flags or name.
    Set {
        address: String,
        #[arg(long, value_name = "BYTES")]
        quota: Option<u64>,
        #[arg(long)]
        flags: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// `off` drops the account's sealed CRAM-MD5/APOP secret (turning it on
        /// needs the password: `account passwd --cram-md5`).
        #[arg(long, value_name = "off")]
        cram_md5: Option<String>,
    },
}

/// Runs the command line and returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                e.exit();
            }
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            return 2;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    chain.join(": ").replace('\n', " ")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let req = match cli.command {
        Command::Serve => {
            init_logging();
            return crate::runtime::serve(config);
        }
        Command::Route { address } => return route(&config, &address),
        Command::PrecomputeMessage { path } => {
            use std::io::Write;
            let message = store::durable::read_bounded(&path, store::limits::MESSAGE_BYTES_MAX)?;
            let record = store::delivery::cache_record(&message);
            std::io::stdout().lock().write_all(&record)?;
            return Ok(());
        }
        Command::Reconstruct { addresses, all } => return reconstruct(&config, addresses, all),
        Command::Stats => AdminRequest::Stats,
        Command::Who => AdminRequest::Who,
        Command::Account { command } => account_request(&config, command)?,
        Command::Forward { command } => match command {
            ForwardCommand::Add {
                address,
                targets,
                keep_copy,
            } => AdminRequest::ForwardAdd {
                address,
                targets,
                keep_copy,
            },
            ForwardCommand::Del { address } => AdminRequest::ForwardDel { address },
            ForwardCommand::List { address } => AdminRequest::ForwardList { address },
        },
        Command::Queue { command } => match command {
            QueueCommand::List => AdminRequest::QueueList,
            QueueCommand::Flush => AdminRequest::QueueFlush,
            QueueCommand::Del { id } => AdminRequest::QueueDel { id },
        },
    };
    let show = req.clone();
    let answer = dispatch(&config, req)?;
    print_answer(&show, answer)
}

fn account_request(config: &Config, cmd: AccountCommand) -> anyhow::Result<AdminRequest> {
    Ok(match cmd {
        AccountCommand::Add {
            address,
            password_stdin,
            quota,
            flags,
            name,
            cram_md5,
        } => {
            let parsed = Address::parse(&address)?;
            let address = parsed.to_string();
            let password_hash = if password_stdin {
                Some(verifiers(config, &parsed, &read_password()?, cram_md5)?)
            } else {
                None
            };
            AdminRequest::AccountAdd {
                address,
                name: name.unwrap_or_default(),
                quota_bytes: quota.unwrap_or(0),
                flags,
                password_hash,
            }
        }
        AccountCommand::List => AdminRequest::AccountList,
        AccountCommand::Show { address } => AdminRequest::AccountShow { address },
        AccountCommand::Del { address } => AdminRequest::AccountDel { address },
        AccountCommand::Passwd {
            address, cram_md5, ..
        } => {
            let parsed = Address::parse(&address)?;
            AdminRequest::AccountSet {
                address,
                name: None,
                quota_bytes: None,
                flags: None,
                password_hash: Some(verifiers(config, &parsed, &read_password()?, cram_md5)?),
                drop_cram: false,
            }
        }
        AccountCommand::Set {
            address,
            quota,
            flags,
            name,
            cram_md5,
        } => {
            let drop_cram = match cram_md5.as_deref() {
                None => false,
                Some("off") => true,
                Some(other) => anyhow::bail!(
                    "--cram-md5 takes `off` (not {other:?}); to turn it on, set the \
                     password again with `account passwd --cram-md5`"
                ),
            };
            AdminRequest::AccountSet {
                address,
                name,
                quota_bytes: quota,
                flags,
                password_hash: None,
                drop_cram,
            }
        }
    })
}

/// What the profile keeps of a new password: argon2id, SCRAM keys and, when asked
/// for, the password sealed with the server key. Only these cross the admin socket.
fn verifiers(
    config: &Config,
    user: &Address,
    password: &str,
    cram_md5: bool,
) -> anyhow::Result<String> {
    let keep_cram_secret = cram_md5 || config.auth.cram_md5;
    let key = if keep_cram_secret {
        let root0 = &config.store.roots[0];
        std::fs::create_dir_all(root0)?;
        Some(store::auth::ServerKey::load_or_create(root0)?)
    } else {
        None
    };
    let options = store::auth::VerifierOptions {
        keep_cram_secret,
        ..store::auth::VerifierOptions::default()
    };
    let verifiers = store::auth::Verifiers::from_password(password, user, &options, key.as_ref())?;
    Ok(verifiers.to_profile_value())
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(pw)
}

/// Through the running server when one holds the store, offline otherwise.
fn dispatch(config: &Config, req: AdminRequest) -> anyhow::Result<AdminResponse> {
    let root0 = &config.store.roots[0];
    if StoreLock::holder(root0).is_some() {
        return client::call(&config.admin_socket(), &req);
    }
    if matches!(req, AdminRequest::Stats | AdminRequest::Who) {
        anyhow::bail!("no server is running on the store at {}", root0.display());
    }
    std::fs::create_dir_all(root0)?;
    let _lock = StoreLock::try_acquire(root0)?;
    let store = std::sync::Arc::new(Store::open(
        &config.store.roots,
        config.store.fanout_levels,
    )?);
    if matches!(req, AdminRequest::Reconstruct { .. }) {
        ops::replay_journals(&store)?;
    }
    if req.is_queue() {
        return Ok(crate::outbound::queue_op_offline(config, req));
    }
    Ok(ops::execute(&store, req))
}

fn print_answer(req: &AdminRequest, answer: AdminResponse) -> anyhow::Result<()> {
    match answer {
        AdminResponse::Error { message } => anyhow::bail!(message),
        AdminResponse::Done => match req {
            AdminRequest::AccountDel { address } | AdminRequest::ForwardDel { address } => {
                println!("deleted {address}")
            }
            AdminRequest::QueueDel { id } => println!("deleted {id}"),
            _ => {}
        },
        AdminResponse::Forwards { entries } => {
            for f in entries {
                let copy = if f.keep_copy { " (keep copy)" } else { "" };
                println!("{} -> {}{copy}", f.address, f.targets.join(", "));
            }
        }
        AdminResponse::Account(v) => print_account(&v),
        AdminResponse::Flushed { count } => println!("flushed {count}"),
        AdminResponse::Queue { entries } => {
            // One line per entry, then one indented line per recipient.
            for e in entries {
                println!(
                    "{}  <{}>  {} bytes  created {}  attempts {}  next {}",
                    e.id, e.mail_from, e.bytes, e.created_unix, e.attempts, e.next_attempt_unix
                );
                for r in e.recipients {
                    if r.diagnostic.is_empty() {
                        println!("    {} {}", r.state, r.address);
                    } else {
                        println!("    {} {} ({})", r.state, r.address, r.diagnostic);
                    }
                }
            }
        }
        AdminResponse::Reconstructed(_) => {}
        AdminResponse::Accounts { addresses } => {
            for a in addresses {
                println!("{a}");
            }
        }
        AdminResponse::Stats { shards } => {
            println!(
                "shard  cpu  accepted  handoffs_out  handoffs_in  logins_ok  logins_failed  sessions  logins_blocked  refused  slowed"
            );
            for s in shards {
                println!(
                    "{:>5}  {:>3}  {:>8}  {:>12}  {:>11}  {:>9}  {:>13}  {:>8}  {:>14}  {:>7}  {:>6}",
                    s.shard,
                    s.cpu,
                    s.accepted,
                    s.handoffs_out,
                    s.handoffs_in,
                    s.logins_ok,
                    s.logins_failed,
                    s.sessions_active,
                    s.logins_blocked,
                    s.connections_refused,
                    s.commands_slowed
                );
            }
        }
        AdminResponse::Who { sessions } => {
            println!("shard  service      user                                      peer");
            for s in sessions {
                println!(
                    "{:>5}  {:<11}  {:<40}  {}",
                    s.shard,
                    s.service,
                    s.user.as_deref().unwrap_or("-"),
                    s.peer
                );
            }
        }
    }
    Ok(())
}

fn reconstruct(config: &Config, addresses: Vec<String>, all: bool) -> anyhow::Result<()> {
    let addresses = if all {
        match dispatch(config, AdminRequest::AccountList)? {
            AdminResponse::Accounts { addresses } => addresses,
            AdminResponse::Error { message } => anyhow::bail!(message),
            _ => anyhow::bail!("unexpected answer to the account list"),
        }
    } else if addresses.is_empty() {
        anyhow::bail!("name the accounts to reconstruct, or --all");
    } else {
        addresses
    };
    let total = addresses.len();
    let mut failed = 0;
    for (i, address) in addresses.into_iter().enumerate() {
        match dispatch(
            config,
            AdminRequest::Reconstruct {
                address: address.clone(),
            },
        )? {
            AdminResponse::Reconstructed(r) => {
                println!(
                    "[{}/{total}] {}: {} mailboxes, {} messages, {} bytes, {} repairs",
                    i + 1,
                    r.address,
                    r.mailboxes,
                    r.messages,
                    r.bytes,
                    r.repairs.len()
                );
                for line in r.repairs {
                    println!("    {line}");
                }
            }
            AdminResponse::Error { message } => {
                failed += 1;
                eprintln!("[{}/{total}] {address}: {message}", i + 1);
            }
            _ => anyhow::bail!("unexpected answer to reconstruct"),
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {total} accounts could not be reconstructed");
    }
    Ok(())
}

fn print_account(v: &AccountView) {
    println!("address   {}", v.address);
    println!("name      {}", v.name);
    println!("domain    {}", v.domain);
    println!(
        "quota     {}",
        if v.quota_bytes == 0 {
            "unlimited".to_owned()
        } else {
            format!("{} bytes", v.quota_bytes)
        }
    );
    println!("flags     {}", v.flags);
    match (v.has_password, v.verifiers.is_empty()) {
        (false, _) => println!("password  not set"),
        (true, true) => println!("password  set"),
        (true, false) => println!("password  set ({})", v.verifiers.join(" ")),
    }
    println!("created   {}", v.created_unix);
    println!("bucket    {}", v.bucket);
    println!("path      {}", v.path);
}

fn route(config: &Config, address: &str) -> anyhow::Result<()> {
    let (addr, detail) = Address::parse_recipient(address)?;
    let digest = store::hash::digest(&addr);
    let bucket = Bucket::of(&addr);
    let shards = config.shard_count();
    let shard = bucket.shard(shards);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("address   {addr}");
    if let Some(d) = detail {
        println!("folder    {d}");
    }
    println!("md5       {hex}");
    println!("bucket    {} (0x{:04x})", bucket.0, bucket.0);
    println!("shard     {shard} of {shards}");
    if let Some(lmtp) = config.listen_addr(Service::Lmtp)
        && let Some(own) = crate::services::shard_lmtp_addr(lmtp, shard)
    {
        println!("lmtp      {own}");
    }
    if let Some(path) = config.lmtp_unix_path(shard) {
        println!("lmtp_unix {}", path.display());
    }
    // Opening reads the format file, so the path uses the fanout the store was
    // created with (and, like every verb, creates a store on empty roots).
    let store = Store::open(&config.store.roots, config.store.fanout_levels)?;
    println!("path      {}", store.user_dir(&addr).display());
    Ok(())
}

fn init_logging() {
    let level = match std::env::var("MSGSTORE_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .init();
}
