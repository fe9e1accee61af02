//! SMTP/LMTP replies with enhanced status codes (RFC 5321 §4.2, RFC 2034,
//! RFC 3463). A [`Reply`] is always well formed: a 2xx/4xx/5xx code, an enhanced
//! code of the same class and one line of printable text.

use std::fmt;

/// Why [`Reply::new`] refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply code {0} is not 2xx, 4xx or 5xx")]
    Code(u16),
    #[error("enhanced status code {0:?} is not class.subject.detail of the reply's class")]
    Status(String),
}

/// One reply line, e.g. `550 5.1.1 <bob@example.net> User unknown`.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    status: String,
    text: String,
}

impl Reply {
    /// `code` is the three-digit reply code, `status` the RFC 3463 code
    /// (`"5.1.1"`) whose class must equal the code's first digit. Control
    /// characters in `text` become spaces (a reply is one line).
    pub fn new(code: u16, status: &str, text: &str) -> Result<Reply, ReplyError> {
        let class = code / 100;
        if !matches!(class, 2 | 4 | 5) || code > 599 {
            return Err(ReplyError::Code(code));
        }
        if !valid_status(status, class) {
            return Err(ReplyError::Status(status.to_owned()));
        }
        let text = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Ok(Reply {
            code,
            status: status.to_owned(),
            text,
        })
    }

    /// Built from parts this module knows to be valid.
    pub(crate) fn fixed(code: u16, status: &str, text: &str) -> Reply {
        debug_assert!(Reply::new(code, status, text).is_ok(), "{code} {status}");
        Reply {
            code,
            status: status.to_owned(),
            text: text.to_owned(),
        }
    }

    /// `250 2.0.0 Delivered`: the message is durably stored for this recipient.
    pub fn delivered() -> Reply {
        Reply::fixed(250, "2.0.0", "Delivered")
    }

    /// `451 4.3.0`: try again later (store busy, shard unreachable, I/O error).
    pub fn temporary_failure() -> Reply {
        Reply::fixed(451, "4.3.0", "Temporary failure, try again later")
    }

    /// `452 4.2.2`: the mailbox is full now (quota), the MTA retries later.
    pub fn mailbox_full() -> Reply {
        Reply::fixed(452, "4.2.2", "Mailbox is over quota")
    }

    /// `552 5.2.2`: this message alone is larger than the recipient's quota.
    pub fn message_over_quota() -> Reply {
        Reply::fixed(552, "5.2.2", "Message is larger than the mailbox quota")
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// True for 2xx.
    pub fn is_positive(&self) -> bool {
        self.code < 300
    }

    /// The wire form, CRLF included.
    pub(crate) fn write_to(&self, output: &mut Vec<u8>) {
        output.extend_from_slice(format!("{self}\r\n").as_bytes());
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({self})")
    }
}

/// `class "." subject "." detail`, subject and detail 1–3 digits (RFC 3463 §2).
fn valid_status(status: &str, class: u16) -> bool {
    let mut parts = status.split('.');
    let (Some(first), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits =
        |part: &str| (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
    first == class.to_string() && digits(subject) && digits(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_checks_code_and_class() {
        assert_eq!(
            Reply::new(550, "5.1.1", "User\r\nunknown").map(|r| r.to_string()),
            Ok("550 5.1.1 User  unknown".to_owned())
        );
        assert!(Reply::new(550, "4.1.1", "x").is_err());
        assert!(Reply::new(354, "3.0.0", "x").is_err());
        assert!(Reply::new(250, "2.0", "x").is_err());
        assert!(Reply::new(250, "2.0.1234", "x").is_err());
        assert!(Reply::new(650, "6.0.0", "x").is_err());
        for reply in [
            Reply::delivered(),
            Reply::temporary_failure(),
            Reply::mailbox_full(),
            Reply::message_over_quota(),
        ] {
            assert!(Reply::new(reply.code(), reply.status(), reply.text()).is_ok());
        }
    }
}
