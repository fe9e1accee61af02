//! Populate mode: fills accounts 1..=N with M messages each over LMTP. Message `j` of user `i`
//! is generated from a seed made of `(i, j)`, so every server filled this way holds the same
//! corpus.

use std::rc::Rc;
use std::time::Instant;

use super::conn::timed;
use super::lmtp::LmtpSession;
use super::{WorkerCtx, backoff};
use crate::limits::RECONNECT_BACKOFF_MIN;
use crate::message::{self, SENDERS};
use crate::rng::Rng;

/// Attempts per message before it is given up (each failure is counted as an error).
const ATTEMPTS_MAX: u32 = 3;

pub fn message_seed(user: u32, index: u32) -> u64 {
    (u64::from(user) << 32 | u64::from(index)) ^ 0x6d73_6773_746f_7265
}

pub async fn fill(ctx: Rc<WorkerCtx>, client: u64) {
    let cfg = ctx.cfg.clone();
    let mut session = LmtpSession::new();
    let mut delay = RECONNECT_BACKOFF_MIN;
    let users = (1..=cfg.users).filter(|u| u64::from(u - 1) % cfg.clients == client);
    for user in users {
        let address = cfg.user(user);
        for j in 0..cfg.messages_per_user {
            let mut rng = Rng::new(message_seed(user, j));
            let size = message::target_size(cfg.sizes, &mut rng);
            let from = SENDERS[rng.below(SENDERS.len() as u64) as usize];
            let msg = message::generate(&mut rng, from, &address, size);
            let rcpts = [address.clone()];
            for _ in 0..ATTEMPTS_MAX {
                if ctx.past_deadline() {
                    return;
                }
                let t0 = Instant::now();
                let r = timed(
                    cfg.request_timeout,
                    "deliver",
                    session.deliver_all(&ctx, from, &rcpts, &msg),
                )
                .await;
                match r {
                    Ok(n) => {
                        ctx.record("deliver", t0);
                        ctx.count("recipients_delivered", n);
                        delay = RECONNECT_BACKOFF_MIN;
                        break;
                    }
                    Err(e) => {
                        ctx.error(&e.reason("lmtp", "deliver"));
                        backoff(&ctx, &mut delay).await;
                    }
                }
            }
        }
    }
    let _ = timed(cfg.request_timeout, "quit", async {
        session.quit_all().await;
        Ok(())
    })
    .await;
}
