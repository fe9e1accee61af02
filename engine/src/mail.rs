//! A shard's mail: the store's `Mailstore` and the group commit that makes its
//! mutations durable (DESIGN §3). Sessions stage a mutation and `commit` it; one
//! committer task per shard syncs the journal on a helper thread, so every
//! mutation staged while a sync runs shares the next one. Nothing is acknowledged
//! before its sync returned and it was applied.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::select;
use store::delivery::{CheckpointTarget, Mailstore, Outcome, Ticket};
use store::journal::SyncTarget;
use store::{Address, Store, StoreError};

use crate::event::LocalEvent;
use crate::limits::CHECKPOINT_POLL_MS;
use crate::shutdown::Shutdown;

pub struct Mail {
    ms: RefCell<Mailstore>,
    /// Wakes the committer: something was staged.
    kick: LocalEvent,
    /// Fired after every sync: waiters look for their ticket's outcome.
    progress: LocalEvent,
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

    /// The committer: syncs whatever was staged, one sync at a time, and
    /// checkpoints when the journal is due. Ends when the shard stops and nothing
    /// staged is left.
    pub async fn run_committer(self: Rc<Self>, shutdown: Shutdown, shard: usize) {
        loop {
            self.sync_all(shard).await;
            self.checkpoint_if_due(shard).await;
            if shutdown.is_triggered() {
                // Sessions are gone; one last pass for what they staged, then a
                // checkpoint, so a cleanly stopped store has an empty journal and
                // offline tools (reconstruct) start from the user trees alone.
                self.sync_all(shard).await;
                self.checkpoint(shard).await;
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
            let (target, result) = off_thread(target, SyncTarget::run).await;
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

    async fn checkpoint_if_due(&self, shard: usize) {
        if self.ms.borrow().checkpoint_due() {
            self.checkpoint(shard).await;
        }
    }

    async fn checkpoint(&self, shard: usize) {
        let target = match self.ms.borrow_mut().prepare_checkpoint() {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("shard {shard}: checkpoint: {e}");
                return;
            }
        };
        let (target, result) = off_thread(target, CheckpointTarget::run).await;
        match result {
            Ok(()) => {
                if let Err(e) = self.ms.borrow_mut().finish_checkpoint(target) {
                    tracing::error!("shard {shard}: checkpoint: {e}");
                }
            }
            Err(e) => tracing::error!("shard {shard}: checkpoint syncfs: {e}"),
        }
    }
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
