//! Delivery status notifications (RFC 3464) for messages that could not be
//! delivered: a `multipart/report; report-type=delivery-status` with a human part,
//! a `message/delivery-status` part (one block per failed recipient) and the
//! original message's header as `text/rfc822-headers` (RFC 6522).

use crate::limits::BOUNCE_HEADER_BYTES_MAX;
use crate::outbound::entry::{QueueEntry, QueuedRecipient};

/// Builds the bounce for `entry`'s failed recipients. `original` is the queued
/// message (`None` when it could not be read: the report says so instead of quoting
/// headers). `reporting_host` names this system (`From: MAILER-DAEMON@host`).
pub fn delivery_status_notification(
    entry: &QueueEntry,
    original: Option<&[u8]>,
    reporting_host: &str,
    now_unix: u64,
) -> Vec<u8> {
    let headers = original.map(original_headers);
    let mut boundary = format!("=_msgstore_dsn_{}", entry.id);
    while headers
        .as_ref()
        .is_some_and(|h| contains(h, boundary.as_bytes()))
    {
        boundary.push('_');
    }
    let failed: Vec<&QueuedRecipient> = entry.failed().collect();
    let now = rfc5322_date(now_unix);
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push_str("\r\n");
    };
    line(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{reporting_host}>"
    ));
    line(&format!("To: <{}>", entry.mail_from));
    line("Subject: Undelivered Mail Returned to Sender");
    line(&format!("Date: {now}"));
    line(&format!("Message-ID: <{}.dsn@{reporting_host}>", entry.id));
    line("Auto-Submitted: auto-replied");
    line("MIME-Version: 1.0");
    line(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
    ));
    line("");
    line("This is a MIME-encapsulated message.");
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: text/plain; charset=us-ascii");
    line("Content-Description: Notification");
    line("");
    line(&format!(
        "This is the mail system at host {reporting_host}."
    ));
    line("");
    line("I'm sorry to have to inform you that your message could not");
    line("be delivered to one or more recipients.");
    line("");
    for rcpt in &failed {
        let reason = if rcpt.diagnostic.is_empty() {
            "delivery failed"
        } else {
            &rcpt.diagnostic
        };
        line(&format!("<{}>: {}", ascii(&rcpt.address), ascii(reason)));
    }
    if original.is_none() {
        line("");
        line("(The original message could not be read; its header is not included.)");
    }
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: message/delivery-status");
    line("Content-Description: Delivery report");
    line("");
    line(&format!("Reporting-MTA: dns; {reporting_host}"));
    line(&format!("X-Msgstore-Queue-ID: {}", entry.id));
    line(&format!(
        "Arrival-Date: {}",
        rfc5322_date(entry.created_unix)
    ));
    for rcpt in &failed {
        line("");
        line(&format!(
            "Final-Recipient: rfc822; {}",
            ascii(&rcpt.address)
        ));
        line("Action: failed");
        line(&format!(
            "Status: {}",
            rcpt.status.as_deref().unwrap_or("5.0.0")
        ));
        if !rcpt.diagnostic.is_empty() {
            line(&format!(
                "Diagnostic-Code: {}",
                diagnostic_code(&rcpt.diagnostic)
            ));
        }
        line(&format!("Last-Attempt-Date: {now}"));
    }
    line("");
    let mut bytes = out.into_bytes();
    if let Some(headers) = headers {
        let mut part = format!("--{boundary}\r\n");
        part.push_str("Content-Type: text/rfc822-headers\r\n");
        part.push_str("Content-Description: Undelivered Message Headers\r\n\r\n");
        bytes.extend_from_slice(part.as_bytes());
        bytes.extend_from_slice(&headers);
        if !headers.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    bytes
}

/// `smtp; 550 5.1.1 …` for a server's reply, `x-msgstore; …` for our own verdicts.
fn diagnostic_code(diagnostic: &str) -> String {
    let from_server = diagnostic.len() >= 3
        && diagnostic.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        && diagnostic.as_bytes().get(3).is_none_or(|b| *b == b' ');
    let kind = if from_server { "smtp" } else { "x-msgstore" };
    format!("{kind}; {}", ascii(diagnostic))
}

/// The header block of a message, up to and including the CRLF before the blank line,
/// cut at a line end within `BOUNCE_HEADER_BYTES_MAX`.
fn original_headers(message: &[u8]) -> Vec<u8> {
    let end = find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 2);
    let mut headers = &message[..end];
    if headers.len() > BOUNCE_HEADER_BYTES_MAX {
        let cut = &headers[..BOUNCE_HEADER_BYTES_MAX];
        let line_end = cut
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |i| i + 2);
        headers = &headers[..line_end];
    }
    // 8-bit bytes would make the part non-us-ascii: escape them like RFC 2047 cannot.
    headers
        .iter()
        .flat_map(|&b| {
            if b.is_ascii() {
                vec![b]
            } else {
                format!("\\x{b:02x}").into_bytes()
            }
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Printable ASCII only (a DSN field is one us-ascii line).
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `Thu, 1 Jan 1970 00:00:00 +0000` (RFC 5322 §3.3, in UTC).
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31): Howard Hinnant's
/// `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from `date -u -R -d @N`.
    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            rfc5322_date(4_102_444_799),
            "Thu, 31 Dec 2099 23:59:59 +0000"
        );
    }

    #[test]
    fn headers_are_cut_at_the_blank_line_and_bounded() {
        assert_eq!(
            original_headers(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(original_headers(b"A: \xe9\r\n"), b"A: \\xe9\r\n");
        let mut big = Vec::new();
        while big.len() < BOUNCE_HEADER_BYTES_MAX * 2 {
            big.extend_from_slice(b"X-Long: 0123456789\r\n");
        }
        let cut = original_headers(&big);
        assert!(cut.len() <= BOUNCE_HEADER_BYTES_MAX && cut.ends_with(b"\r\n"));
        assert_eq!(diagnostic_code("550 5.1.1 no"), "smtp; 550 5.1.1 no");
        assert_eq!(diagnostic_code("timeout"), "x-msgstore; timeout");
    }
}
