//! The on-disk message store (DESIGN §3). No sockets, no threads: the engine calls
//! into it on the shard that owns the user.
#![forbid(unsafe_code)]
