//! The admin socket's wire format: one JSON object per line each way.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    AccountAdd {
        address: String,
        name: String,
        quota_bytes: u64,
        flags: Option<String>,
        /// A `store::auth::Verifiers` line: the CLI hashes, so no plaintext crosses
        /// the socket.
        password_hash: Option<String>,
    },
    AccountShow {
        address: String,
    },
    AccountDel {
        address: String,
    },
    AccountList,
    AccountSet {
        address: String,
        name: Option<String>,
        quota_bytes: Option<u64>,
        flags: Option<String>,
        /// A `store::auth::Verifiers` line (made by the CLI: no plaintext crosses).
        password_hash: Option<String>,
        /// Drop the sealed CRAM-MD5/APOP secret (`account set --cram-md5 off`).
        #[serde(default)]
        drop_cram: bool,
    },
    Stats,
    Who,
    /// Rebuild an account's mailbox list, indexes and caches from its message files.
    Reconstruct {
        address: String,
    },
    /// Forward mail for `address` (with or without an account) to `targets`.
    ForwardAdd {
        address: String,
        targets: Vec<String>,
        keep_copy: bool,
    },
    ForwardDel {
        address: String,
    },
    /// Every forwarding entry (walks the tree), or the one of `address`.
    ForwardList {
        address: Option<String>,
    },
    /// The outbound queue: every entry of every spool.
    QueueList,
    /// Make every waiting entry due now and wake the runners.
    QueueFlush,
    /// Remove an entry (no bounce).
    QueueDel {
        id: String,
    },
}

impl AdminRequest {
    /// The account a request is about, when it is about one.
    pub fn address(&self) -> Option<&str> {
        match self {
            AdminRequest::AccountAdd { address, .. }
            | AdminRequest::AccountShow { address }
            | AdminRequest::AccountDel { address }
            | AdminRequest::AccountSet { address, .. }
            | AdminRequest::Reconstruct { address }
            | AdminRequest::ForwardAdd { address, .. }
            | AdminRequest::ForwardDel { address } => Some(address),
            AdminRequest::ForwardList { address } => address.as_deref(),
            AdminRequest::AccountList
            | AdminRequest::Stats
            | AdminRequest::Who
            | AdminRequest::QueueList
            | AdminRequest::QueueFlush
            | AdminRequest::QueueDel { .. } => None,
        }
    }
}

impl AdminRequest {
    /// A request about the outbound queue (each shard answers for its spools).
    pub fn is_queue(&self) -> bool {
        matches!(
            self,
            AdminRequest::QueueList | AdminRequest::QueueFlush | AdminRequest::QueueDel { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminResponse {
    Done,
    Account(AccountView),
    Accounts {
        addresses: Vec<String>,
    },
    Stats {
        shards: Vec<ShardStats>,
    },
    Who {
        sessions: Vec<SessionView>,
    },
    Reconstructed(ReconstructView),
    Forwards {
        entries: Vec<ForwardView>,
    },
    Queue {
        entries: Vec<QueueView>,
    },
    /// How many queue entries a flush made due.
    Flushed {
        count: usize,
    },
    Error {
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub address: String,
    pub name: String,
    pub domain: String,
    pub quota_bytes: u64,
    pub flags: String,
    pub has_password: bool,
    /// What is stored of the password: `argon2id`, `scram-sha-256`, `cram-md5`.
    #[serde(default)]
    pub verifiers: Vec<String>,
    pub created_unix: u64,
    pub bucket: u16,
    pub path: String,
}

/// One forwarding entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardView {
    pub address: String,
    pub targets: Vec<String>,
    pub keep_copy: bool,
}

/// One outbound queue entry, as `msgstore queue list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    pub id: String,
    /// Empty for the null sender.
    pub mail_from: String,
    pub created_unix: u64,
    pub attempts: u32,
    pub next_attempt_unix: u64,
    pub bytes: u64,
    pub recipients: Vec<QueueRecipientView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueRecipientView {
    pub address: String,
    /// pending, delivered or failed.
    pub state: String,
    /// The relay's last answer, or what went wrong.
    pub diagnostic: String,
}

/// What a reconstruct found and did for one account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconstructView {
    pub address: String,
    pub mailboxes: usize,
    pub messages: u64,
    pub bytes: u64,
    /// "field old -> new", one per repair.
    pub repairs: Vec<String>,
}

/// One shard's counters, as `msgstore stats` shows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    pub shard: usize,
    pub cpu: usize,
    pub accepted: u64,
    pub handoffs_out: u64,
    pub handoffs_in: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// Logins refused without a password check because the IP or account is blocked.
    pub logins_blocked: u64,
    /// Connections refused by `limits.connections_per_ip` or the shard's session cap.
    pub connections_refused: u64,
    pub sessions_active: u64,
    /// Times an IMAP session's reads were held back by `limits.imap_commands_per_second`.
    #[serde(default)]
    pub commands_slowed: u64,
}

/// One live session, as `msgstore who` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub shard: usize,
    pub service: String,
    pub user: Option<String>,
    pub peer: String,
}
