//! Every limit of the engine in one place, each with the reason for its value.

/// Shards beyond this gain nothing on hardware we target, and each costs an io_uring
/// and a mesh row (channels grow with the square of the shard count).
pub const SHARDS_MAX: usize = 256;

/// Messages queued from one shard to another before the sender waits: enough to
/// absorb a burst of hand-offs, small enough that a stuck shard pushes back.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Bytes read from a socket per read call; one page-ish buffer per connection keeps
/// idle sessions cheap.
pub const READ_CHUNK_BYTES: usize = 4 * 1024;

/// Largest admin request line: account operations are small JSON objects.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Blocking helper threads per shard (profile reads, password hashing). Hashing is
/// CPU-heavy and must never run on the shard thread itself.
pub const BLOCKING_THREADS_PER_SHARD: usize = 2;

/// How long a stopping shard waits for its sessions to say goodbye before it exits.
pub const STOP_GRACE_MS: u64 = 3_000;

/// The most `limits.connections_per_shard` may be (and its default): past it new
/// connections are refused with a protocol-appropriate "too many connections" so the
/// shard keeps its memory bound.
pub const SESSIONS_PER_SHARD_MAX: usize = 200_000;

/// First delay after the free failed logins; it doubles with each further failure.
pub const LOGIN_DELAY_BASE_MS: u64 = 250;

/// Longest delay before a failed login is answered: long enough to make guessing
/// slow, short enough that a client's own timeout does not fire first.
pub const LOGIN_DELAY_MAX_MS: u64 = 8_000;

/// Failure records one throttle keeps; past it stale ones are evicted, so a flood
/// of addresses cannot grow a shard's memory.
pub const THROTTLE_KEYS_MAX: usize = 100_000;

/// How often an idle shard's committer looks whether its journal is due for a
/// checkpoint (age-based thresholds live in the store's journal).
pub const CHECKPOINT_POLL_MS: u64 = 1_000;

/// Seconds an LMTP client may stay silent: MTAs keep delivery connections open
/// between messages, RFC 5321 §4.5.3.2.7 suggests 5 minutes for the server.
pub const LMTP_IDLE_SECONDS: u64 = 300;

/// Pending connections the kernel queues per listener and shard before refusing:
/// covers a reconnect storm after a restart.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A shard that has not bound its listeners this long after start is reported:
/// starting takes milliseconds, so this means something is stuck.
pub const STARTUP_WARN_SECONDS: u64 = 10;

/// Bytes of a message file read and dot-stuffed per step of RETR/TOP: large enough
/// to keep the socket busy, small enough that a 100 MB message costs no more memory.
pub const POP3_RETR_CHUNK_BYTES: usize = 64 * 1024;

/// Password verifications waiting for a hashing thread. At ~20 ms each on one core,
/// this is seconds of backlog: past it a login is answered "unavailable" at once.
pub const HASH_QUEUE_MAX: usize = 512;

/// Successful logins remembered per shard (a digest of the password, never the
/// password), so a client that reconnects does not pay argon2 again.
pub const AUTH_CACHE_ENTRIES_MAX: usize = 100_000;

/// Account profiles an owning shard keeps for LMTP's RCPT checks (a few hundred bytes
/// each); past this the cache starts again empty.
pub const RECIPIENT_PROFILES_MAX: usize = 100_000;

/// How long a remembered login stays valid. A password change makes it stale at
/// once (the digest covers the stored hash).
pub const AUTH_CACHE_SECONDS: u64 = 600;

/// Bytes of a message file read and written per step when FETCH streams a body.
pub const IMAP_FETCH_CHUNK_BYTES: usize = 64 * 1024;

/// A journal sync (fdatasync and the message files of its group) slower than this is
/// logged: every delivery of the group waited for it.
pub const SLOW_SYNC_MS: u64 = 500;

/// Message bytes at least this many go by sendfile(2) when the connection is plain
/// (no TLS, no COMPRESS): POP3 RETR with no stuffing needed, IMAP FETCH of a body or
/// section. Below it one read and one write cost less than the extra file open and
/// socket flag changes.
pub const SENDFILE_MIN_BYTES: u64 = 64 * 1024;

/// An APPEND literal up to this size is kept in memory and staged with its bytes in the
/// journal record (one fdatasync, shared by the group commit); a larger one goes to a
/// staging file as it arrives, so a connection never holds more than this of it.
pub const IMAP_APPEND_INLINE_BYTES: usize = 1024 * 1024;

/// Bytes of a staged APPEND written to its file per write (the rest waits in memory).
pub const IMAP_APPEND_WRITE_BYTES: usize = 64 * 1024;

/// Seconds an MTA's socketmap connection may stay silent; Postfix's proxymap keeps
/// them open and reconnects when they close.
pub const SOCKETMAP_IDLE_SECONDS: u64 = 600;
