//! The mesh: one bounded channel from every shard to every other (DESIGN §2), over
//! glommio's shared channels. It carries typed request/response calls and connection
//! hand-offs. Everything that crosses is `Send` by construction; nothing else is.

use futures::channel::oneshot;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use crate::admin::proto::{AdminRequest, AdminResponse, SessionView, ShardStats};
use crate::config::Service;
use crate::handoff::Handoff;
use protocols::lmtp::RecipientCheck;
use std::sync::Arc;
use store::Address;

pub type ShardId = usize;

/// A password on its way to the owner's verifier; its Debug never shows it.
pub use protocols::imap::Secret;

/// A call to the shard that owns the data it names.
#[derive(Debug)]
pub enum Request {
    /// Check a password for `service` against the owner's profile.
    Authenticate {
        address: Address,
        password: Secret,
        service: Service,
    },
    /// SASL: check a password (PLAIN, LOGIN) or fetch a stored secret (SCRAM,
    /// CRAM-MD5, APOP) for `address`. A blocked account gets `Rejected`.
    SaslCredentials {
        address: Address,
        request: protocols::sasl::CredentialRequest,
    },
    /// SASL: the exchange for `address` is over; count it like a LOGIN and, on
    /// success, check the usage flags for `service`.
    SaslOutcome {
        address: Address,
        success: bool,
        service: Service,
    },
    /// An account operation for an account this shard owns.
    Admin(AdminRequest),
    /// The accounts in this shard's buckets.
    ListLocal,
    /// This shard's counters and sessions.
    Stats,
    /// poppassd: set the password of `address` to `new` if `old` is its password.
    ChangePassword {
        address: Address,
        old: Secret,
        new: Secret,
    },
    /// LMTP RCPT: may this recipient receive a message of this size now?
    ValidateRecipient {
        address: Address,
        mail_size: Option<u64>,
    },
    /// Store `message` for each recipient this shard owns (the bytes cross once
    /// per owning shard, not once per recipient). The folder is a `+detail`.
    Deliver {
        message: Arc<Vec<u8>>,
        recipients: Vec<(Address, Option<String>)>,
    },
}

#[derive(Debug)]
pub enum Response {
    Auth(AuthOutcome),
    Credentials(protocols::sasl::Credentials),
    Admin(AdminResponse),
    Stats {
        stats: ShardStats,
        sessions: Vec<SessionView>,
    },
    Recipient(RecipientCheck),
    PasswordChanged(protocols::poppassd::PasswordChange),
    /// One result per recipient of a `Deliver`, in its order.
    Delivered(Vec<DeliveryResult>),
}

/// How one recipient's copy of a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Durable in the store.
    Stored,
    /// Over quota now: the MTA should retry later.
    OverQuota,
    /// Anything else; the MTA should retry later.
    TemporaryFailure(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    /// Unknown user, wrong password, not allowed for the service, or disabled:
    /// deliberately one answer, so a client cannot tell which.
    Failed,
    /// The store could not be read; the client may retry.
    Unavailable,
    /// The password is right but the account may not use this service (usage
    /// flags) or is disabled. Told only to a client that knew the password.
    NotPermitted,
}

pub enum MeshMsg {
    Call {
        req: Request,
        reply: oneshot::Sender<Response>,
    },
    Handoff(Box<Handoff>),
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("shard {0} is not running")]
    ShardGone(ShardId),
    #[error("no shard {0}")]
    NoSuchShard(ShardId),
}

/// The unconnected ends one shard takes to its thread. `Send`.
pub struct MeshEnds {
    me: ShardId,
    senders: Vec<Option<SharedSender<MeshMsg>>>,
    receivers: Vec<SharedReceiver<MeshMsg>>,
}

/// Builds the full mesh for `n` shards: `ends[i]` can send to every `j != i` and
/// receives from every `j != i`.
pub fn build(n: usize, capacity: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..n)
        .map(|me| MeshEnds {
            me,
            senders: (0..n).map(|_| None).collect(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers.push(rx);
        }
    }
    ends
}

/// A shard's connected sending side.
pub struct Mesh {
    me: ShardId,
    senders: Vec<Option<ConnectedSender<MeshMsg>>>,
}

impl MeshEnds {
    pub fn shard_id(&self) -> ShardId {
        self.me
    }

    /// Connects every end at once: a sender's connect waits for its receiver's, so
    /// connecting one by one across shards would deadlock.
    pub async fn connect(self) -> (Mesh, Vec<ConnectedReceiver<MeshMsg>>) {
        let senders = futures::future::join_all(self.senders.into_iter().map(|s| async move {
            match s {
                Some(s) => Some(s.connect().await),
                None => None,
            }
        }));
        let receivers = futures::future::join_all(self.receivers.into_iter().map(|r| r.connect()));
        let connect = std::pin::pin!(futures::future::join(senders, receivers));
        // glommio re-polls a pending channel connection only when its reactor turns
        // over; a ticking timer keeps it turning, so a peer that connects while this
        // executor would sleep cannot leave it waiting forever.
        let ticker = std::pin::pin!(async {
            loop {
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        let (senders, receivers) = match futures::future::select(connect, ticker).await {
            futures::future::Either::Left((connected, _)) => connected,
            futures::future::Either::Right((never, _)) => never,
        };
        (
            Mesh {
                me: self.me,
                senders,
            },
            receivers,
        )
    }
}

impl Mesh {
    pub fn me(&self) -> ShardId {
        self.me
    }

    async fn send(&self, to: ShardId, msg: MeshMsg) -> Result<(), MeshError> {
        let sender = self
            .senders
            .get(to)
            .and_then(|s| s.as_ref())
            .ok_or(MeshError::NoSuchShard(to))?;
        sender.send(msg).await.map_err(|_| MeshError::ShardGone(to))
    }

    /// Sends `req` to shard `to` and waits for its reply. Callers use
    /// `Shard::call`, which short-cuts calls to itself.
    pub async fn call_remote(&self, to: ShardId, req: Request) -> Result<Response, MeshError> {
        let (reply, rx) = oneshot::channel();
        self.send(to, MeshMsg::Call { req, reply }).await?;
        rx.await.map_err(|_| MeshError::ShardGone(to))
    }

    pub async fn handoff(&self, to: ShardId, h: Handoff) -> Result<(), MeshError> {
        self.send(to, MeshMsg::Handoff(Box::new(h))).await
    }
}
