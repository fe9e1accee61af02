//! The outbound queue (DESIGN §4, issue 4): messages that leave the store —
//! external forwards now, Sieve redirect and vacation replies later — wait here,
//! durably, until the relay takes them, with retries and a bounce (RFC 3464 DSN) to
//! the envelope sender when a recipient fails for good or the retry window ends.
//!
//! ```text
//! <roots[0]>/outbound/
//!     <id>.msg                 the message, CRLF line ends, exactly the bytes sent
//!     <id>.env                 envelope and state, see `entry` (text, checksummed)
//!     .<name>.tmp.<pid>.<n>    a write in progress; removed by `Outbound::open`
//! ```
//!
//! **Durability.** `enqueue` writes `<id>.msg` (temp file, fdatasync, rename,
//! directory fsync), then `<id>.env` the same way: the entry exists once its `.env`
//! is in place, and the `.msg` it names is durable before that. A crash leaves at
//! worst a temp file or a `.msg` without `.env`: `open` removes both (the caller
//! was never told the message was queued). State changes rewrite only the `.env`,
//! atomically. The queue has one owner at a time (the engine runs it on one
//! thread, off the hot path); it uses plain `std::fs`.
//!
//! **Retries.** After a failed attempt the next one waits
//! `RetryPolicy::backoff_secs[attempts - 1]` (the last value repeats), but never
//! past the end of the retry window, so the last attempt happens when the window
//! ends; recipients still pending after an attempt at or past the window's end fail
//! with their last error.
//!
//! **Bounces.** An entry whose recipients are all delivered or failed is finished:
//! with no failures, or with the null sender `<>` (a bounce is never bounced: no
//! loops), it is deleted at once; otherwise [`Outbound::bounce_due`] hands out the
//! DSN for the engine to send (with `MAIL FROM:<>`), and the engine deletes the
//! entry once the DSN is queued. A crash in between sends the bounce twice, never
//! zero times.

mod dsn;
mod entry;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable::{create_dir_durable, read_bounded, sync_dir, unique_suffix, write_atomic};
use crate::error::{Result, StoreError};
use crate::limits::{
    MESSAGE_BYTES_MAX, OUTBOUND_BACKOFF_SECS_DEFAULT, OUTBOUND_ENVELOPE_BYTES_MAX,
    OUTBOUND_RECIPIENTS_MAX, OUTBOUND_RETRY_WINDOW_SECS_DEFAULT,
};
use crate::message::normalize_crlf;
use crate::store::Store;

pub use dsn::{delivery_status_notification, rfc5322_date};
pub use entry::{QueueEntry, QueueId, QueuedRecipient, RecipientState};

use entry::{clean_diagnostic, is_smtp_path, is_status};

/// Directory of the queue inside the first root.
pub const OUTBOUND_DIR: &str = "outbound";
const MESSAGE_SUFFIX: &str = ".msg";
const ENVELOPE_SUFFIX: &str = ".env";

/// When to try again, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the 1st, 2nd, … failed attempt; the last value repeats. Not empty.
    pub backoff_secs: Vec<u64>,
    /// How long after queueing a message is retried before it bounces.
    pub retry_window_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            backoff_secs: OUTBOUND_BACKOFF_SECS_DEFAULT.to_vec(),
            retry_window_secs: OUTBOUND_RETRY_WINDOW_SECS_DEFAULT,
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` attempts (1 = after the first).
    pub fn backoff_after(&self, attempts: u32) -> u64 {
        let index = (attempts.max(1) - 1) as usize;
        self.backoff_secs
            .get(index)
            .or(self.backoff_secs.last())
            .copied()
            .unwrap_or(60)
    }
}

/// How one recipient fared in an attempt (the engine maps its SMTP client's results).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientAttempt {
    /// The address as queued.
    pub recipient: String,
    pub outcome: AttemptOutcome,
    /// RFC 3463 status (`5.1.1`); anything else is dropped.
    pub status: String,
    /// One line: the server's reply or what went wrong.
    pub diagnostic: String,
}

/// The outcome of one recipient in one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Temporary,
    Permanent,
}

/// What [`Outbound::record_attempt`] made of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// Some recipients are still pending: the next attempt is due then.
    Retry { next_attempt_unix: u64 },
    /// Every recipient is done and no bounce is owed: the entry is gone.
    Finished,
    /// Every recipient is done and some failed: [`Outbound::bounce_due`] has the DSN.
    BounceDue,
}

/// A bounce to send: `message` to `to`, with `MAIL FROM:<>`. Delete `id` once it
/// is queued or delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounce {
    pub id: QueueId,
    /// The original envelope sender.
    pub to: String,
    /// The DSN, CRLF line ends.
    pub message: Vec<u8>,
}

/// What [`Outbound::list`] found.
#[derive(Debug, Default)]
pub struct QueueListing {
    /// Readable entries, oldest first.
    pub entries: Vec<QueueEntry>,
    /// Envelope files that could not be read, with the reason (delete or repair them).
    pub damaged: Vec<(QueueId, StoreError)>,
}

/// The outbound queue. See the module documentation.
#[derive(Debug)]
pub struct Outbound {
    dir: PathBuf,
    policy: RetryPolicy,
}

impl Outbound {
    /// Opens the store's queue, `<roots[0]>/outbound`.
    pub fn open(store: &Store, policy: RetryPolicy) -> Result<Outbound> {
        Outbound::open_dir(&store.roots()[0].join(OUTBOUND_DIR), policy)
    }

    /// Opens (creating) a queue directory and removes what a crash left behind:
    /// temp files and messages whose envelope was never written.
    pub fn open_dir(dir: &Path, policy: RetryPolicy) -> Result<Outbound> {
        if policy.backoff_secs.is_empty() {
            return Err(StoreError::Config {
                key: "outbound.backoff",
                reason: "at least one backoff interval is needed".into(),
            });
        }
        create_dir_durable(dir)?;
        let queue = Outbound {
            dir: dir.to_path_buf(),
            policy,
        };
        queue.clean_leftovers()?;
        Ok(queue)
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn clean_leftovers(&self) -> Result<()> {
        let mut removed = false;
        for name in self.names()? {
            let orphan = name
                .strip_suffix(MESSAGE_SUFFIX)
                .is_some_and(|id| !self.env_path_str(id).exists());
            if name.starts_with('.') || orphan {
                let path = self.dir.join(&name);
                match fs::remove_file(&path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(path, e)),
                }
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn names(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&self.dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn env_path_str(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{ENVELOPE_SUFFIX}"))
    }

    fn env_path(&self, id: &QueueId) -> PathBuf {
        self.env_path_str(id.as_str())
    }

    fn msg_path(&self, id: &QueueId) -> PathBuf {
        self.dir.join(format!("{id}{MESSAGE_SUFFIX}"))
    }

    /// Queues `message` from `mail_from` (empty for `<>`) to `recipients` (duplicates
    /// dropped, case-insensitively), due at once. Line ends are made CRLF. Returns
    /// after the entry is durable.
    pub fn enqueue(
        &self,
        message: &[u8],
        mail_from: &str,
        recipients: &[impl AsRef<str>],
        now_unix: u64,
    ) -> Result<QueueId> {
        let invalid =
            |field: &'static str, reason: String| StoreError::InvalidValue { field, reason };
        if !mail_from.is_empty() && !is_smtp_path(mail_from) {
            return Err(invalid(
                "mail_from",
                format!("{mail_from:?} is not an address"),
            ));
        }
        let mut unique: Vec<String> = Vec::new();
        for rcpt in recipients {
            let rcpt = rcpt.as_ref();
            if !is_smtp_path(rcpt) {
                return Err(invalid("recipients", format!("{rcpt:?} is not an address")));
            }
            if !unique.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) {
                unique.push(rcpt.to_owned());
            }
        }
        if unique.is_empty() || unique.len() > OUTBOUND_RECIPIENTS_MAX {
            return Err(invalid(
                "recipients",
                format!(
                    "1 to {OUTBOUND_RECIPIENTS_MAX} needed, not {}",
                    unique.len()
                ),
            ));
        }
        let message = normalize_crlf(message);
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(invalid(
                "message",
                format!("{} bytes, at most {MESSAGE_BYTES_MAX}", message.len()),
            ));
        }
        let id = QueueId::new_unchecked(format!("{now_unix:010x}.{}", unique_suffix()));
        let entry = QueueEntry {
            id: id.clone(),
            mail_from: mail_from.to_owned(),
            created_unix: now_unix,
            attempts: 0,
            next_attempt_unix: now_unix,
            message_bytes: message.len() as u64,
            message_crc32: crc32fast::hash(&message),
            recipients: unique
                .into_iter()
                .map(|address| QueuedRecipient {
                    address,
                    state: RecipientState::Pending,
                    status: None,
                    diagnostic: String::new(),
                })
                .collect(),
        };
        let envelope = entry.to_bytes()?;
        write_atomic(&self.msg_path(&id), &message)?;
        if let Err(e) = write_atomic(&self.env_path(&id), &envelope) {
            // Best effort: `open` removes an orphaned message anyway.
            let _ = fs::remove_file(self.msg_path(&id));
            return Err(e);
        }
        Ok(id)
    }

    /// One entry; `NoSuchQueueEntry` when there is none.
    pub fn get(&self, id: &QueueId) -> Result<QueueEntry> {
        let path = self.env_path(id);
        let bytes = match read_bounded(&path, OUTBOUND_ENVELOPE_BYTES_MAX) {
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchQueueEntry { id: id.to_string() });
            }
            other => other?,
        };
        let entry = QueueEntry::parse(&path, &bytes)?;
        if entry.id != *id {
            return Err(StoreError::corrupt(&path, format!("entry is {}", entry.id)));
        }
        Ok(entry)
    }

    /// The queued message, checked against the size and CRC in its envelope.
    pub fn message(&self, entry: &QueueEntry) -> Result<Vec<u8>> {
        let path = self.msg_path(&entry.id);
        let bytes = read_bounded(&path, MESSAGE_BYTES_MAX)?;
        if bytes.len() as u64 != entry.message_bytes
            || crc32fast::hash(&bytes) != entry.message_crc32
        {
            return Err(StoreError::corrupt(
                &path,
                "message does not match the size and checksum in its envelope",
            ));
        }
        Ok(bytes)
    }

    /// Every entry, oldest first, and the damaged ones.
    pub fn list(&self) -> Result<QueueListing> {
        let mut listing = QueueListing::default();
        for name in self.names()? {
            let Some(id) = name.strip_suffix(ENVELOPE_SUFFIX) else {
                continue;
            };
            let Ok(id) = QueueId::parse(id) else {
                continue;
            };
            match self.get(&id) {
                Ok(entry) => listing.entries.push(entry),
                Err(StoreError::NoSuchQueueEntry { .. }) => {}
                Err(e) => listing.damaged.push((id, e)),
            }
        }
        listing
            .entries
            .sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(listing)
    }

    /// Entries with pending recipients whose next attempt is due, oldest first.
    pub fn due(&self, now_unix: u64) -> Result<Vec<QueueEntry>> {
        Ok(self
            .list()?
            .entries
            .into_iter()
            .filter(|e| e.next_attempt_unix <= now_unix && !e.pending().is_empty())
            .collect())
    }

    /// Records an attempt's results (recipients not named keep their state) and
    /// schedules the next one; see the module documentation for the rules.
    pub fn record_attempt(
        &self,
        id: &QueueId,
        results: &[RecipientAttempt],
        now_unix: u64,
    ) -> Result<EntryState> {
        let mut entry = self.get(id)?;
        for result in results {
            let Some(rcpt) = entry
                .recipients
                .iter_mut()
                .find(|r| r.state == RecipientState::Pending && r.address == result.recipient)
            else {
                continue;
            };
            rcpt.state = match result.outcome {
                AttemptOutcome::Delivered => RecipientState::Delivered,
                AttemptOutcome::Temporary => RecipientState::Pending,
                AttemptOutcome::Permanent => RecipientState::Failed,
            };
            rcpt.status = Some(result.status.clone()).filter(|s| is_status(s));
            rcpt.diagnostic = clean_diagnostic(&result.diagnostic);
        }
        entry.attempts = entry.attempts.saturating_add(1);
        let expires = entry
            .created_unix
            .saturating_add(self.policy.retry_window_secs);
        if now_unix >= expires {
            self.expire(&mut entry);
        }
        let next = now_unix.saturating_add(self.policy.backoff_after(entry.attempts));
        entry.next_attempt_unix = next.min(expires).max(now_unix);
        self.settle(entry)
    }

    /// Makes every pending recipient of every entry due now (`msgstore queue flush`);
    /// returns how many entries that touched.
    pub fn flush(&self, now_unix: u64) -> Result<usize> {
        let mut touched = 0;
        for mut entry in self.list()?.entries {
            if entry.pending().is_empty() || entry.next_attempt_unix <= now_unix {
                continue;
            }
            entry.next_attempt_unix = now_unix;
            write_atomic(&self.env_path(&entry.id), &entry.to_bytes()?)?;
            touched += 1;
        }
        Ok(touched)
    }

    /// Fails what the retry window has run out for, cleans up finished entries, and
    /// returns the bounces owed (see [`Bounce`]). `reporting_host` names this system
    /// in the DSN.
    pub fn bounce_due(&self, now_unix: u64, reporting_host: &str) -> Result<Vec<Bounce>> {
        let mut bounces = Vec::new();
        for mut entry in self.list()?.entries {
            let expires = entry
                .created_unix
                .saturating_add(self.policy.retry_window_secs);
            let pending = !entry.pending().is_empty();
            if pending && now_unix >= expires && entry.attempts > 0 {
                self.expire(&mut entry);
                if self.settle(entry.clone())? != EntryState::BounceDue {
                    continue;
                }
            } else if pending {
                continue;
            } else if !owes_bounce(&entry) {
                self.delete(&entry.id)?;
                continue;
            }
            let original = self.message(&entry).ok();
            let message =
                delivery_status_notification(&entry, original.as_deref(), reporting_host, now_unix);
            bounces.push(Bounce {
                id: entry.id.clone(),
                to: entry.mail_from.clone(),
                message,
            });
        }
        Ok(bounces)
    }

    /// Removes an entry (`msgstore queue del`, or after its bounce is sent).
    pub fn delete(&self, id: &QueueId) -> Result<()> {
        let env = self.env_path(id);
        match fs::remove_file(&env) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchQueueEntry { id: id.to_string() });
            }
            Err(e) => return Err(StoreError::io(env, e)),
        }
        let msg = self.msg_path(id);
        match fs::remove_file(&msg) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(msg, e)),
        }
        sync_dir(&self.dir)
    }

    /// Pending recipients fail with their last error (the window ran out).
    fn expire(&self, entry: &mut QueueEntry) {
        let window = duration_text(self.policy.retry_window_secs);
        for rcpt in &mut entry.recipients {
            if rcpt.state != RecipientState::Pending {
                continue;
            }
            rcpt.state = RecipientState::Failed;
            let last = if rcpt.diagnostic.is_empty() {
                "no delivery attempt succeeded".to_owned()
            } else {
                format!("last error: {}", rcpt.diagnostic)
            };
            rcpt.diagnostic = clean_diagnostic(&format!(
                "message expired after {window} in the queue; {last}"
            ));
            if rcpt.status.is_none() {
                rcpt.status = Some("4.4.7".into());
            }
        }
    }

    /// Writes the entry back, or deletes it when nothing more is owed.
    fn settle(&self, entry: QueueEntry) -> Result<EntryState> {
        if !entry.pending().is_empty() {
            write_atomic(&self.env_path(&entry.id), &entry.to_bytes()?)?;
            return Ok(EntryState::Retry {
                next_attempt_unix: entry.next_attempt_unix,
            });
        }
        if owes_bounce(&entry) {
            write_atomic(&self.env_path(&entry.id), &entry.to_bytes()?)?;
            return Ok(EntryState::BounceDue);
        }
        self.delete(&entry.id)?;
        Ok(EntryState::Finished)
    }
}

/// `5 days`, `3 hours`, `90 seconds`.
fn duration_text(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Some recipient failed and the sender can be told (not `<>`).
fn owes_bounce(entry: &QueueEntry) -> bool {
    !entry.mail_from.is_empty() && entry.failed().next().is_some()
}
