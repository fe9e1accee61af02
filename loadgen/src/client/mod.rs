//! The protocol clients and the per-worker machinery that drives them: pacing (open or closed
//! loop), timing, error accounting, reconnecting with backoff, and stopping on time.

pub mod conn;
pub mod idle;
pub mod imap;
pub mod lmtp;
pub mod pop3;
pub mod populate;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_rustls::TlsConnector;

use crate::limits::{RECONNECT_BACKOFF_MAX, RECONNECT_BACKOFF_MIN};
use crate::message::{self, Sizes};
use crate::mix::Mix;
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::stats::Snapshot;
use conn::{ClientError, sleep_until, timed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Imap,
    Pop3,
    Lmtp,
    Idle,
    Populate,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Imap => "imap",
            Mode::Pop3 => "pop3",
            Mode::Lmtp => "lmtp",
            Mode::Idle => "idle",
            Mode::Populate => "populate",
        }
    }
}

/// Everything a worker needs to know about the run; read-only, shared by all workers.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub mode: Mode,
    pub host: IpAddr,
    pub port: u16,
    pub users: u32,
    pub user_format: String,
    pub password: String,
    pub clients: u64,
    pub workers: usize,
    pub rate: Option<Schedule>,
    pub mix: Option<Mix>,
    pub tls: bool,
    /// `Some(n)`: deliver to the owning shard's LMTP port, `n` shards.
    pub shards: Option<u16>,
    pub request_timeout: Duration,
    pub sizes: Sizes,
    pub messages_per_user: u32,
    pub start: Instant,
    /// No new request is issued after this.
    pub deadline: Instant,
    /// Idle mode: which clients hold a connection (all of them unless a memory ramp steers).
    pub idle: Arc<idle::IdleControl>,
}

impl RunConfig {
    pub fn user(&self, index: u32) -> String {
        self.user_format.replacen("{}", &index.to_string(), 1)
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.host, port)
    }
}

/// A worker's state, owned by its executor thread alone.
pub struct WorkerCtx {
    pub cfg: Arc<RunConfig>,
    pub stats: RefCell<Snapshot>,
    pub in_flight: Cell<u64>,
    /// Connections currently idling (idle mode).
    pub held: Cell<u64>,
    pub tls: Option<TlsConnector>,
    /// Pre-generated messages for APPEND and LMTP, so generating them costs nothing per request.
    pub pool: Vec<Rc<[u8]>>,
}

impl WorkerCtx {
    pub fn new(cfg: Arc<RunConfig>, seed: u64) -> WorkerCtx {
        let tls = cfg.tls.then(conn::insecure_tls_connector);
        let mut rng = Rng::new(seed);
        let pool_len = match cfg.mode {
            Mode::Imap | Mode::Lmtp => 48,
            _ => 0,
        };
        let pool = (0..pool_len)
            .map(|i| {
                let size = message::target_size(cfg.sizes, &mut rng);
                let from = message::SENDERS[i % message::SENDERS.len()];
                Rc::from(message::generate(
                    &mut rng,
                    from,
                    "undisclosed-recipients:;",
                    size,
                ))
            })
            .collect();
        WorkerCtx {
            cfg,
            stats: RefCell::new(Snapshot::default()),
            in_flight: Cell::new(0),
            held: Cell::new(0),
            tls,
            pool,
        }
    }

    pub fn record(&self, command: &'static str, since: Instant) {
        let us = since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.stats.borrow_mut().record(command, us);
    }

    pub fn error(&self, reason: &str) {
        self.stats.borrow_mut().error(reason);
    }

    pub fn count(&self, counter: &'static str, n: u64) {
        self.stats.borrow_mut().count(counter, n);
    }

    pub fn random_user(&self, rng: &mut Rng) -> String {
        self.cfg
            .user(1 + rng.below(u64::from(self.cfg.users.max(1))) as u32)
    }

    pub fn random_message(&self, rng: &mut Rng) -> Rc<[u8]> {
        match self.pool.len() {
            0 => Rc::from(message::generate(
                rng,
                message::SENDERS[0],
                "x@example.com",
                3000,
            )),
            n => self.pool[rng.below(n as u64) as usize].clone(),
        }
    }

    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.cfg.deadline || self.cfg.idle.is_done()
    }

    /// Takes the interval's measurements, setting the gauges first.
    pub fn take_snapshot(&self) -> Snapshot {
        let mut s = std::mem::take(&mut *self.stats.borrow_mut());
        if self.cfg.mode == Mode::Idle {
            s.gauges.insert("idle_held", self.held.get());
        }
        s
    }
}

/// A protocol session that the generic driver can open, run commands on, and close.
pub(crate) trait Session: Sized {
    const PROTO: &'static str;

    /// Connect, greet, authenticate (and SELECT): recorded as `login`.
    async fn open(ctx: &Rc<WorkerCtx>, rng: &mut Rng) -> Result<Self, ClientError>;

    /// Which command to run next.
    fn pick(&self, ctx: &WorkerCtx, rng: &mut Rng) -> &'static str;

    /// Runs `command`; returns the name to record it under (a command that cannot run, like a
    /// FETCH in an empty mailbox, runs another and says so).
    async fn run(
        &mut self,
        ctx: &Rc<WorkerCtx>,
        command: &'static str,
        rng: &mut Rng,
    ) -> Result<&'static str, ClientError>;

    /// Polite goodbye at the end of the run (LOGOUT/QUIT); errors are ignored.
    async fn close(self, ctx: &Rc<WorkerCtx>);
}

/// Intended send times of one client: on the open-loop schedule, or "now" when closed loop.
struct Pacer {
    schedule: Option<Schedule>,
    client: u64,
    next: u64,
}

impl Pacer {
    /// Waits for the next send time; `None` once it falls past the deadline.
    async fn next(&mut self, cfg: &RunConfig) -> Option<Instant> {
        let Some(schedule) = self.schedule else {
            let now = Instant::now();
            return (now < cfg.deadline).then_some(now);
        };
        let t = cfg.start + schedule.intended_offset(self.client, self.next);
        self.next += 1;
        if t >= cfg.deadline {
            return None;
        }
        sleep_until(t).await;
        Some(t)
    }
}

/// Sleeps for the current backoff (never past the deadline) and doubles it.
pub(crate) async fn backoff(ctx: &WorkerCtx, delay: &mut Duration) {
    let until = (Instant::now() + *delay).min(ctx.cfg.deadline);
    sleep_until(until).await;
    *delay = (*delay * 2).min(RECONNECT_BACKOFF_MAX);
}

/// One client's whole run: open a session, run the mix until the deadline, reconnect with
/// backoff after fatal errors.
pub(crate) async fn drive<S: Session>(ctx: Rc<WorkerCtx>, client: u64, mut rng: Rng) {
    let mut pacer = Pacer {
        schedule: ctx.cfg.rate,
        client,
        next: 0,
    };
    let mut delay = RECONNECT_BACKOFF_MIN;
    while !ctx.past_deadline() {
        let t0 = Instant::now();
        let opened = timed(ctx.cfg.request_timeout, "login", S::open(&ctx, &mut rng)).await;
        let mut session = match opened {
            Ok(s) => {
                ctx.record("login", t0);
                delay = RECONNECT_BACKOFF_MIN;
                s
            }
            Err(e) => {
                ctx.error(&e.reason(S::PROTO, "login"));
                backoff(&ctx, &mut delay).await;
                continue;
            }
        };
        loop {
            let Some(intended) = pacer.next(&ctx.cfg).await else {
                session.close(&ctx).await;
                return;
            };
            let command = session.pick(&ctx, &mut rng);
            ctx.in_flight.set(ctx.in_flight.get() + 1);
            let result = timed(
                ctx.cfg.request_timeout,
                command,
                session.run(&ctx, command, &mut rng),
            )
            .await;
            ctx.in_flight.set(ctx.in_flight.get() - 1);
            match result {
                Ok(recorded) => ctx.record(recorded, intended),
                Err(e) => {
                    ctx.error(&e.reason(S::PROTO, command));
                    if e.is_fatal() {
                        backoff(&ctx, &mut delay).await;
                        break;
                    }
                }
            }
        }
    }
}
