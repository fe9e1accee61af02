//! POP3 command lines (RFC 1939, RFC 2449, RFC 2595, RFC 5034) → typed
//! [`Command`]s. The parser sees one line without its CRLF; keywords are
//! case-insensitive and arguments separated by single spaces (runs of spaces
//! are tolerated, except inside a password, which is the rest of the line).

use base64::Engine as _;

use crate::secret::Secret;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The rest of the line after `PASS `: passwords may hold spaces.
    Pass(Secret),
    /// `APOP name digest`, the digest lower-cased hex.
    Apop {
        user: String,
        digest: String,
    },
    /// `AUTH` alone lists the mechanisms (as Dovecot and Outlook do).
    AuthList,
    /// `AUTH mechanism [initial-response]`; `=` is an empty initial response.
    Auth {
        /// Upper-cased.
        mechanism: String,
        initial: Option<Secret>,
    },
    Stls,
    Capa,
    Quit,
    Stat,
    List(Option<MessageNumber>),
    Uidl(Option<MessageNumber>),
    Retr(MessageNumber),
    Top {
        message: MessageNumber,
        body_lines: u32,
    },
    Dele(MessageNumber),
    Noop,
    Rset,
}

/// A message number as sent: 1-based, checked against the maildrop later.
/// Numbers past `u32::MAX` are kept as `u32::MAX` (never a valid message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageNumber(pub u32);

/// Why a line is not a command; each maps to one `-ERR` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Unknown command")]
    Unknown,
    #[error("Syntax: {0}")]
    Syntax(&'static str),
    #[error("Invalid message number")]
    InvalidNumber,
    #[error("Invalid base64 data")]
    InvalidBase64,
    #[error("Invalid mechanism name")]
    InvalidMechanism,
}

/// The keyword of a line, upper-cased (to pick the line-length limit).
pub fn keyword(line: &[u8]) -> Vec<u8> {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    line[..end].to_ascii_uppercase()
}

/// Parses one command line (without CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let keyword = keyword(line);
    let rest = line.get(keyword.len() + 1..).unwrap_or_default();
    let has_rest = line.len() > keyword.len();
    let args: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|a| !a.is_empty())
        .collect();
    let none = |command: Command, usage: &'static str| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(ParseError::Syntax(usage))
        }
    };
    match keyword.as_slice() {
        b"USER" => match args.as_slice() {
            [name] => Ok(Command::User(
                text(name).ok_or(ParseError::Syntax("USER name"))?,
            )),
            _ => Err(ParseError::Syntax("USER name")),
        },
        b"PASS" if has_rest => Ok(Command::Pass(Secret::new(rest.to_vec()))),
        b"PASS" => Err(ParseError::Syntax("PASS password")),
        b"APOP" => parse_apop(&args),
        b"AUTH" => parse_auth(&args),
        b"STLS" => none(Command::Stls, "STLS"),
        b"CAPA" => none(Command::Capa, "CAPA"),
        b"QUIT" => none(Command::Quit, "QUIT"),
        b"STAT" => none(Command::Stat, "STAT"),
        b"NOOP" => none(Command::Noop, "NOOP"),
        b"RSET" => none(Command::Rset, "RSET"),
        b"LIST" => optional_number(&args, "LIST [message]").map(Command::List),
        b"UIDL" => optional_number(&args, "UIDL [message]").map(Command::Uidl),
        b"RETR" => one_number(&args, "RETR message").map(Command::Retr),
        b"DELE" => one_number(&args, "DELE message").map(Command::Dele),
        b"TOP" => match args.as_slice() {
            [message, lines] => Ok(Command::Top {
                message: number(message)?,
                body_lines: number(lines)?.0,
            }),
            _ => Err(ParseError::Syntax("TOP message lines")),
        },
        _ => Err(ParseError::Unknown),
    }
}

fn parse_apop(args: &[&[u8]]) -> Result<Command, ParseError> {
    const USAGE: &str = "APOP name digest";
    let [user, digest] = args else {
        return Err(ParseError::Syntax(USAGE));
    };
    if digest.len() != 32 || !digest.iter().all(u8::is_ascii_hexdigit) {
        return Err(ParseError::Syntax(USAGE));
    }
    Ok(Command::Apop {
        user: text(user).ok_or(ParseError::Syntax(USAGE))?,
        digest: String::from_utf8_lossy(digest).to_ascii_lowercase(),
    })
}

fn parse_auth(args: &[&[u8]]) -> Result<Command, ParseError> {
    let (mechanism, initial) = match args {
        [] => return Ok(Command::AuthList),
        [mechanism] => (mechanism, None),
        [mechanism, initial] => (mechanism, Some(*initial)),
        _ => return Err(ParseError::Syntax("AUTH mechanism [initial-response]")),
    };
    // RFC 4422 §3.1: 1–20 of A–Z 0–9 - _.
    let valid = (1..=20).contains(&mechanism.len())
        && mechanism
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(ParseError::InvalidMechanism);
    }
    Ok(Command::Auth {
        mechanism: String::from_utf8_lossy(mechanism).to_ascii_uppercase(),
        initial: initial.map(decode_sasl).transpose()?,
    })
}

/// A SASL response line: base64, or `=` for an empty response (RFC 5034 §4).
pub fn decode_sasl(line: &[u8]) -> Result<Secret, ParseError> {
    if line == b"=" {
        return Ok(Secret::new(Vec::new()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .map(Secret::new)
        .map_err(|_| ParseError::InvalidBase64)
}

fn optional_number(
    args: &[&[u8]],
    usage: &'static str,
) -> Result<Option<MessageNumber>, ParseError> {
    match args {
        [] => Ok(None),
        [n] => number(n).map(Some),
        _ => Err(ParseError::Syntax(usage)),
    }
}

fn one_number(args: &[&[u8]], usage: &'static str) -> Result<MessageNumber, ParseError> {
    match args {
        [n] => number(n),
        _ => Err(ParseError::Syntax(usage)),
    }
}

/// `1*DIGIT`, saturating at `u32::MAX`.
fn number(bytes: &[u8]) -> Result<MessageNumber, ParseError> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::InvalidNumber);
    }
    let value = bytes.iter().fold(0u32, |n, &b| {
        n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
    });
    Ok(MessageNumber(value))
}

/// A name argument: printable UTF-8 without controls.
fn text(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.chars().any(char::is_control)).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_arguments() {
        assert_eq!(parse_command(b"user bob"), Ok(Command::User("bob".into())));
        assert_eq!(
            parse_command(b"PASS  two words "),
            Ok(Command::Pass(Secret::new(b" two words ".to_vec())))
        );
        assert_eq!(
            parse_command(b"PASS"),
            Err(ParseError::Syntax("PASS password"))
        );
        assert_eq!(
            parse_command(b"top 1 0"),
            Ok(Command::Top {
                message: MessageNumber(1),
                body_lines: 0
            })
        );
        assert_eq!(
            parse_command(b"LIST 99999999999"),
            Ok(Command::List(Some(MessageNumber(u32::MAX))))
        );
        assert_eq!(parse_command(b"RETR x"), Err(ParseError::InvalidNumber));
        assert_eq!(parse_command(b"RETR -1"), Err(ParseError::InvalidNumber));
        assert_eq!(parse_command(b"RETR +1"), Err(ParseError::InvalidNumber));
        assert_eq!(
            parse_command(b"RETR"),
            Err(ParseError::Syntax("RETR message"))
        );
        assert_eq!(parse_command(b"STAT 1"), Err(ParseError::Syntax("STAT")));
        assert_eq!(parse_command(b"XTND"), Err(ParseError::Unknown));
        assert_eq!(parse_command(b""), Err(ParseError::Unknown));
    }

    #[test]
    fn apop_and_auth() {
        assert_eq!(
            parse_command(b"APOP mrose C4C9334BAC560ECC979E58001B3E22FB"),
            Ok(Command::Apop {
                user: "mrose".into(),
                digest: "c4c9334bac560ecc979e58001b3e22fb".into()
            })
        );
        assert!(parse_command(b"APOP mrose c4c9").is_err());
        assert_eq!(
            parse_command(b"auth plain AGJvYgBwdw=="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(Secret::new(b"\0bob\0pw".to_vec()))
            })
        );
        assert_eq!(
            parse_command(b"AUTH PLAIN ="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(Secret::new(Vec::new()))
            })
        );
        assert_eq!(
            parse_command(b"AUTH PLAIN !!"),
            Err(ParseError::InvalidBase64)
        );
        assert_eq!(
            parse_command(b"AUTH PL/AIN"),
            Err(ParseError::InvalidMechanism)
        );
        assert_eq!(parse_command(b"AUTH"), Ok(Command::AuthList));
    }
}
