//! The one closed error type of the store (STYLE: errors). Messages are a single
//! lower-case line, fit to follow `error: ` on a CLI.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Closed: the engine maps each variant once
/// to IMAP/POP3/LMTP codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The text is not an address this store accepts.
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress { input: String, reason: &'static str },
    /// The account does not exist.
    #[error("no such account: {address}")]
    NotFound { address: String },
    /// The account already exists.
    #[error("account already exists: {address}")]
    AlreadyExists { address: String },
    /// Another process (a running server) holds the store lock.
    #[error("store at {} is in use by a running server{}", path.display(), pid_suffix(*pid))]
    InUse { path: PathBuf, pid: Option<u32> },
    /// A file on disk is damaged or not in a format this build understands.
    #[error("corrupt file {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The configuration does not match the store on disk.
    #[error("configuration {key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// A value given by a caller is out of range or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidValue { field: &'static str, reason: String },
    /// The mailbox does not exist (or the user may not see it: existence does not leak).
    #[error("no such mailbox: {name}")]
    NoSuchMailbox { name: String },
    /// A mailbox with that name exists already.
    #[error("mailbox already exists: {name}")]
    MailboxExists { name: String },
    /// The operation would take the account over its quota.
    #[error("over quota: {used_bytes} of {quota_bytes} bytes used, {incoming_bytes} more refused")]
    OverQuota {
        used_bytes: u64,
        quota_bytes: u64,
        incoming_bytes: u64,
    },
    /// The mailbox name is not acceptable (empty component, control character, too long…).
    #[error("invalid mailbox name {name:?}: {reason}")]
    InvalidMailboxName { name: String, reason: &'static str },
    /// The operation is not allowed on this mailbox (deleting INBOX, a parent with children…).
    #[error("cannot {action} {name}: {reason}")]
    MailboxNotAllowed {
        action: &'static str,
        name: String,
        reason: &'static str,
    },
    /// A mailbox's files are damaged: it must be reconstructed before it is served.
    #[error("mailbox {name} of {address} needs reconstruct: {reason}")]
    NeedsReconstruct {
        address: String,
        name: String,
        reason: String,
    },
    /// The journal could not be made durable; the shard must restart and replay.
    #[error("journal failed: {reason}")]
    JournalFailed { reason: String },
    /// No forwarding entry exists for the address.
    #[error("no forwarding entry for {address}")]
    NoSuchForward { address: String },
    /// No outbound queue entry with that id.
    #[error("no such queue entry: {id}")]
    NoSuchQueueEntry { id: String },
    /// An operating-system error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn pid_suffix(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// A corrupt-file error.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = StoreError::InUse {
            path: "/srv/mail".into(),
            pid: Some(42),
        };
        assert_eq!(
            e.to_string(),
            "store at /srv/mail is in use by a running server (pid 42)"
        );
        let e = StoreError::NotFound {
            address: "x@y".into(),
        };
        assert_eq!(e.to_string(), "no such account: x@y");
        let e = StoreError::InUse {
            path: "/s".into(),
            pid: None,
        };
        assert_eq!(e.to_string(), "store at /s is in use by a running server");
    }
}
