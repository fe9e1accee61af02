//! Account administration: one request type, executed by `ops` against a `Store`.
//! The CLI runs `ops` itself on a stopped store; against a running server it sends
//! the same request over the admin unix socket (`client`), and the server runs it on
//! the shard that owns the account (`services::admin`).

pub mod client;
pub mod ops;
pub mod proto;
