//! One queue entry's envelope file, `<id>.env`: who the message is from, who it is
//! for, how each recipient fared, and when to try again. Text in the line format of
//! the store's small files:
//!
//! ```text
//! msgstore-outbound 1                      magic and version
//! id 18c2d3e4f50a1b2c.1234.7               the entry's id; must match the file name
//! mail_from alice@example.com              envelope sender; empty for the null sender <>
//! created_unix 1700000000                  when it was queued (seconds since the epoch)
//! attempts 2                               delivery attempts recorded so far
//! next_attempt_unix 1700000360             not before this time
//! message_bytes 1234                       length of <id>.msg
//! message_crc32 89abcdef                   CRC-32 (IEEE) of <id>.msg, 8 lower-case hex digits
//! recipients 2                             number of rcpt_N lines that follow
//! rcpt_0 pending 4.2.0 bob@example.net 450 4.2.0 Greylisted
//! rcpt_1 failed 5.1.1 carol@example.net 550 5.1.1 User unknown
//! crc32 1a2b3c4d                           CRC-32 (IEEE) of every preceding byte
//! ```
//!
//! A recipient line is `<state> <status> <address> <diagnostic>`: state `pending`
//! (still to deliver), `delivered` or `failed` (permanently, or the retry window
//! ran out); status the RFC 3463 code of the last answer, `-` before any; the
//! address as it goes into `RCPT TO:<…>`; the diagnostic, the rest of the line,
//! the last answer for logs and the bounce (may be empty). Version policy as for
//! `profile`: readers reject what they do not know, as `Corrupt`.

use std::fmt;
use std::path::Path;

use crate::error::{Result, StoreError};
use crate::limits::{
    ADDRESS_BYTES_MAX, OUTBOUND_DIAGNOSTIC_BYTES_MAX, OUTBOUND_ENVELOPE_BYTES_MAX,
    OUTBOUND_RECIPIENTS_MAX,
};
use crate::textfile;

/// Magic word on the first line.
pub const ENVELOPE_MAGIC: &str = "msgstore-outbound";
/// The only version this build reads and writes.
pub const ENVELOPE_VERSION: u32 = 1;

/// Longest queue id: 16 hex digits, a pid, a counter.
const QUEUE_ID_BYTES_MAX: usize = 64;

/// A queue entry's name: lower-case hex digits and dots, so it is safe as a file name
/// and on a command line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    /// Checks an id given by an operator or read from a file name.
    pub fn parse(text: &str) -> Result<QueueId> {
        let ok = !text.is_empty()
            && text.len() <= QUEUE_ID_BYTES_MAX
            && !text.starts_with('.')
            && text
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'.'));
        if ok {
            Ok(QueueId(text.to_owned()))
        } else {
            Err(StoreError::NoSuchQueueEntry {
                id: text.to_owned(),
            })
        }
    }

    pub(crate) fn new_unchecked(text: String) -> QueueId {
        debug_assert!(QueueId::parse(&text).is_ok(), "{text}");
        QueueId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one recipient stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientState {
    /// Still to be delivered.
    Pending,
    /// The relay took it.
    Delivered,
    /// Refused permanently, or the retry window ran out: it goes into the bounce.
    Failed,
}

impl RecipientState {
    fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<RecipientState> {
        match text {
            "pending" => Some(RecipientState::Pending),
            "delivered" => Some(RecipientState::Delivered),
            "failed" => Some(RecipientState::Failed),
            _ => None,
        }
    }
}

/// One recipient of a queue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRecipient {
    /// As it goes into `RCPT TO:<…>`.
    pub address: String,
    pub state: RecipientState,
    /// RFC 3463 status of the last answer (`5.1.1`), `None` before any.
    pub status: Option<String>,
    /// The last answer (`550 5.1.1 User unknown`, `connection timed out`), may be empty.
    pub diagnostic: String,
}

/// A queued message's envelope and delivery state (the message itself is read with
/// [`Outbound::message`](super::Outbound::message)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    /// Envelope sender; empty for `<>` (a bounce: never bounced itself).
    pub mail_from: String,
    pub created_unix: u64,
    pub attempts: u32,
    pub next_attempt_unix: u64,
    pub message_bytes: u64,
    pub message_crc32: u32,
    pub recipients: Vec<QueuedRecipient>,
}

impl QueueEntry {
    /// Addresses still to deliver, in envelope order.
    pub fn pending(&self) -> Vec<&str> {
        self.recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| r.address.as_str())
            .collect()
    }

    /// Recipients that go into a bounce.
    pub fn failed(&self) -> impl Iterator<Item = &QueuedRecipient> {
        self.recipients
            .iter()
            .filter(|r| r.state == RecipientState::Failed)
    }

    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut fields: Vec<(String, String)> = vec![
            ("id".into(), self.id.to_string()),
            ("mail_from".into(), self.mail_from.clone()),
            ("created_unix".into(), self.created_unix.to_string()),
            ("attempts".into(), self.attempts.to_string()),
            (
                "next_attempt_unix".into(),
                self.next_attempt_unix.to_string(),
            ),
            ("message_bytes".into(), self.message_bytes.to_string()),
            (
                "message_crc32".into(),
                format!("{:08x}", self.message_crc32),
            ),
            ("recipients".into(), self.recipients.len().to_string()),
        ];
        for (index, rcpt) in self.recipients.iter().enumerate() {
            let mut line = format!(
                "{} {} {}",
                rcpt.state.as_str(),
                rcpt.status.as_deref().unwrap_or("-"),
                rcpt.address
            );
            if !rcpt.diagnostic.is_empty() {
                line.push(' ');
                line.push_str(&rcpt.diagnostic);
            }
            fields.push((format!("rcpt_{index}"), line));
        }
        let borrowed: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        textfile::encode(ENVELOPE_MAGIC, ENVELOPE_VERSION, &borrowed)
    }

    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<QueueEntry> {
        let corrupt = |reason: String| StoreError::corrupt(path, reason);
        if bytes.len() > OUTBOUND_ENVELOPE_BYTES_MAX {
            return Err(corrupt("envelope file is too large".into()));
        }
        let mut fields = textfile::decode(path, bytes, ENVELOPE_MAGIC, ENVELOPE_VERSION)?;
        let mut take = |key: &str| textfile::take(path, &mut fields, key);
        let id = take("id")?;
        let mail_from = take("mail_from")?;
        let created_unix = take("created_unix")?;
        let attempts = take("attempts")?;
        let next_attempt_unix = take("next_attempt_unix")?;
        let message_bytes = take("message_bytes")?;
        let message_crc32 = take("message_crc32")?;
        let count: usize = textfile::number(path, "recipients", take("recipients")?)?;
        if count == 0 || count > OUTBOUND_RECIPIENTS_MAX {
            return Err(corrupt(format!("{count} recipients")));
        }
        let mut recipients = Vec::with_capacity(count);
        for index in 0..count {
            let line = take(&format!("rcpt_{index}"))?;
            recipients.push(parse_recipient(line).ok_or_else(|| {
                corrupt(format!("malformed recipient line rcpt_{index}: {line:?}"))
            })?);
        }
        textfile::no_unknown_keys(path, &fields)?;
        let id = QueueId::parse(id).map_err(|_| corrupt(format!("bad id {id:?}")))?;
        if !mail_from.is_empty() && !is_smtp_path(mail_from) {
            return Err(corrupt(format!("bad mail_from {mail_from:?}")));
        }
        let crc_ok = message_crc32.len() == 8
            && message_crc32
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let message_crc32 = u32::from_str_radix(message_crc32, 16)
            .ok()
            .filter(|_| crc_ok)
            .ok_or_else(|| corrupt("bad message_crc32".into()))?;
        Ok(QueueEntry {
            id,
            mail_from: mail_from.to_owned(),
            created_unix: textfile::number(path, "created_unix", created_unix)?,
            attempts: textfile::number(path, "attempts", attempts)?,
            next_attempt_unix: textfile::number(path, "next_attempt_unix", next_attempt_unix)?,
            message_bytes: textfile::number(path, "message_bytes", message_bytes)?,
            message_crc32,
            recipients,
        })
    }
}

fn parse_recipient(line: &str) -> Option<QueuedRecipient> {
    let mut parts = line.splitn(4, ' ');
    let state = RecipientState::parse(parts.next()?)?;
    let status = match parts.next()? {
        "-" => None,
        status if is_status(status) => Some(status.to_owned()),
        _ => return None,
    };
    let address = parts.next()?;
    if !is_smtp_path(address) {
        return None;
    }
    Some(QueuedRecipient {
        address: address.to_owned(),
        state,
        status,
        diagnostic: parts.next().unwrap_or_default().to_owned(),
    })
}

/// An address that can go between `<>` in an SMTP command as it is.
pub(crate) fn is_smtp_path(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= ADDRESS_BYTES_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>'))
}

/// `class.subject.detail`, RFC 3463: class 2, 4 or 5, then 1–3 digits twice.
pub(crate) fn is_status(text: &str) -> bool {
    let mut parts = text.split('.');
    let digits = |s: Option<&str>, max: usize| {
        s.is_some_and(|s| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
    };
    let class = parts.next();
    matches!(class, Some("2" | "4" | "5"))
        && digits(parts.next(), 3)
        && digits(parts.next(), 3)
        && parts.next().is_none()
}

/// A diagnostic fit for one line of the envelope file: control characters made
/// spaces, cut at `OUTBOUND_DIAGNOSTIC_BYTES_MAX` on a character boundary.
pub(crate) fn clean_diagnostic(text: &str) -> String {
    let mut end = text.len().min(OUTBOUND_DIAGNOSTIC_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> QueueEntry {
        QueueEntry {
            id: QueueId::new_unchecked("18c2d3e4f50a1b2c.1234.7".into()),
            mail_from: "alice@example.com".into(),
            created_unix: 1_700_000_000,
            attempts: 2,
            next_attempt_unix: 1_700_000_360,
            message_bytes: 1234,
            message_crc32: 0x89ab_cdef,
            recipients: vec![
                QueuedRecipient {
                    address: "bob@example.net".into(),
                    state: RecipientState::Pending,
                    status: Some("4.2.0".into()),
                    diagnostic: "450 4.2.0 Greylisted".into(),
                },
                QueuedRecipient {
                    address: "Carol+x@example.net".into(),
                    state: RecipientState::Failed,
                    status: None,
                    diagnostic: String::new(),
                },
            ],
        }
    }

    #[test]
    fn known_bytes_round_trip() -> Result<()> {
        let bytes = entry().to_bytes()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = "msgstore-outbound 1\nid 18c2d3e4f50a1b2c.1234.7\nmail_from alice@example.com\n\
                    created_unix 1700000000\nattempts 2\nnext_attempt_unix 1700000360\n\
                    message_bytes 1234\nmessage_crc32 89abcdef\nrecipients 2\n\
                    rcpt_0 pending 4.2.0 bob@example.net 450 4.2.0 Greylisted\n\
                    rcpt_1 failed - Carol+x@example.net\n";
        assert_eq!(
            text,
            format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
        );
        assert_eq!(QueueEntry::parse(Path::new("e"), &bytes)?, entry());
        Ok(())
    }

    #[test]
    fn rejects_damage() -> Result<()> {
        let p = Path::new("e");
        let bytes = entry().to_bytes()?;
        for len in 0..bytes.len() {
            assert!(QueueEntry::parse(p, &bytes[..len]).is_err(), "cut at {len}");
        }
        let with = |body: &str| {
            let crc = crc32fast::hash(body.as_bytes());
            format!("{body}crc32 {crc:08x}\n").into_bytes()
        };
        let good = String::from_utf8_lossy(&bytes).into_owned();
        let body = &good[..good.rfind("crc32 ").unwrap_or(0)];
        assert!(QueueEntry::parse(p, &with(body)).is_ok());
        for (from, to) in [
            ("recipients 2", "recipients 3"),
            ("recipients 2", "recipients 0"),
            ("rcpt_0 pending", "rcpt_0 waiting"),
            ("4.2.0 bob", "4.2 bob"),
            ("id 18c2", "id ../x"),
            ("message_crc32 89abcdef", "message_crc32 89ABCDEF"),
            ("mail_from alice@example.com", "mail_from <a>"),
            ("attempts 2", "attempts -2"),
        ] {
            let damaged = body.replacen(from, to, 1);
            assert!(QueueEntry::parse(p, &with(&damaged)).is_err(), "{to}");
        }
        Ok(())
    }

    #[test]
    fn ids_and_statuses() {
        assert!(QueueId::parse("18c2.1.2").is_ok());
        for bad in ["", "../x", ".hidden", "ABC", "a/b", &"a".repeat(65)] {
            assert!(QueueId::parse(bad).is_err(), "{bad}");
        }
        assert!(is_status("5.1.1") && is_status("4.4.7") && is_status("2.0.0"));
        assert!(!is_status("3.0.0") && !is_status("5.1") && !is_status("5.1.1.1"));
        assert_eq!(clean_diagnostic(" a\r\nb "), "a  b");
        assert_eq!(clean_diagnostic(&"é".repeat(600)).len(), 512);
    }
}
