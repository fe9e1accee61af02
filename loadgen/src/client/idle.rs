//! Idle mode: each client logs in, SELECTs INBOX and IDLEs until the deadline, as a mail client
//! left open on a desk does. What matters here is what a held connection costs the server.

use std::rc::Rc;
use std::time::Instant;

use futures_lite::FutureExt;

use super::conn::{ClientError, sleep_until, timed};
use super::imap::ImapSession;
use super::{WorkerCtx, backoff};
use crate::limits::RECONNECT_BACKOFF_MIN;
use crate::rng::Rng;

pub async fn hold(ctx: Rc<WorkerCtx>, mut rng: Rng) {
    let mut delay = RECONNECT_BACKOFF_MIN;
    while !ctx.past_deadline() {
        let t0 = Instant::now();
        let opened = timed(ctx.cfg.request_timeout, "login", async {
            let mut s = ImapSession::connect(&ctx).await?;
            let user = ctx.random_user(&mut rng);
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
            Ok::<(), ClientError>(())
        })
        .await;
        ctx.held.set(ctx.held.get() - 1);
        match held {
            Ok(()) => {
                let limit = ctx
                    .cfg
                    .request_timeout
                    .min(std::time::Duration::from_secs(1));
                let bye = timed(limit, "DONE", async {
                    session.idle_done(&tag).await?;
                    session.logout().await
                })
                .await;
                if let Err(e) = bye {
                    ctx.error(&e.reason("imap", "idle_done"));
                }
                return;
            }
            Err(e) => {
                ctx.error(&e.reason("imap", "idle"));
                backoff(&ctx, &mut delay).await;
            }
        }
    }
}
