//! Password hashing off the shards (issue 7: "hashing ... run off the shard
//! threads"). argon2id costs tens of milliseconds of CPU by design; running it on
//! glommio's per-shard blocking pool would queue journal syncs and file work behind
//! a login storm. This is its own pool, shared by all shards, with a bounded
//! queue: when it is full, logins fail fast as "unavailable" instead of piling up.

use futures::channel::oneshot;

use crate::limits::HASH_QUEUE_MAX;

struct Job {
    phc: String,
    password: Vec<u8>,
    reply: oneshot::Sender<bool>,
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
                        let ok = std::str::from_utf8(&job.password)
                            .map(|p| store::password::verify_password(&job.phc, p))
                            .unwrap_or(false);
                        let _ = job.reply.send(ok);
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
            .try_send(Job {
                phc: phc.to_owned(),
                password: password.to_vec(),
                reply,
            })
            .ok()?;
        rx.await.ok()
    }
}
