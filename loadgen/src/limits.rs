//! Every limit of the load generator in one place, each with the reason for its value.

use std::time::Duration;

/// Longest response line accepted from a server; IMAP servers keep lines far shorter, and a
/// peer sending an endless line is broken, not slow.
pub const LINE_BYTES_MAX: usize = 256 * 1024;

/// Largest literal (IMAP) or multi-line body (POP3) accepted; the largest generated message is
/// about 1 MiB, so 64 MiB leaves room for servers that add headers while refusing absurd sizes.
pub const LITERAL_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Lines of one multi-line LMTP/SMTP reply; real servers send a handful (LHLO capabilities).
pub const REPLY_LINES_MAX: usize = 256;

/// Size of one socket read; large enough that a 1 MiB FETCH needs few reads.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Time after `--duration` during which in-flight requests may still complete; after it they
/// are abandoned and loadgen exits, so a stalled server never keeps it running.
pub const GRACE: Duration = Duration::from_secs(5);

/// First and last delay between reconnect attempts (doubling in between): fast recovery from a
/// one-off close, no busy loop against a dead port.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Interval of the live progress line and of the per-worker snapshots behind it.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// Highest latency the histograms track; anything slower is recorded as this value.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Distinct error reasons kept per run; past this they are counted under one "other" reason, so
/// a server echoing random garbage cannot grow the report without bound.
pub const ERROR_REASONS_MAX: usize = 64;

/// Longest error reason kept (bytes); reasons quote server text, which may be long.
pub const ERROR_REASON_BYTES_MAX: usize = 120;

/// Messages in one FETCH (FLAGS ENVELOPE) range: a client listing a screenful of mail.
pub const FETCH_RANGE_MAX: u32 = 20;

/// Recipients of one LMTP transaction at most (the mix draws 1..=this, mostly 1).
pub const RCPTS_PER_TRANSACTION_MAX: usize = 3;

/// How often an idle client looks whether the memory ramp wants its connection open or closed:
/// a ramp step takes seconds, and thousands of clients polling at this rate cost little.
pub const IDLE_LEVEL_POLL: Duration = Duration::from_millis(200);
