//! A shard's mail: the store's `Mailstore` and the group commit that makes its
//! mutations durable (DESIGN §3). Sessions stage a mutation and `commit` it; one
//! committer task per shard syncs the journal on a helper thread, so every
//! mutation staged while a sync runs shares the next one. Nothing is acknowledged
//! before its sync returned and it was applied.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::select;
use store::delivery::{CheckpointTarget, Mailstore, Outcome, Ticket};
use store::journal::SyncTarget;
use store::{Address, Store, StoreError};

use crate::event::LocalEvent;
use crate::limits::{CHECKPOINT_POLL_MS, SLOW_SYNC_MS};
use crate::shutdown::Shutdown;

pub struct Mail {
    ms: RefCell<Mailstore>,
    /// Wakes the committer: something was staged.
    kick: LocalEvent,
    /// Fired after every sync: waiters look for their ticket's outcome.
    progress: LocalEvent,
    /// A checkpoint's syncfs runs (beside the committer).
    checkpointing: Cell<bool>,
    /// Group commits since the last checkpoint and their time off the shard thread in
    /// microseconds (fdatasync and message files), for the checkpoint's log line.
    syncs: Cell<(u64, u64)>,
}

impl Mail {
    /// Opens the shard's mail store, replaying its journal (start-up only).
    pub fn open(store: Arc<Store>, shard: usize) -> Result<Mail, StoreError> {
        let (ms, report) = Mailstore::open(store, shard as u32)?;
        if report.records > 0 {
            tracing::info!("shard {shard}: replayed {} journal records", report.records);
        }
        for r in &report.repairs {
            tracing::warn!("shard {shard}: repaired {r}");
        }
        for f in &report.failures {
            tracing::error!("shard {shard}: journal replay: {f}");
        }
        Ok(Mail {
            ms: RefCell::new(ms),
            kick: LocalEvent::default(),
            progress: LocalEvent::default(),
            checkpointing: Cell::new(false),
            syncs: Cell::new((0, 0)),
        })
    }

    /// Runs `f` on the store. Never hold the borrow across an await.
    pub fn with<R>(&self, f: impl FnOnce(&mut Mailstore) -> R) -> R {
        let mut ms = self.ms.borrow_mut();
        let r = f(&mut ms);
        for repair in ms.take_repairs() {
            tracing::warn!("repaired {repair}");
        }
        r
    }

    /// Waits until `ticket` is durable and applied; returns its outcome.
    pub async fn commit(&self, ticket: Ticket) -> Result<Outcome, StoreError> {
        self.kick.notify();
        loop {
            let wait = self.progress.wait();
            if let Some(result) = self.ms.borrow_mut().complete(&ticket) {
                return result;
            }
            wait.await;
        }
    }

    /// Online reconstruct of a user owned by this shard: the file work runs on a thread
    /// of its own while the shard keeps serving every other user; the user's own sessions
    /// and deliveries are refused ("retry") until it is done. Not glommio's blocking pool:
    /// a rebuild takes seconds and the journal's fdatasyncs must not queue behind it.
    pub async fn reconstruct(
        &self,
        store: Arc<Store>,
        user: Address,
    ) -> Result<store::reconstruct::Report, StoreError> {
        let seq = self.with(|ms| ms.begin_reconstruct(&user))?;
        let (reply, answer) = futures::channel::oneshot::channel();
        let who = user.clone();
        let spawned = std::thread::Builder::new()
            .name("reconstruct".into())
            .spawn(move || {
                let report =
                    store::reconstruct::reconstruct_user_at(&store, &who, Some(seq), |_| {});
                let _ = reply.send(report);
            });
        let report = match spawned {
            Ok(_) => answer.await.unwrap_or_else(|_| {
                Err(StoreError::io(
                    "reconstruct",
                    std::io::Error::other("the reconstruct thread ended without an answer"),
                ))
            }),
            Err(e) => Err(StoreError::io("reconstruct", e)),
        };
        self.with(|ms| ms.end_reconstruct(&user));
        report
    }

    /// The committer: syncs whatever was staged, one sync at a time, and starts a
    /// checkpoint when the journal is due. The checkpoint runs beside it (its own task,
    /// its `syncfs` on a thread of its own): syncs and acknowledgements never wait for a
    /// checkpoint, which may flush hundreds of megabytes (DESIGN §3; the crash argument
    /// in `store::journal` needs only that the retired records were applied before the
    /// syncfs began). Ends when the shard stops and nothing staged is left.
    pub async fn run_committer(self: Rc<Self>, shutdown: Shutdown, shard: usize) {
        let mut checkpoint: Option<glommio::Task<()>> = None;
        loop {
            self.sync_all(shard).await;
            if let Some(done) = checkpoint.take_if(|_| !self.checkpointing.get()) {
                done.await;
            }
            if checkpoint.is_none()
                && self.ms.borrow().checkpoint_due()
                && let Some(target) = self.prepare_checkpoint(shard)
            {
                self.checkpointing.set(true);
                let mail = self.clone();
                checkpoint = Some(glommio::spawn_local(async move {
                    mail.run_checkpoint(shard, target).await;
                    mail.checkpointing.set(false);
                    mail.kick.notify();
                }));
            }
            if shutdown.is_triggered() {
                // Sessions are gone; one last pass for what they staged, then a
                // checkpoint, so a cleanly stopped store has an empty journal and
                // offline tools (reconstruct) start from the user trees alone.
                if let Some(running) = checkpoint.take() {
                    running.await;
                }
                self.sync_all(shard).await;
                if let Some(target) = self.prepare_checkpoint(shard) {
                    self.run_checkpoint(shard, target).await;
                }
                return;
            }
            let kick = self.kick.wait();
            let stop = shutdown.wait();
            let poll = glommio::timer::sleep(Duration::from_millis(CHECKPOINT_POLL_MS));
            let _ = select(
                std::pin::pin!(kick),
                std::pin::pin!(select(stop, std::pin::pin!(poll))),
            )
            .await;
        }
    }

    async fn sync_all(&self, shard: usize) {
        loop {
            let target = match self.ms.borrow_mut().sync_target() {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!("shard {shard}: journal: {e}");
                    return;
                }
            };
            let started = std::time::Instant::now();
            let (target, result) = off_thread(target, SyncTarget::run).await;
            let took = started.elapsed();
            let (n, us) = self.syncs.get();
            let us = us.saturating_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            self.syncs.set((n + 1, us));
            if took >= Duration::from_millis(SLOW_SYNC_MS) {
                tracing::warn!(
                    "shard {shard}: journal sync took {} ms (deliveries waited for it)",
                    took.as_millis()
                );
            }
            match result {
                Ok(()) => {
                    self.ms.borrow_mut().synced(&target);
                }
                Err(e) => {
                    tracing::error!("shard {shard}: journal sync failed: {e}; refusing writes");
                    self.ms.borrow_mut().sync_failed(&e);
                }
            }
            self.progress.notify();
        }
    }

    /// Retires the journal's current segment; `Some` when every record of the retired
    /// segments is applied (after `sync_all` it is).
    fn prepare_checkpoint(&self, shard: usize) -> Option<CheckpointTarget> {
        match self.ms.borrow_mut().prepare_checkpoint() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("shard {shard}: checkpoint: {e}");
                None
            }
        }
    }

    /// The checkpoint's syncfs, then the retired segments and expunged files go.
    async fn run_checkpoint(&self, shard: usize, target: CheckpointTarget) {
        let started = std::time::Instant::now();
        let Some((target, result)) = own_thread(target, CheckpointTarget::run).await else {
            // Like a failed syncfs: no checkpoint again until the shard restarts (and
            // replays every segment kept).
            tracing::error!("shard {shard}: the checkpoint thread died");
            return;
        };
        let (groups, us) = self.syncs.replace((0, 0));
        tracing::info!(
            "shard {shard}: checkpoint: syncfs took {} ms; {groups} group commits since the \
             last, {} us each on average",
            started.elapsed().as_millis(),
            us / groups.max(1)
        );
        match result {
            Ok(()) => {
                let files = match self.ms.borrow_mut().finish_checkpoint_segments(target) {
                    Ok(files) => files,
                    Err(e) => {
                        tracing::error!("shard {shard}: checkpoint: {e}");
                        return;
                    }
                };
                // The unlinks run on a thread of their own: on the shard they held every
                // session for as long as thousands of unlinks take.
                let failed = if files.is_empty() {
                    Vec::new()
                } else {
                    let paths = files.paths().to_vec();
                    match on_own_thread("expunged", move || files.remove()).await {
                        Some(failed) => failed,
                        None => paths
                            .into_iter()
                            .map(|p| (p, "the removing thread died".to_owned()))
                            .collect(),
                    }
                };
                self.ms.borrow_mut().expunged_removed(failed);
            }
            // The retired segments stay (replay keeps every acknowledged record) and no
            // checkpoint starts again: after a failed syncfs, what reached the disk is
            // unknown, and a later syncfs would not report the loss.
            Err(e) => tracing::error!("shard {shard}: checkpoint syncfs: {e}"),
        }
    }
}

/// Runs a long flush (a checkpoint's `syncfs`) on a thread of its own, not the shard's
/// helper pool: the journal's fdatasyncs must not queue behind it. When no thread can be
/// started it runs on the helper pool after all. `None`: the thread died (a panic) and
/// took the target with it.
async fn own_thread<T: Send + 'static>(
    target: T,
    run: fn(&T) -> std::io::Result<()>,
) -> Option<(T, std::io::Result<()>)> {
    on_own_thread("checkpoint", move || {
        let r = run(&target);
        (target, r)
    })
    .await
}

/// Runs blocking work on a thread of its own (falling back to the shard's helper pool
/// when no thread can be started). `None`: the work panicked.
async fn on_own_thread<R: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let slot = Arc::new(std::sync::Mutex::new(Some(work)));
    let (reply, answer) = futures::channel::oneshot::channel();
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let taken = theirs.lock().ok().and_then(|mut t| t.take());
            drop(theirs);
            if let Some(work) = taken {
                let _ = reply.send(work());
            }
        });
    if spawned.is_ok() {
        return answer.await.ok();
    }
    let back = slot.lock().ok().and_then(|mut t| t.take())?;
    Some(glommio::executor().spawn_blocking(back).await)
}

/// Runs a blocking flush (fdatasync, syncfs) on the shard's helper thread and gives
/// the target back with the result.
async fn off_thread<T: Send + 'static>(
    target: T,
    run: fn(&T) -> std::io::Result<()>,
) -> (T, std::io::Result<()>) {
    glommio::executor()
        .spawn_blocking(move || {
            let r = run(&target);
            (target, r)
        })
        .await
}
