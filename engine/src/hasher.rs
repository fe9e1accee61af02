//! Password hashing off the shards (issue 7: "hashing ... run off the shard
//! threads"). argon2id costs tens of milliseconds of CPU by design; running it on
//! glommio's per-shard blocking pool would queue journal syncs and file work behind
//! a login storm. This is its own pool, shared by all shards, with a bounded
//! queue: when it is full, logins fail fast as "unavailable" instead of piling up.
//! The password sources outside the profile (passwd-file, shadow, LDAP) run their
//! blocking calls here too.

use std::sync::Arc;

use futures::channel::oneshot;
use store::Address;
use store::auth::{ServerKey, VerifierOptions, Verifiers};

use crate::limits::HASH_QUEUE_MAX;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the pool; cheap to clone, `Send`.
#[derive(Clone)]
pub struct Hasher {
    tx: flume::Sender<Job>,
}

impl Hasher {
    /// Starts `threads` hashing threads; they end when every handle is dropped.
    pub fn start(threads: usize) -> std::io::Result<Hasher> {
        let (tx, rx) = flume::bounded::<Job>(HASH_QUEUE_MAX);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("hasher-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(Hasher { tx })
    }

    /// Runs `work` on the pool. `None` when the pool is saturated (the caller
    /// answers "try again later") or the work panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .ok()?;
        rx.await.ok()
    }

    /// Verifies `password` against a profile's stored value: a `Verifiers` line or
    /// a bare argon2id PHC string. A damaged value verifies nothing.
    pub async fn verify(&self, stored: &str, password: &[u8]) -> Option<bool> {
        let stored = stored.to_owned();
        let password = password.to_vec();
        self.run(move || {
            Verifiers::parse(&stored)
                .map(|v| v.verify(&password))
                .unwrap_or(false)
        })
        .await
    }

    /// The verifiers of a new password, as the profile value. `None` when the pool
    /// is saturated or the password cannot be hashed (or a CRAM-MD5 secret is
    /// wanted without a key).
    pub async fn derive(
        &self,
        password: &str,
        user: &Address,
        options: VerifierOptions,
        key: Option<Arc<ServerKey>>,
    ) -> Option<String> {
        let password = password.to_owned();
        let user = user.clone();
        self.run(move || {
            Verifiers::from_password(&password, &user, &options, key.as_deref())
                .map(|v| v.to_profile_value())
                .ok()
        })
        .await
        .flatten()
    }
}
