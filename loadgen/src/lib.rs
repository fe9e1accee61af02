//! `loadgen`: the bundled load generator for msgstore (and any IMAP/POP3/LMTP server).
//!
//! Thread-per-core like the server it measures: one pinned glommio executor per core, clients
//! split across them, each worker with its own HDR histograms, merged by the main thread from
//! per-second snapshots. Protocol framing is sans-IO (`proto`), the async clients (`client`)
//! only move bytes, time requests and check answers.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod limits;
pub mod message;
pub mod mix;
pub mod plot;
pub mod proto;
pub mod rng;
pub mod rss;
pub mod runner;
pub mod schedule;
pub mod shard;
pub mod stats;
