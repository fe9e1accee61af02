//! The on-disk message store (DESIGN §3). No sockets, no threads: the engine calls
//! into it on the shard that owns the user.
#![forbid(unsafe_code)]

pub mod account;
pub mod address;
pub mod auth;
pub mod durable;
pub mod error;
pub mod format;
pub mod forward;
pub mod hash;
pub mod limits;
pub mod lock;
pub mod message;
pub mod password;
pub mod store;
mod textfile;

pub use account::{NewAccount, Profile, UsageFlags};
pub use address::Address;
pub use error::{Result, StoreError};
pub use format::Format;
pub use hash::{Bucket, digest, fanout_dirs};
pub use lock::StoreLock;
pub use password::{hash_password, verify_password};
pub use store::Store;
pub mod delivery;
pub mod journal;
pub mod mailbox;
pub mod notify;
pub mod outbound;
pub mod quota;
pub mod reconstruct;
