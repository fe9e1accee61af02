//! The msgstore engine: thread-per-core runtime (DESIGN §2), the services it runs on
//! every shard, the admin socket, and the `msgstore` command line.
//!
//! Ownership: each shard is one glommio executor pinned to a core. State that belongs
//! to a shard lives in `Rc`/`RefCell` and never crosses threads; other shards reach it
//! through the mesh (`Shard::call`). The only `unsafe` is in `handoff`, where an
//! accepted socket's fd is borrowed to duplicate it for the owning shard.
#![deny(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod conn;
pub mod event;
pub mod handoff;
pub mod hasher;
pub mod limits;
pub mod listener;
pub mod mail;
pub mod mesh;
pub mod outbound;
pub mod runtime;
pub mod services;
pub mod shard;
pub mod shutdown;
pub mod throttle;
pub mod tls;
