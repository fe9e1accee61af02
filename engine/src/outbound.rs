//! The outbound queue runner (issue 4, DESIGN §4): mail that leaves the store —
//! external forwards now — is written to a durable spool before LMTP answers, then
//! sent to `[outbound] relay` with the sans-IO SMTP client, retried with backoff on
//! 4xx and lost connections, and bounced (RFC 3464 DSN) to the envelope sender on a
//! 5xx or when `[outbound] retry_window` ends. The null sender is never bounced.
//!
//! **Which shard runs what.** Each shard has its own spool,
//! `<roots[0]>/outbound/shard-N/`, holding what that shard accepted over LMTP, and
//! runs it itself:
//! - the entry is written by the shard that holds the LMTP transaction, with no
//!   mesh hop and no copy of the message to another core before the `250`;
//! - `store::outbound::Outbound` wants one owner at a time (its state changes are
//!   read-modify-write of the envelope file), and one shard per spool gives that
//!   without a lock;
//! - outbound work spreads over the cores like the deliveries that cause it.
//!
//! When the server restarts with fewer shards, spool `shard-N` is run by shard
//! `N % shards`, so nothing is orphaned. The spool's file work (write, fdatasync,
//! rename, list) runs on the shard's blocking pool; the SMTP conversation runs on
//! the shard's glommio reactor. Attempts of one shard run one after another.

use std::cell::RefCell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use protocols::smtp_client::{
    Envelope, Outcome, RecipientResult, SmtpClient, SmtpClientConfig, SmtpClientEvent, Stage,
    TlsPolicy,
};
use store::outbound::{
    AttemptOutcome, Bounce, OUTBOUND_DIR, Outbound, QueueEntry, QueueId, RecipientAttempt,
    RecipientState, RetryPolicy,
};
use store::{Address, StoreError};

use crate::admin::proto::{AdminRequest, AdminResponse, QueueRecipientView, QueueView};
use crate::config::{Config, OutboundConfig, OutboundTls};
use crate::event::LocalEvent;
use crate::limits::READ_CHUNK_BYTES;
use crate::mesh::{DeliveryResult, Request, Response};
use crate::shard::Shard;

/// Longest sleep of an idle runner: it looks at its spool at least this often.
const RUNNER_POLL_SECONDS: u64 = 30;
/// Shortest time between two looks at the spools: each look reads every envelope
/// (see `Queue::pass`), so a burst of enqueues costs a few scans a second, not one
/// per message.
const RUNNER_PASS_GAP_MS: u64 = 250;
/// Bytes of the message handed to the SMTP client at a time.
const DATA_CHUNK_BYTES: usize = 64 * 1024;

/// The seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The spool directory of shard `n`.
pub fn spool_dir(root0: &Path, n: usize) -> PathBuf {
    root0.join(OUTBOUND_DIR).join(format!("shard-{n}"))
}

/// Every spool directory under `<root0>/outbound`, with its shard number.
pub fn spool_dirs(root0: &Path) -> Vec<(usize, PathBuf)> {
    let mut dirs = Vec::new();
    let Ok(entries) = std::fs::read_dir(root0.join(OUTBOUND_DIR)) else {
        return dirs;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("shard-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            dirs.push((n, e.path()));
        }
    }
    dirs.sort();
    dirs
}

pub fn retry_policy(cfg: &OutboundConfig) -> RetryPolicy {
    RetryPolicy {
        backoff_secs: cfg.backoff_seconds.clone(),
        retry_window_secs: cfg.retry_window_seconds,
    }
}

/// One shard's outbound queue: its spools and the runner's wake-up.
pub struct Queue {
    /// This shard's own spool (where its LMTP sessions enqueue) first, then the
    /// spools of shards that no longer exist which fall to it.
    spools: Vec<Arc<Outbound>>,
    kick: LocalEvent,
    cfg: OutboundConfig,
    helo_name: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Entries the runner is sending now (`queue del` leaves them alone).
    busy: RefCell<Vec<QueueId>>,
}

impl Queue {
    /// Opens shard `shard`'s spools (start-up only: blocking file work) and cleans
    /// what a crash left half-written.
    pub fn open(config: &Config, shard: usize, shards: usize) -> anyhow::Result<Queue> {
        let root0 = &config.store.roots[0];
        let policy = retry_policy(&config.outbound);
        let mut spools = vec![Arc::new(Outbound::open_dir(
            &spool_dir(root0, shard),
            policy.clone(),
        )?)];
        for (n, dir) in spool_dirs(root0) {
            if n != shard && n >= shards && n % shards == shard {
                spools.push(Arc::new(Outbound::open_dir(&dir, policy.clone())?));
            }
        }
        let tls = match config.outbound.tls {
            OutboundTls::Off => None,
            _ => Some(client_tls_config(&config.outbound)?),
        };
        let helo_name = if config.outbound.helo_name.is_empty() {
            let host = rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned();
            if host.is_empty() || host.contains(char::is_whitespace) {
                "localhost".to_owned()
            } else {
                host
            }
        } else {
            config.outbound.helo_name.clone()
        };
        Ok(Queue {
            spools,
            kick: LocalEvent::default(),
            cfg: config.outbound.clone(),
            helo_name,
            tls,
            busy: RefCell::new(Vec::new()),
        })
    }

    /// Whether a relay is configured: without one, mail cannot leave the store.
    pub fn has_relay(&self) -> bool {
        self.cfg.relay.is_some()
    }

    /// Queues `message` from `mail_from` to `recipients` in this shard's spool;
    /// returns once the entry is durable, and wakes the runner.
    pub async fn enqueue(
        &self,
        message: Arc<Vec<u8>>,
        mail_from: &str,
        recipients: Vec<String>,
    ) -> Result<QueueId, StoreError> {
        let spool = self.spools[0].clone();
        let from = mail_from.to_owned();
        let id = glommio::executor()
            .spawn_blocking(move || spool.enqueue(&message, &from, &recipients, unix_now()))
            .await?;
        self.kick.notify();
        Ok(id)
    }

    /// Runs the queue until the shard stops.
    pub async fn run(self: Rc<Self>, shard: Rc<Shard>) {
        loop {
            // Taken before the pass: an enqueue during it (a bounce, a new LMTP
            // delivery) wakes the next wait at once.
            let kick = self.kick.wait();
            let next = self.pass(&shard).await;
            if shard.shutdown.is_triggered() {
                return;
            }
            let now = unix_now();
            let wait = next
                .map(|t| t.saturating_sub(now))
                .unwrap_or(RUNNER_POLL_SECONDS)
                .clamp(1, RUNNER_POLL_SECONDS);
            let sleep = glommio::timer::sleep(Duration::from_secs(wait));
            let stop = shard.shutdown.wait();
            let _ = select(
                std::pin::pin!(kick),
                std::pin::pin!(select(stop, std::pin::pin!(sleep))),
            )
            .await;
            glommio::timer::sleep(Duration::from_millis(RUNNER_PASS_GAP_MS)).await;
        }
    }

    /// One look at every spool: sends what is due, sends the bounces owed. Returns
    /// when the next attempt is due. It lists every envelope of the spool (the store
    /// keeps no index of the queue), O(entries) per look.
    async fn pass(&self, shard: &Rc<Shard>) -> Option<u64> {
        let mut next: Option<u64> = None;
        for spool in &self.spools {
            let entries = {
                let spool = spool.clone();
                glommio::executor()
                    .spawn_blocking(move || spool.list())
                    .await
            };
            let listing = match entries {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("outbound {}: {e}", spool.dir().display());
                    continue;
                }
            };
            for (id, e) in &listing.damaged {
                tracing::error!("outbound entry {id} is damaged: {e}");
            }
            for entry in listing.entries {
                if shard.shutdown.is_triggered() {
                    return None;
                }
                if entry.pending().is_empty() {
                    continue;
                }
                let now = unix_now();
                if entry.next_attempt_unix > now {
                    next = Some(
                        next.map_or(entry.next_attempt_unix, |n| n.min(entry.next_attempt_unix)),
                    );
                    continue;
                }
                if self.cfg.relay.is_none() {
                    continue;
                }
                if let Some(at) = self.attempt(spool, entry).await {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            self.send_bounces(shard, spool).await;
        }
        next
    }

    /// Tries to send one entry; returns when it is due again (if it is).
    async fn attempt(&self, spool: &Arc<Outbound>, entry: QueueEntry) -> Option<u64> {
        let relay = self.cfg.relay.clone()?;
        self.busy.borrow_mut().push(entry.id.clone());
        let message = {
            let spool = spool.clone();
            let entry = entry.clone();
            glommio::executor()
                .spawn_blocking(move || spool.message(&entry))
                .await
        };
        let pending: Vec<String> = entry.pending().into_iter().map(str::to_owned).collect();
        let results = match message {
            Ok(message) => {
                let envelope = Envelope {
                    mail_from: entry.mail_from.clone(),
                    recipients: pending.clone(),
                    size_bytes: Some(message.len() as u64),
                    eight_bit: message.iter().any(|b| *b >= 0x80),
                };
                self.send(&relay, envelope, &message).await
            }
            Err(e) => {
                tracing::error!("outbound {}: {e}", entry.id);
                everyone(
                    &pending,
                    AttemptOutcome::Temporary,
                    "4.3.0",
                    "queued message unreadable",
                )
            }
        };
        for r in &results {
            tracing::info!(
                "outbound {} to <{}>: {:?} {}",
                entry.id,
                r.recipient,
                r.outcome,
                r.diagnostic
            );
        }
        let recorded = {
            let spool = spool.clone();
            let id = entry.id.clone();
            glommio::executor()
                .spawn_blocking(move || spool.record_attempt(&id, &results, unix_now()))
                .await
        };
        self.busy.borrow_mut().retain(|b| *b != entry.id);
        match recorded {
            Ok(store::outbound::EntryState::Retry { next_attempt_unix }) => Some(next_attempt_unix),
            Ok(_) => None,
            Err(StoreError::NoSuchQueueEntry { .. }) => None,
            Err(e) => {
                tracing::error!("outbound {}: recording the attempt: {e}", entry.id);
                None
            }
        }
    }

    /// Delivers the DSNs owed: into the sender's mailbox when the sender has an
    /// account here, through the relay (queued, from `<>`) otherwise.
    async fn send_bounces(&self, shard: &Rc<Shard>, spool: &Arc<Outbound>) {
        let host = self.helo_name.clone();
        let bounces = {
            let spool = spool.clone();
            glommio::executor()
                .spawn_blocking(move || spool.bounce_due(unix_now(), &host))
                .await
        };
        let bounces = match bounces {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("outbound {}: bounces: {e}", spool.dir().display());
                return;
            }
        };
        for bounce in bounces {
            let sent = self.send_bounce(shard, &bounce).await;
            if sent {
                let spool = spool.clone();
                let id = bounce.id.clone();
                if let Err(e) = glommio::executor()
                    .spawn_blocking(move || spool.delete(&id))
                    .await
                {
                    tracing::error!("outbound {}: removing after the bounce: {e}", bounce.id);
                }
            }
        }
    }

    async fn send_bounce(&self, shard: &Rc<Shard>, bounce: &Bounce) -> bool {
        let local = match Address::parse(&bounce.to) {
            Ok(a) => {
                let store = shard.store.clone();
                let who = a.clone();
                let exists = glommio::executor()
                    .spawn_blocking(move || store.profile_path(&who).is_file())
                    .await;
                exists.then_some(a)
            }
            Err(_) => None,
        };
        if let Some(user) = local {
            let mut message = b"Return-Path: <>\r\n".to_vec();
            message.extend_from_slice(&bounce.message);
            let answer = shard
                .call(
                    shard.owner_of(&user),
                    Request::Deliver {
                        message: Arc::new(message),
                        recipients: vec![(user.clone(), None)],
                    },
                )
                .await;
            return match answer {
                Ok(Response::Delivered(r)) if r.first() == Some(&DeliveryResult::Stored) => {
                    tracing::info!("outbound {}: bounce delivered to {user}", bounce.id);
                    true
                }
                other => {
                    tracing::warn!(
                        "outbound {}: bounce to {user} not stored ({other:?}); retried later",
                        bounce.id
                    );
                    false
                }
            };
        }
        match self
            .enqueue(
                Arc::new(bounce.message.clone()),
                "",
                vec![bounce.to.clone()],
            )
            .await
        {
            Ok(id) => {
                tracing::info!("outbound {}: bounce to <{}> is {id}", bounce.id, bounce.to);
                true
            }
            Err(e) => {
                tracing::warn!("outbound {}: queueing the bounce: {e}", bounce.id);
                false
            }
        }
    }

    /// Sends to the relay. Opportunistic TLS without a CA file falls back to a
    /// plaintext session when the TLS handshake fails (as Postfix's `may` level
    /// does); with `tls_ca` set a failed verification defers the message instead.
    async fn send(&self, relay: &str, envelope: Envelope, message: &[u8]) -> Vec<RecipientAttempt> {
        let policy = match (self.cfg.tls, &self.tls) {
            (OutboundTls::Off, _) | (_, None) => TlsPolicy::Disabled,
            (OutboundTls::Opportunistic, _) => TlsPolicy::Opportunistic,
            (OutboundTls::Required, _) => TlsPolicy::Required,
        };
        let (results, tls_failed) = self
            .send_once(relay, envelope.clone(), message, policy)
            .await;
        if tls_failed
            && policy == TlsPolicy::Opportunistic
            && self.cfg.tls_ca.as_os_str().is_empty()
        {
            tracing::info!("outbound: TLS with {relay} failed; trying again without TLS");
            return self
                .send_once(relay, envelope, message, TlsPolicy::Disabled)
                .await
                .0;
        }
        results
    }

    /// One SMTP session with the relay: every recipient gets an outcome. The flag
    /// says the TLS handshake after STARTTLS failed.
    async fn send_once(
        &self,
        relay: &str,
        envelope: Envelope,
        message: &[u8],
        policy: TlsPolicy,
    ) -> (Vec<RecipientAttempt>, bool) {
        let recipients = envelope.recipients.clone();
        let timeout = Duration::from_secs(self.cfg.timeout_seconds);
        let mut tls_failed = false;
        let config = SmtpClientConfig {
            helo_name: self.helo_name.clone(),
            tls: policy,
        };
        let mut client = match SmtpClient::new(config, envelope) {
            Ok(c) => c,
            Err(e) => {
                return (
                    everyone(
                        &recipients,
                        AttemptOutcome::Permanent,
                        "5.1.3",
                        &e.to_string(),
                    ),
                    false,
                );
            }
        };
        let addr = match resolve(relay).await {
            Ok(a) => a,
            Err(e) => {
                return (
                    everyone(
                        &recipients,
                        AttemptOutcome::Temporary,
                        "4.4.3",
                        &format!("relay {relay}: {e}"),
                    ),
                    false,
                );
            }
        };
        let stream = match TcpStream::connect_timeout(addr, timeout).await {
            Ok(s) => s,
            Err(e) => {
                return (
                    everyone(
                        &recipients,
                        AttemptOutcome::Temporary,
                        "4.4.1",
                        &format!("connect to relay {relay}: {e}"),
                    ),
                    false,
                );
            }
        };
        let _ = stream.set_nodelay(true);
        let host = relay
            .rsplit_once(':')
            .map_or(relay, |(h, _)| h)
            .trim_matches(['[', ']']);
        let mut io = ClientIo::Plain(stream);
        let mut results: Option<Vec<RecipientResult>> = None;
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            while let Some(out) = client.poll_output() {
                if let Err(e) = io.write_all(&out).await {
                    client.connection_failed(&format!("write to relay: {e}"));
                }
            }
            if let Some(event) = client.poll_event() {
                match event {
                    SmtpClientEvent::StartTls => {
                        let Some(tls) = self.tls.clone() else {
                            client.connection_failed("TLS is not configured");
                            continue;
                        };
                        io = match io.start_tls(tls, host, timeout).await {
                            Ok(io) => {
                                let _ = client.tls_established();
                                io
                            }
                            Err((io, e)) => {
                                tls_failed = true;
                                client.connection_failed(&format!("TLS with the relay: {e}"));
                                io
                            }
                        };
                    }
                    SmtpClientEvent::SendData => {
                        for chunk in message.chunks(DATA_CHUNK_BYTES) {
                            let _ = client.push_data(chunk);
                            if let Some(out) = client.poll_output()
                                && let Err(e) = io.write_all(&out).await
                            {
                                client.connection_failed(&format!("write to relay: {e}"));
                                break;
                            }
                        }
                        let _ = client.finish_data();
                    }
                    SmtpClientEvent::Done(r) => results = Some(r),
                    SmtpClientEvent::Close => {
                        io.close().await;
                        break;
                    }
                }
                continue;
            }
            if client.is_closed() {
                io.close().await;
                break;
            }
            let room = client.input_room().clamp(1, buf.len());
            let got = {
                let read = std::pin::pin!(io.read(&mut buf[..room]));
                let timer = std::pin::pin!(glommio::timer::sleep(timeout));
                match select(read, timer).await {
                    Either::Left((r, _)) => Some(r),
                    Either::Right(_) => None,
                }
            };
            match got {
                Some(Ok(0)) => client.connection_closed(),
                Some(Ok(n)) => {
                    let _ = client.handle_input(&buf[..n]);
                }
                Some(Err(e)) => client.connection_failed(&format!("read from relay: {e}")),
                None => client.connection_failed("the relay did not answer in time"),
            }
        }
        let results = match results {
            Some(r) => r
                .into_iter()
                .map(|r| RecipientAttempt {
                    recipient: r.recipient,
                    outcome: match r.outcome {
                        Outcome::Delivered => AttemptOutcome::Delivered,
                        Outcome::Temporary => AttemptOutcome::Temporary,
                        Outcome::Permanent => AttemptOutcome::Permanent,
                    },
                    status: r.status,
                    diagnostic: match r.stage {
                        Stage::Message | Stage::Rcpt => r.diagnostic,
                        stage => format!("{} (at {stage})", r.diagnostic),
                    },
                })
                .collect(),
            None => everyone(
                &recipients,
                AttemptOutcome::Temporary,
                "4.4.2",
                "the relay session ended without a result",
            ),
        };
        (results, tls_failed)
    }

    /// `msgstore queue list|flush|del` for the spools this shard runs.
    pub async fn admin(&self, req: AdminRequest) -> AdminResponse {
        if let AdminRequest::QueueDel { id } = &req
            && self.busy.borrow().iter().any(|b| b.as_str() == id)
        {
            return AdminResponse::Error {
                message: format!("queue entry {id} is being sent now; try again"),
            };
        }
        let spools = self.spools.clone();
        let flush = matches!(req, AdminRequest::QueueFlush);
        let answer = glommio::executor()
            .spawn_blocking(move || queue_op(&spools, req))
            .await;
        if flush {
            self.kick.notify();
        }
        answer
    }
}

/// The same outcome for every recipient (the session never got to them).
fn everyone(
    recipients: &[String],
    outcome: AttemptOutcome,
    status: &str,
    why: &str,
) -> Vec<RecipientAttempt> {
    recipients
        .iter()
        .map(|r| RecipientAttempt {
            recipient: r.clone(),
            outcome,
            status: status.to_owned(),
            diagnostic: why.to_owned(),
        })
        .collect()
}

/// The relay's address; a host name is looked up on the blocking pool.
async fn resolve(relay: &str) -> std::io::Result<SocketAddr> {
    if let Ok(a) = relay.parse::<SocketAddr>() {
        return Ok(a);
    }
    let relay = relay.to_owned();
    glommio::executor()
        .spawn_blocking(move || {
            relay.to_socket_addrs()?.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
            })
        })
        .await
}

/// `queue list|flush|del` over some spools (blocking: the CLI offline, a shard's
/// blocking pool online).
pub fn queue_op(spools: &[Arc<Outbound>], req: AdminRequest) -> AdminResponse {
    let error = |e: StoreError| AdminResponse::Error {
        message: e.to_string(),
    };
    match req {
        AdminRequest::QueueList => {
            let mut entries = Vec::new();
            for spool in spools {
                match spool.list() {
                    Ok(l) => {
                        entries.extend(l.entries.iter().map(queue_view));
                        for (id, e) in l.damaged {
                            tracing::warn!("queue entry {id} is damaged: {e}");
                        }
                    }
                    Err(e) => return error(e),
                }
            }
            AdminResponse::Queue { entries }
        }
        AdminRequest::QueueFlush => {
            let mut count = 0;
            for spool in spools {
                match spool.flush(unix_now()) {
                    Ok(n) => count += n,
                    Err(e) => return error(e),
                }
            }
            AdminResponse::Flushed { count }
        }
        AdminRequest::QueueDel { id } => {
            let parsed = match QueueId::parse(&id) {
                Ok(i) => i,
                Err(e) => return error(e),
            };
            for spool in spools {
                match spool.delete(&parsed) {
                    Ok(()) => return AdminResponse::Done,
                    Err(StoreError::NoSuchQueueEntry { .. }) => {}
                    Err(e) => return error(e),
                }
            }
            error(StoreError::NoSuchQueueEntry { id })
        }
        _ => AdminResponse::Error {
            message: "not a queue request".into(),
        },
    }
}

/// Offline: every spool of the store (the server is stopped, the lock is held).
pub fn queue_op_offline(config: &Config, req: AdminRequest) -> AdminResponse {
    let policy = retry_policy(&config.outbound);
    let mut spools = Vec::new();
    for (_, dir) in spool_dirs(&config.store.roots[0]) {
        match Outbound::open_dir(&dir, policy.clone()) {
            Ok(o) => spools.push(Arc::new(o)),
            Err(e) => {
                return AdminResponse::Error {
                    message: e.to_string(),
                };
            }
        }
    }
    queue_op(&spools, req)
}

fn queue_view(e: &QueueEntry) -> QueueView {
    QueueView {
        id: e.id.to_string(),
        mail_from: e.mail_from.clone(),
        created_unix: e.created_unix,
        attempts: e.attempts,
        next_attempt_unix: e.next_attempt_unix,
        bytes: e.message_bytes,
        recipients: e
            .recipients
            .iter()
            .map(|r| QueueRecipientView {
                address: r.address.clone(),
                state: match r.state {
                    RecipientState::Pending => "pending",
                    RecipientState::Delivered => "delivered",
                    RecipientState::Failed => "failed",
                }
                .to_owned(),
                diagnostic: r.diagnostic.clone(),
            })
            .collect(),
    }
}

/// The relay's connection: plain TCP, or TLS after STARTTLS.
enum ClientIo {
    Plain(TcpStream),
    Tls(TcpStream, Box<rustls::ClientConnection>),
}

impl ClientIo {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            ClientIo::Plain(s) => s.write_all(data).await,
            ClientIo::Tls(s, tls) => {
                use std::io::Write;
                tls.writer().write_all(data)?;
                flush_tls(s, tls).await
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ClientIo::Plain(s) => s.read(buf).await,
            ClientIo::Tls(s, tls) => loop {
                use std::io::Read;
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if !read_tls(s, tls).await? {
                    return Ok(0);
                }
            },
        }
    }

    /// Runs the client handshake; gives the connection back with the error.
    async fn start_tls(
        self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
        timeout: Duration,
    ) -> Result<ClientIo, (ClientIo, std::io::Error)> {
        let ClientIo::Plain(mut stream) = self else {
            return Err((self, std::io::Error::other("STARTTLS on a TLS connection")));
        };
        let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
            rustls_pki_types::ServerName::try_from("relay.invalid").expect("a valid name")
        });
        let mut tls = match rustls::ClientConnection::new(config, name) {
            Ok(c) => Box::new(c),
            Err(e) => return Err((ClientIo::Plain(stream), std::io::Error::other(e))),
        };
        let handshake = async {
            while tls.is_handshaking() {
                flush_tls(&mut stream, &mut tls).await?;
                if !tls.is_handshaking() {
                    break;
                }
                if !read_tls(&mut stream, &mut tls).await? {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the relay closed the connection during the handshake",
                    ));
                }
            }
            flush_tls(&mut stream, &mut tls).await
        };
        let timer = glommio::timer::sleep(timeout);
        let result = match select(std::pin::pin!(handshake), std::pin::pin!(timer)).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "handshake timed out",
            )),
        };
        match result {
            Ok(()) => Ok(ClientIo::Tls(stream, tls)),
            Err(e) => Err((ClientIo::Plain(stream), e)),
        }
    }

    async fn close(self) {
        match self {
            ClientIo::Plain(mut s) => {
                let _ = s.close().await;
            }
            ClientIo::Tls(mut s, mut tls) => {
                tls.send_close_notify();
                let _ = flush_tls(&mut s, &mut tls).await;
                let _ = s.close().await;
            }
        }
    }
}

async fn flush_tls(
    stream: &mut TcpStream,
    tls: &mut rustls::ClientConnection,
) -> std::io::Result<()> {
    while tls.wants_write() {
        let mut out = Vec::new();
        tls.write_tls(&mut out)?;
        stream.write_all(&out).await?;
    }
    Ok(())
}

/// Reads TLS records from the socket into rustls; `false` at the end of the stream.
async fn read_tls(
    stream: &mut TcpStream,
    tls: &mut rustls::ClientConnection,
) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Ok(false);
    }
    let mut rest = &chunk[..n];
    while !rest.is_empty() {
        tls.read_tls(&mut rest)?;
        tls.process_new_packets()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    flush_tls(stream, tls).await?;
    Ok(true)
}

/// The client side of STARTTLS: verified against `outbound.tls_ca` when set, any
/// certificate otherwise (see `OutboundConfig::tls_ca`).
fn client_tls_config(cfg: &OutboundConfig) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use anyhow::Context;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("tls versions")?;
    let config = if cfg.tls_ca.as_os_str().is_empty() {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let path = &cfg.tls_ca;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("outbound.tls_ca {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("outbound.tls_ca {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("outbound.tls_ca {}", path.display()))?;
        }
        if roots.is_empty() {
            anyhow::bail!(
                "outbound.tls_ca {}: no certificate in the file",
                path.display()
            );
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts the relay's certificate whatever it is, but checks the handshake
/// signatures with it (so the session is still bound to the key it showed).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
