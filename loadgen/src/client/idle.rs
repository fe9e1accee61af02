//! Idle mode: each client logs in, SELECTs INBOX and IDLEs until the deadline, as a mail client
//! left open on a desk does. What matters here is what a held connection costs the server.
//!
//! With `--server-pid` the main thread steers how many connections are held at once through
//! [`IdleControl`] (a warm-up batch, then a ramp of steps; see `crate::memory`): client `c`
//! holds a connection only while `c < level`, and logs out when the level drops below it.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use super::conn::{ClientError, sleep_until, timed};
use super::imap::ImapSession;
use super::{WorkerCtx, backoff};
use crate::limits::{IDLE_LEVEL_POLL, RECONNECT_BACKOFF_MIN};

/// Shared by the main thread and every worker: which clients hold a connection now, and how
/// many connections are idling over all workers.
#[derive(Debug)]
pub struct IdleControl {
    /// Clients with an index below this hold a connection; the others wait, or log out.
    level: AtomicU64,
    /// Connections idling now (logged in, INBOX selected, IDLE continuation received).
    held: AtomicU64,
    /// The ramp is over: every client logs out and ends.
    done: AtomicBool,
}

impl Default for IdleControl {
    /// Every client holds a connection until the deadline.
    fn default() -> IdleControl {
        IdleControl {
            level: AtomicU64::new(u64::MAX),
            held: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }
}

impl IdleControl {
    pub fn set_level(&self, level: u64) {
        self.level.store(level, Ordering::SeqCst);
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Ends the run: every client logs out.
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        self.set_level(0);
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    fn active(&self, client: u64) -> bool {
        client < self.level.load(Ordering::SeqCst)
    }

    /// Resolves once `client` is no longer among those holding a connection.
    async fn until_inactive(&self, client: u64) {
        while self.active(client) {
            glommio::timer::sleep(IDLE_LEVEL_POLL).await;
        }
    }
}

/// Why a held connection is given up.
enum Ending {
    Deadline,
    /// The ramp no longer wants this client's connection (or is over).
    Released,
}

/// Client `client`: spread over the users in turn, so that with at least as many users as
/// clients every connection belongs to another user.
pub async fn hold(ctx: Rc<WorkerCtx>, client: u64) {
    let control = ctx.cfg.idle.clone();
    let user = ctx
        .cfg
        .user(1 + (client % u64::from(ctx.cfg.users.max(1))) as u32);
    let mut delay = RECONNECT_BACKOFF_MIN;
    while !ctx.past_deadline() {
        if !control.active(client) {
            glommio::timer::sleep(IDLE_LEVEL_POLL).await;
            continue;
        }
        let t0 = Instant::now();
        let opened = timed(ctx.cfg.request_timeout, "login", async {
            let mut s = ImapSession::connect(&ctx).await?;
            s.login_select(&user, &ctx.cfg.password).await?;
            Ok(s)
        })
        .await;
        let mut session = match opened {
            Ok(s) => s,
            Err(e) => {
                ctx.error(&e.reason("imap", "login"));
                backoff(&ctx, &mut delay).await;
                continue;
            }
        };
        ctx.record("login", t0);
        let t1 = Instant::now();
        let tag = match timed(ctx.cfg.request_timeout, "IDLE", session.idle_start()).await {
            Ok(tag) => tag,
            Err(e) => {
                ctx.error(&e.reason("imap", "idle"));
                backoff(&ctx, &mut delay).await;
                continue;
            }
        };
        ctx.record("idle_start", t1);
        delay = RECONNECT_BACKOFF_MIN;
        ctx.held.set(ctx.held.get() + 1);
        control.held.fetch_add(1, Ordering::SeqCst);
        let held = async {
            loop {
                match session.idle_wait().await {
                    Ok(()) => ctx.count("idle_pushes", 1),
                    Err(e) if e.is_fatal() => return Err(e),
                    Err(e) => ctx.error(&e.reason("imap", "idle")),
                }
            }
        }
        .or(async {
            sleep_until(ctx.cfg.deadline).await;
            Ok::<Ending, ClientError>(Ending::Deadline)
        })
        .or(async {
            control.until_inactive(client).await;
            Ok::<Ending, ClientError>(Ending::Released)
        })
        .await;
        ctx.held.set(ctx.held.get() - 1);
        control.held.fetch_sub(1, Ordering::SeqCst);
        match held {
            Ok(ending) => {
                // At the deadline the run must end within its grace period; a connection the
                // ramp released (before its deadline) has the usual time to say goodbye, which
                // a server closing a thousand of them at once may need.
                let limit = match ending {
                    Ending::Deadline => ctx.cfg.request_timeout.min(Duration::from_secs(1)),
                    Ending::Released => ctx.cfg.request_timeout,
                };
                let bye = timed(limit, "DONE", async {
                    session.idle_done(&tag).await?;
                    session.logout().await
                })
                .await;
                if let Err(e) = bye {
                    ctx.error(&e.reason("imap", "idle_done"));
                }
            }
            Err(e) => {
                ctx.error(&e.reason("imap", "idle"));
                backoff(&ctx, &mut delay).await;
            }
        }
    }
}
