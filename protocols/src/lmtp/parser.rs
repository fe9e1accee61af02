//! LMTP command lines (RFC 2033, RFC 5321 §4.1) → typed [`Command`]s.
//!
//! The parser sees one line without its CRLF and never fails silently: every
//! refusal is a [`CommandError`] that carries the reply to send.

use crate::limits::LMTP_PATH_BYTES_MAX;
use crate::lmtp::reply::Reply;

/// `BODY=` of `MAIL FROM` (RFC 6152). BINARYMIME is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
}

/// `MAIL FROM:<reverse-path> [SIZE=n] [BODY=…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The sender address; empty for the null reverse path `<>` (bounces).
    pub address: String,
    /// `SIZE=` (RFC 1870), the client's estimate in bytes.
    pub size_bytes: Option<u64>,
    pub body: BodyType,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Lhlo {
        client: String,
    },
    Mail(MailFrom),
    Rcpt {
        address: String,
    },
    Data,
    Bdat {
        size_bytes: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    /// `HELO` / `EHLO`: SMTP greetings, refused on an LMTP port.
    SmtpGreeting,
}

/// A refused command line and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub reply: Reply,
    /// Counts toward the error limit (syntax errors do; size refusals do not).
    pub counts_as_error: bool,
}

impl CommandError {
    fn syntax(code: u16, status: &str, text: &str) -> CommandError {
        CommandError {
            reply: Reply::fixed(code, status, text),
            counts_as_error: true,
        }
    }
}

/// Parses one command line (without CRLF). `message_bytes_max` is the
/// session's limit, checked against `SIZE=`.
pub fn parse_command(line: &[u8], message_bytes_max: u64) -> Result<Command, CommandError> {
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], Some(&line[space + 1..])),
        None => (line, None),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |command: Command, usage: &str| match rest {
        None => Ok(command),
        Some(_) => Err(CommandError::syntax(501, "5.5.4", usage)),
    };
    match verb.as_slice() {
        b"LHLO" => parse_lhlo(rest),
        b"MAIL" => parse_mail(rest.unwrap_or_default(), message_bytes_max).map(Command::Mail),
        b"RCPT" => parse_rcpt(rest.unwrap_or_default()),
        b"DATA" => no_args(Command::Data, "Syntax: DATA"),
        b"BDAT" => parse_bdat(rest.unwrap_or_default()),
        b"RSET" => no_args(Command::Rset, "Syntax: RSET"),
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
        b"NOOP" => Ok(Command::Noop),
        b"QUIT" => no_args(Command::Quit, "Syntax: QUIT"),
        b"VRFY" => Ok(Command::Vrfy),
        b"EXPN" => Ok(Command::Expn),
        b"HELP" => Ok(Command::Help),
        b"HELO" | b"EHLO" => Ok(Command::SmtpGreeting),
        _ => Err(CommandError::syntax(500, "5.5.2", "Command unrecognized")),
    }
}

fn parse_lhlo(rest: Option<&[u8]>) -> Result<Command, CommandError> {
    let usage = || CommandError::syntax(501, "5.5.4", "Syntax: LHLO hostname");
    let client = rest
        .map(trim_spaces)
        .filter(|c| !c.is_empty())
        .ok_or_else(usage)?;
    if !client.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(usage());
    }
    Ok(Command::Lhlo {
        client: String::from_utf8_lossy(client).into_owned(),
    })
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// `"FROM:" <path> *(SP param)`; a space after the colon is tolerated.
fn parse_mail(rest: &[u8], message_bytes_max: u64) -> Result<MailFrom, CommandError> {
    let usage = || CommandError::syntax(501, "5.5.4", "Syntax: MAIL FROM:<address>");
    let after = strip_prefix_ignore_case(rest, b"FROM:").ok_or_else(usage)?;
    let (path, params) = split_path(after).ok_or_else(usage)?;
    let address = if path.is_empty() {
        String::new()
    } else {
        parse_mailbox(path, false)
            .ok_or_else(|| CommandError::syntax(501, "5.1.7", "Bad sender address syntax"))?
    };
    let mut mail = MailFrom {
        address,
        size_bytes: None,
        body: BodyType::SevenBit,
    };
    let mut body_seen = false;
    for param in params {
        let (keyword, value) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (&param[..eq], Some(&param[eq + 1..])),
            None => (param, None),
        };
        let duplicate = || CommandError::syntax(501, "5.5.4", "Duplicate MAIL parameter");
        if keyword.eq_ignore_ascii_case(b"SIZE") {
            if mail.size_bytes.is_some() {
                return Err(duplicate());
            }
            let size = value
                .and_then(parse_decimal)
                .ok_or_else(|| CommandError::syntax(501, "5.5.4", "Syntax: SIZE=<bytes>"))?;
            // An overflowing number is simply too big.
            let size = size.unwrap_or(u64::MAX);
            if size > message_bytes_max {
                return Err(CommandError {
                    reply: Reply::fixed(
                        552,
                        "5.3.4",
                        "Message size exceeds fixed maximum message size",
                    ),
                    counts_as_error: false,
                });
            }
            mail.size_bytes = Some(size);
        } else if keyword.eq_ignore_ascii_case(b"BODY") {
            if std::mem::replace(&mut body_seen, true) {
                return Err(duplicate());
            }
            mail.body = match value {
                Some(v) if v.eq_ignore_ascii_case(b"7BIT") => BodyType::SevenBit,
                Some(v) if v.eq_ignore_ascii_case(b"8BITMIME") => BodyType::EightBitMime,
                _ => {
                    return Err(CommandError::syntax(
                        501,
                        "5.5.4",
                        "Syntax: BODY=7BIT or BODY=8BITMIME",
                    ));
                }
            };
        } else {
            return Err(CommandError::syntax(
                555,
                "5.5.4",
                "Unsupported MAIL parameter",
            ));
        }
    }
    Ok(mail)
}

/// `"TO:" <path>`; no RCPT parameters are offered (no DSN).
fn parse_rcpt(rest: &[u8]) -> Result<Command, CommandError> {
    let usage = || CommandError::syntax(501, "5.5.4", "Syntax: RCPT TO:<address>");
    let after = strip_prefix_ignore_case(rest, b"TO:").ok_or_else(usage)?;
    let (path, mut params) = split_path(after).ok_or_else(usage)?;
    if params.next().is_some() {
        return Err(CommandError::syntax(
            555,
            "5.5.4",
            "Unsupported RCPT parameter",
        ));
    }
    let address = parse_mailbox(path, true)
        .ok_or_else(|| CommandError::syntax(501, "5.1.3", "Bad recipient address syntax"))?;
    Ok(Command::Rcpt { address })
}

/// `BDAT SP chunk-size [SP "LAST"]` (RFC 3030 §2).
fn parse_bdat(rest: &[u8]) -> Result<Command, CommandError> {
    let usage = || CommandError::syntax(501, "5.5.4", "Syntax: BDAT <size> [LAST]");
    let mut words = rest.split(|&b| b == b' ');
    let size_bytes = words
        .next()
        .and_then(parse_decimal)
        .flatten()
        .ok_or_else(usage)?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return Err(usage()),
    };
    if words.next().is_some() {
        return Err(usage());
    }
    Ok(Command::Bdat { size_bytes, last })
}

/// 1*DIGIT: `None` if not digits, `Some(None)` if it overflows a u64.
fn parse_decimal(bytes: &[u8]) -> Option<Option<u64>> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().try_fold(0u64, |n, &b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    }))
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| trim_start(&bytes[prefix.len()..]))
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

/// `"<" path ">" params`: the bytes inside the brackets and the parameters.
fn split_path(bytes: &[u8]) -> Option<(&[u8], impl Iterator<Item = &[u8]>)> {
    let inner = bytes.strip_prefix(b"<")?;
    let close = closing_bracket(inner)?;
    let path = &inner[..close];
    if path.len() + 2 > LMTP_PATH_BYTES_MAX {
        return None;
    }
    let params = &inner[close + 1..];
    if !params.is_empty() && !params.starts_with(b" ") {
        return None;
    }
    Some((path, params.split(|&b| b == b' ').filter(|p| !p.is_empty())))
}

/// Index of the `>` that closes a path, skipping quoted strings.
fn closing_bracket(bytes: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(index),
            _ => {}
        }
    }
    None
}

/// `[A-d-l ":"] Mailbox` (RFC 5321 §4.1.2), source route dropped. With
/// `postmaster_ok`, the bare `<Postmaster>` of §4.5.1 is accepted too.
fn parse_mailbox(path: &[u8], postmaster_ok: bool) -> Option<String> {
    let mailbox = match path.first() {
        Some(b'@') => &path[path.iter().position(|&b| b == b':')? + 1..],
        _ => path,
    };
    if postmaster_ok && mailbox.eq_ignore_ascii_case(b"postmaster") {
        return Some(String::from_utf8_lossy(mailbox).into_owned());
    }
    let at = local_part_len(mailbox)?;
    let domain = mailbox.get(at + 1..)?;
    if mailbox.get(at) != Some(&b'@') || !valid_domain(domain) {
        return None;
    }
    Some(String::from_utf8_lossy(mailbox).into_owned())
}

/// Length of the local part (dot-string or quoted-string) at the start.
fn local_part_len(mailbox: &[u8]) -> Option<usize> {
    if mailbox.first() == Some(&b'"') {
        let mut escaped = false;
        for (index, &byte) in mailbox.iter().enumerate().skip(1) {
            if !(0x20..0x7f).contains(&byte) {
                return None;
            }
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => return Some(index + 1),
                _ => {}
            }
        }
        return None;
    }
    let len = mailbox
        .iter()
        .position(|&b| !(is_atext(b) || b == b'.'))
        .unwrap_or(mailbox.len());
    (len > 0).then_some(len)
}

/// RFC 5322 `atext`.
fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

/// A domain name or an address literal `[…]`.
fn valid_domain(domain: &[u8]) -> bool {
    if let Some(literal) = domain.strip_prefix(b"[") {
        return literal.strip_suffix(b"]").is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| (0x21..0x7f).contains(&b) && !b"[]\\".contains(&b))
        });
    }
    !domain.is_empty()
        && domain.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1000;

    fn error_line(line: &[u8]) -> String {
        match parse_command(line, MAX) {
            Err(error) => error.reply.to_string(),
            Ok(command) => panic!("accepted {command:?}"),
        }
    }

    #[test]
    fn mail_with_params() {
        assert_eq!(
            parse_command(b"mail from: <a@b.example> size=12 body=8bitmime", MAX),
            Ok(Command::Mail(MailFrom {
                address: "a@b.example".into(),
                size_bytes: Some(12),
                body: BodyType::EightBitMime
            }))
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<>", MAX),
            Ok(Command::Mail(MailFrom {
                address: String::new(),
                size_bytes: None,
                body: BodyType::SevenBit
            }))
        );
        assert!(error_line(b"MAIL FROM:<a@b> SIZE=1001").starts_with("552 5.3.4"));
        assert!(
            error_line(b"MAIL FROM:<a@b> SIZE=99999999999999999999999").starts_with("552 5.3.4")
        );
        assert!(error_line(b"MAIL FROM:<a@b> SIZE=x").starts_with("501 5.5.4"));
        assert!(error_line(b"MAIL FROM:<a@b> SIZE=1 SIZE=2").starts_with("501 5.5.4"));
        assert!(error_line(b"MAIL FROM:<a@b> BODY=BINARYMIME").starts_with("501 5.5.4"));
        assert!(error_line(b"MAIL FROM:<a@b> RET=FULL").starts_with("555 5.5.4"));
        assert!(error_line(b"MAIL FROM:<a b@c>").starts_with("501 5.1.7"));
        assert!(error_line(b"MAIL FROM:a@b").starts_with("501 5.5.4"));
        assert!(error_line(b"MAIL TO:<a@b>").starts_with("501 5.5.4"));
    }

    #[test]
    fn rcpt_addresses() {
        let rcpt = |line: &[u8]| parse_command(line, MAX);
        assert_eq!(
            rcpt(b"RCPT TO:<@relay.example:bob+box@example.net>"),
            Ok(Command::Rcpt {
                address: "bob+box@example.net".into()
            })
        );
        assert_eq!(
            rcpt(b"RCPT TO:<\"odd > name\"@[192.0.2.1]>"),
            Ok(Command::Rcpt {
                address: "\"odd > name\"@[192.0.2.1]".into()
            })
        );
        assert_eq!(
            rcpt(b"rcpt to:<Postmaster>"),
            Ok(Command::Rcpt {
                address: "Postmaster".into()
            })
        );
        assert!(error_line(b"RCPT TO:<bob>").starts_with("501 5.1.3"));
        assert!(error_line(b"RCPT TO:<bob@>").starts_with("501 5.1.3"));
        assert!(error_line(b"RCPT TO:<b\xc3\xa9@x.example>").starts_with("501 5.1.3"));
        assert!(error_line(b"RCPT TO:<a@b> NOTIFY=NEVER").starts_with("555 5.5.4"));
        let long = [b"RCPT TO:<".as_slice(), &[b'a'; 250], b"@example.net>"].concat();
        assert!(error_line(&long).starts_with("501 5.5.4"));
    }

    #[test]
    fn bdat_sizes() {
        assert_eq!(
            parse_command(b"BDAT 0 last", MAX),
            Ok(Command::Bdat {
                size_bytes: 0,
                last: true
            })
        );
        for bad in [
            &b"BDAT"[..],
            b"BDAT -1",
            b"BDAT 1x",
            b"BDAT 12 LAST x",
            b"BDAT 12 FIRST",
            b"BDAT 99999999999999999999999",
        ] {
            assert!(error_line(bad).starts_with("501 5.5.4"), "{bad:?}");
        }
    }
}
