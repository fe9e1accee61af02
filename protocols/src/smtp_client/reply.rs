//! SMTP replies as a client reads them (RFC 5321 §4.2): one or more lines
//! `ddd-text` … `ddd text`, the same code on every line; an RFC 3463 enhanced
//! status code may start the text (RFC 2034).

use std::fmt;

use crate::limits::SMTP_CLIENT_REPLY_LINES_MAX;

/// A complete reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    code: u16,
    /// The text of each line, after `ddd-` / `ddd ` (lossily decoded, control
    /// characters made spaces).
    lines: Vec<String>,
}

impl SmtpReply {
    /// The three-digit reply code (200..=599).
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The text lines, in order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// 2xx (or 3xx, the intermediate "go ahead" of DATA and STARTTLS-less servers).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The enhanced status code at the start of the first line (`5.1.1`) when its
    /// class matches the reply code's, else `None`.
    pub fn enhanced_status(&self) -> Option<&str> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let mut parts = word.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        let digits = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        let ok = parts.next().is_none()
            && class.len() == 1
            && class.as_bytes()[0] == b'0' + (self.code / 100) as u8
            && digits(subject, 3)
            && digits(detail, 3);
        ok.then_some(word)
    }

    /// The enhanced status, or `class.0.0` when the server gave none.
    pub fn status(&self) -> String {
        self.enhanced_status()
            .map_or_else(|| format!("{}.0.0", self.code / 100), str::to_owned)
    }
}

impl fmt::Display for SmtpReply {
    /// `550 5.1.1 User unknown` (lines of a multi-line reply joined by a space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in &self.lines {
            if !line.is_empty() {
                write!(f, " {line}")?;
            }
        }
        Ok(())
    }
}

/// Why a line is not part of a well-formed reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply code changed within a multi-line reply ({first} then {then})")]
    CodeChanged { first: u16, then: u16 },
    #[error("reply of more than {SMTP_CLIENT_REPLY_LINES_MAX} lines")]
    TooManyLines,
    #[error("reply line too long")]
    LineTooLong,
}

/// Collects reply lines until a reply is complete.
#[derive(Debug, Default)]
pub(crate) struct ReplyAssembler {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyAssembler {
    /// Takes one line (without CRLF); `Some` when it ended a reply.
    pub(crate) fn push(&mut self, line: &[u8]) -> Result<Option<SmtpReply>, ReplyError> {
        let malformed = || ReplyError::Malformed(String::from_utf8_lossy(line).into_owned());
        let code_ok = line.len() >= 3
            && matches!(line[0], b'2'..=b'5')
            && line[1].is_ascii_digit()
            && line[2].is_ascii_digit();
        if !code_ok {
            return Err(malformed());
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(malformed()),
        };
        if let Some(first) = self.code
            && first != code
        {
            return Err(ReplyError::CodeChanged { first, then: code });
        }
        if self.lines.len() >= SMTP_CLIENT_REPLY_LINES_MAX {
            return Err(ReplyError::TooManyLines);
        }
        self.code = Some(code);
        let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        self.code = None;
        Ok(Some(SmtpReply {
            code,
            lines: std::mem::take(&mut self.lines),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Option<SmtpReply>, ReplyError> {
        let mut assembler = ReplyAssembler::default();
        let mut result = Ok(None);
        for line in lines {
            result = assembler.push(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        result
    }

    #[test]
    fn single_and_multi_line() {
        let reply = parse(&["250 2.1.0 Ok"]).ok().flatten();
        let reply = reply.expect("a reply");
        assert_eq!(reply.code(), 250);
        assert_eq!(reply.enhanced_status(), Some("2.1.0"));
        assert_eq!(reply.to_string(), "250 2.1.0 Ok");
        let reply = parse(&["250-mx.example", "250-PIPELINING", "250 SIZE 1000"]);
        let reply = reply.ok().flatten().expect("a reply");
        assert_eq!(reply.lines(), ["mx.example", "PIPELINING", "SIZE 1000"]);
        assert_eq!(reply.enhanced_status(), None);
        assert_eq!(reply.status(), "2.0.0");
        assert_eq!(parse(&["250-a"]), Ok(None));
        let bare = parse(&["354"]).ok().flatten().expect("a reply");
        assert_eq!((bare.code(), bare.to_string()), (354, "354".to_owned()));
        // A status of the wrong class is not one.
        let wrong = parse(&["550 4.1.1 x"]).ok().flatten().expect("a reply");
        assert_eq!(wrong.enhanced_status(), None);
        assert_eq!(wrong.status(), "5.0.0");
    }

    #[test]
    fn malformed() {
        for bad in ["", "25", "abc", "150 x", "650 x", "250x", "2a0 x"] {
            assert!(
                matches!(parse(&[bad]), Err(ReplyError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&["250-a", "251 b"]),
            Err(ReplyError::CodeChanged {
                first: 250,
                then: 251
            })
        );
        let many = vec!["250-x"; SMTP_CLIENT_REPLY_LINES_MAX + 1];
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
    }
}
