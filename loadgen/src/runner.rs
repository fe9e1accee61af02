//! The main thread's side of a run: start one pinned glommio worker per core, split the
//! clients across them, merge their per-second snapshots, print the progress line, and stop
//! on time — abandoning whatever is still outstanding once the grace period is over.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use glommio::{LocalExecutorBuilder, Placement};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::client::conn::sleep_until;
use crate::client::imap::ImapSession;
use crate::client::lmtp::LmtpSession;
use crate::client::pop3::Pop3Session;
use crate::client::{Mode, RunConfig, WorkerCtx, drive, idle, populate};
use crate::limits::{GRACE, SNAPSHOT_INTERVAL};
use crate::rng::Rng;
use crate::rss::{Ramp, run_ramp};
use crate::stats::{Report, Sample, Snapshot, human_us};

enum WorkerMsg {
    Interval(usize, Snapshot),
    Done {
        worker: usize,
        last: Snapshot,
        in_flight: u64,
    },
}

/// Runs the load described by `cfg` to the end and returns the merged report. `memory`:
/// in idle mode, the server's pid and the ramp that measures its memory per connection (the
/// ramp then decides when the run ends).
pub fn run(cfg: RunConfig, memory: Option<(u32, Ramp)>) -> anyhow::Result<Report> {
    let memory = memory.filter(|_| cfg.mode == Mode::Idle);
    if let Some((pid, _)) = memory {
        std::fs::metadata(format!("/proc/{pid}"))
            .map_err(|e| anyhow::anyhow!("--server-pid {pid}: {e}"))?;
    }
    let cfg = Arc::new(cfg);
    let ramp = memory.map(|(pid, ramp)| {
        let cfg = cfg.clone();
        std::thread::spawn(move || run_ramp(pid, ramp, &cfg.idle, cfg.deadline))
    });
    let (tx, rx) = mpsc::channel();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for w in 0..cfg.workers {
        spawn_worker(cfg.clone(), w, w % cpus, tx.clone())?;
    }
    drop(tx);

    let cutoff = cfg.deadline + GRACE;
    let bar = (cfg.mode == Mode::Populate).then(|| progress_bar(&cfg));
    let mut totals = Snapshot::default();
    let mut interval = Snapshot::default();
    let mut gauges = vec![0u64; cfg.workers];
    let mut timeline = Vec::new();
    let mut done = 0;
    let mut abandoned = 0;
    let mut finished_at = None;
    let mut next_tick = cfg.start + SNAPSHOT_INTERVAL;
    let mut best_held = 0u64;
    while done < cfg.workers {
        let now = Instant::now();
        if now >= cutoff {
            break;
        }
        match rx.recv_timeout(next_tick.min(cutoff).saturating_duration_since(now)) {
            Ok(WorkerMsg::Interval(w, mut s)) => {
                gauges[w] = s.gauges.remove("idle_held").unwrap_or(0);
                interval.merge(&s);
            }
            Ok(WorkerMsg::Done {
                worker,
                mut last,
                in_flight,
            }) => {
                gauges[worker] = 0;
                last.gauges.clear();
                interval.merge(&last);
                abandoned += in_flight;
                done += 1;
                if done == cfg.workers {
                    finished_at = Some(Instant::now());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_tick {
            let t_s = (next_tick - cfg.start).as_secs_f64();
            let held: u64 = gauges.iter().sum();
            timeline.push(Sample {
                t_s,
                ops_per_s: interval.ops() as f64 / SNAPSHOT_INTERVAL.as_secs_f64(),
                errors: interval.error_count(),
                p99_us: interval.p99_us_all(),
            });
            totals.merge(&interval);
            best_held = best_held.max(held);
            match &bar {
                Some(bar) => {
                    bar.set_position(totals.ops());
                    bar.set_message(format!("errors {}", totals.error_count()));
                }
                None => eprintln!(
                    "[{t_s:>4.0}s] {:>9.0} ops/s  errors {:<5} p99 {:<8}{}",
                    interval.ops() as f64 / SNAPSHOT_INTERVAL.as_secs_f64(),
                    interval.error_count(),
                    human_us(interval.p99_us_all()),
                    if cfg.mode == Mode::Idle {
                        format!(" held {held}")
                    } else {
                        String::new()
                    }
                ),
            }
            interval = Snapshot::default();
            next_tick += SNAPSHOT_INTERVAL;
        }
    }
    totals.merge(&interval);
    if let Some(bar) = bar {
        bar.set_position(totals.ops());
        bar.finish();
    }
    if done < cfg.workers {
        eprintln!(
            "loadgen: {} worker(s) still busy after the {}s grace period; abandoning them",
            cfg.workers - done,
            GRACE.as_secs()
        );
    }

    let end = finished_at.unwrap_or_else(Instant::now);
    let elapsed = match cfg.mode {
        Mode::Populate => end - cfg.start,
        _ => end.min(cfg.deadline) - cfg.start,
    };
    let mut extra = serde_json::Map::new();
    extra.insert("clients".into(), json!(cfg.clients));
    extra.insert("workers".into(), json!(cfg.workers));
    extra.insert("open_loop".into(), json!(cfg.rate.is_some()));
    if cfg.mode == Mode::Idle {
        extra.insert("idle_held".into(), json!(best_held));
    }
    if let (Some(handle), Some((_, ramp))) = (ramp, memory) {
        let result = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the memory ramp panicked"))?;
        extra.insert("memory_warmup".into(), json!(ramp.warmup));
        extra.insert("memory_steps".into(), json!(ramp.steps));
        extra.insert("memory_baseline".into(), json!(result.baseline));
        extra.insert("memory_points".into(), json!(result.points));
        if let Some((rss, pss)) = result.slopes() {
            extra.insert("rss_per_conn_bytes".into(), json!(rss));
            extra.insert("pss_per_conn_bytes".into(), json!(pss));
        }
        if let Some(warning) = result.warning() {
            eprintln!("loadgen idle: warning: {warning}");
            extra.insert("memory_warning".into(), json!(warning));
        }
        if let Some(why) = result.incomplete {
            extra.insert("memory_incomplete".into(), json!(why));
        }
    }
    Ok(Report {
        mode: cfg.mode.name().to_string(),
        elapsed_s: elapsed.as_secs_f64(),
        totals,
        timeline,
        abandoned,
        extra,
    })
}

fn progress_bar(cfg: &RunConfig) -> ProgressBar {
    let total = u64::from(cfg.users) * u64::from(cfg.messages_per_user);
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} messages  {per_sec}  eta {eta}  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn spawn_worker(
    cfg: Arc<RunConfig>,
    worker: usize,
    cpu: usize,
    tx: Sender<WorkerMsg>,
) -> anyhow::Result<()> {
    let name = format!("loadgen-{worker}");
    let start = {
        let (cfg, tx) = (cfg.clone(), tx.clone());
        move || async move { worker_main(cfg, worker, tx).await }
    };
    // Pinned when the CPU is ours to pin to; unpinned (e.g. in a restricted cpuset) otherwise.
    let spawned = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(&name)
        .spawn(start.clone())
        .or_else(|_| {
            LocalExecutorBuilder::new(Placement::Unbound)
                .name(&name)
                .spawn(start)
        });
    // The join handle is dropped: the main thread never waits on a worker, it waits on messages
    // with a deadline.
    spawned
        .map(drop)
        .map_err(|e| anyhow::anyhow!("starting worker {worker}: {e}"))
}

async fn worker_main(cfg: Arc<RunConfig>, worker: usize, tx: Sender<WorkerMsg>) {
    let seed = Rng::from_time(worker as u64 + 1).next_u64();
    let ctx = std::rc::Rc::new(WorkerCtx::new(cfg.clone(), seed));
    let mut tasks = Vec::new();
    for client in (0..cfg.clients).filter(|c| *c % cfg.workers as u64 == worker as u64) {
        let rng = Rng::new(seed ^ client.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ctx = ctx.clone();
        tasks.push(match cfg.mode {
            Mode::Imap => glommio::spawn_local(drive::<ImapSession>(ctx, client, rng)),
            Mode::Pop3 => glommio::spawn_local(drive::<Pop3Session>(ctx, client, rng)),
            Mode::Lmtp => glommio::spawn_local(drive::<LmtpSession>(ctx, client, rng)),
            Mode::Idle => glommio::spawn_local(idle::hold(ctx, client)),
            Mode::Populate => glommio::spawn_local(populate::fill(ctx, client)),
        });
    }
    let clients_done = async {
        for t in tasks {
            t.await;
        }
    };
    let ticker = async {
        let mut next = cfg.start + SNAPSHOT_INTERVAL;
        loop {
            sleep_until(next).await;
            next += SNAPSHOT_INTERVAL;
            if tx
                .send(WorkerMsg::Interval(worker, ctx.take_snapshot()))
                .is_err()
            {
                return;
            }
        }
    };
    // Give up a little before the main thread does, so the last snapshot still arrives.
    let cutoff = cfg.deadline + GRACE.saturating_sub(Duration::from_millis(500));
    clients_done.or(ticker).or(sleep_until(cutoff)).await;
    let _ = tx.send(WorkerMsg::Done {
        worker,
        last: ctx.take_snapshot(),
        in_flight: ctx.in_flight.get(),
    });
}
