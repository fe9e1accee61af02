//! Password hashing off the shards (issue 7: "hashing ... run off the shard
//! threads"). argon2id costs tens of milliseconds of CPU by design; running it on
//! glommio's per-shard blocking pool would queue journal syncs and file work behind
//! a login storm. This is its own pool, shared by all shards, with a bounded
//! queue: when it is full, logins fail fast as "unavailable" instead of piling up.

use futures::channel::oneshot;

use crate::limits::HASH_QUEUE_MAX;

enum Job {
    Verify {
        phc: String,
        password: Vec<u8>,
        reply: oneshot::Sender<bool>,
    },
    Hash {
        password: String,
        reply: oneshot::Sender<Option<String>>,
    },
}

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
                        match job {
                            Job::Verify {
                                phc,
                                password,
                                reply,
                            } => {
                                let ok = std::str::from_utf8(&password)
                                    .map(|p| store::password::verify_password(&phc, p))
                                    .unwrap_or(false);
                                let _ = reply.send(ok);
                            }
                            Job::Hash { password, reply } => {
                                let _ = reply.send(store::password::hash_password(&password).ok());
                            }
                        }
                    }
                })?;
        }
        Ok(Hasher { tx })
    }

    /// Verifies `password` against an argon2id PHC string. `None` when the pool is
    /// saturated (the caller answers "try again later").
    pub async fn verify(&self, phc: &str, password: &[u8]) -> Option<bool> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job::Verify {
                phc: phc.to_owned(),
                password: password.to_vec(),
                reply,
            })
            .ok()?;
        rx.await.ok()
    }

    /// Hashes a new password (argon2id PHC). `None` when the pool is saturated or
    /// the password cannot be hashed.
    pub async fn hash(&self, password: &str) -> Option<String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job::Hash {
                password: password.to_owned(),
                reply,
            })
            .ok()?;
        rx.await.ok().flatten()
    }
}
