//! Generated test messages: realistic MIME shapes (plain text, multipart/alternative with HTML,
//! multipart/mixed with a base64 attachment), CRLF line ends, sizes from a distribution. The
//! same seed gives the same message, so two servers can be filled with the same corpus.

use crate::rng::Rng;

/// Envelope senders and From addresses; `UID SEARCH FROM` picks among these.
pub const SENDERS: &[&str] = &[
    "alice@example.net",
    "bob@example.org",
    "carol@example.net",
    "dave@lists.example.org",
    "erin@example.com",
    "frank@example.net",
    "grace@example.org",
    "heidi@example.net",
];

const WORDS: &[&str] = &[
    "the", "meeting", "report", "invoice", "tomorrow", "please", "attached", "review", "quarter",
    "numbers", "project", "update", "thanks", "regards", "schedule", "server", "mail", "backup",
    "weekend", "dinner", "ticket", "delivery", "status", "budget", "draft", "final", "question",
    "about", "and", "of", "to", "we", "you", "will", "can", "for", "with", "this", "that", "a",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sizes {
    /// 2–8 KB
    Small,
    /// mostly small, 12% 8–100 KB, 3% 100 KB–1 MB
    Mixed,
    /// about 1 MB (0.9–1.1 MB)
    Large,
}

/// A target size in bytes drawn from the distribution.
pub fn target_size(sizes: Sizes, rng: &mut Rng) -> usize {
    let n = match sizes {
        Sizes::Small => rng.range(2_000, 8_000),
        Sizes::Large => rng.range(900_000, 1_100_000),
        Sizes::Mixed => {
            let p = rng.below(100);
            if p < 85 {
                rng.range(2_000, 8_000)
            } else if p < 97 {
                rng.range(8_000, 100_000)
            } else {
                rng.range(100_000, 1_000_000)
            }
        }
    };
    n as usize
}

/// A complete message of roughly `size` bytes (within a few hundred bytes).
pub fn generate(rng: &mut Rng, from: &str, to: &str, size: usize) -> Vec<u8> {
    let id = rng.next_u64();
    let n = 3 + rng.below(5) as usize;
    let subject = words(rng, n);
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{id:016x}@loadgen.example>\r\nMIME-Version: 1.0\r\n",
        date(rng)
    )
    .into_bytes();
    let kind = if size > 100_000 { 2 } else { rng.below(10) };
    let boundary = format!("=_lg_{:012x}", id & 0xffff_ffff_ffff);
    let budget = size.saturating_sub(m.len() + 200);
    match kind {
        0..=4 => {
            m.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
            text_body(rng, &mut m, budget);
        }
        5..=7 => {
            m.extend_from_slice(
                format!(
                    "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                )
                .as_bytes(),
            );
            text_body(rng, &mut m, budget * 2 / 5);
            m.extend_from_slice(
                format!("\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n").as_bytes(),
            );
            html_body(rng, &mut m, budget * 3 / 5);
            m.extend_from_slice(format!("</body></html>\r\n\r\n--{boundary}--\r\n").as_bytes());
        }
        _ => {
            m.extend_from_slice(
                format!(
                    "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                )
                .as_bytes(),
            );
            let text = budget.min(3_000) / 2;
            text_body(rng, &mut m, text);
            m.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Type: application/octet-stream; name=\"data-{:04x}.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data-{:04x}.bin\"\r\n\r\n",
                    id & 0xffff,
                    id & 0xffff
                )
                .as_bytes(),
            );
            // base64 grows 3 -> 4 bytes plus CRLF every 76 characters.
            let raw = (budget.saturating_sub(text) * 3 / 4) * 76 / 78;
            base64_body(rng, &mut m, raw);
            m.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        }
    }
    m
}

fn words(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

fn date(rng: &mut Rng) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = rng.below(28) + 1;
    format!(
        "{}, {:02} May 2024 {:02}:{:02}:{:02} +0000",
        DAYS[(day % 7) as usize],
        day,
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

/// Lines of up to ~72 characters; about one line in 40 starts with a dot, to exercise
/// dot-stuffing in LMTP and POP3.
fn text_body(rng: &mut Rng, out: &mut Vec<u8>, bytes: usize) {
    let end = out.len() + bytes.max(40);
    while out.len() < end {
        let n = 6 + rng.below(7) as usize;
        let mut line = words(rng, n);
        if rng.below(40) == 0 {
            line.insert(0, '.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn html_body(rng: &mut Rng, out: &mut Vec<u8>, bytes: usize) {
    let end = out.len() + bytes.max(40);
    while out.len() < end {
        let n = 6 + rng.below(7) as usize;
        let line = format!("<p>{}</p>\r\n", words(rng, n));
        out.extend_from_slice(line.as_bytes());
    }
}

fn base64_body(rng: &mut Rng, out: &mut Vec<u8>, raw_bytes: usize) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut col = 0;
    let mut remaining = raw_bytes.max(3);
    while remaining > 0 {
        let chunk = remaining.min(3);
        remaining -= chunk;
        let v = rng.next_u64();
        let b = [
            (v & 0xff) as u8,
            (v >> 8 & 0xff) as u8,
            (v >> 16 & 0xff) as u8,
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = [
            ALPHABET[(n >> 18 & 63) as usize],
            ALPHABET[(n >> 12 & 63) as usize],
            if chunk > 1 {
                ALPHABET[(n >> 6 & 63) as usize]
            } else {
                b'='
            },
            if chunk > 2 {
                ALPHABET[(n & 63) as usize]
            } else {
                b'='
            },
        ];
        out.extend_from_slice(&chars);
        col += 4;
        if col >= 76 {
            out.extend_from_slice(b"\r\n");
            col = 0;
        }
    }
    if col > 0 {
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_distribution() {
        let mut rng = Rng::new(9);
        for sizes in [Sizes::Small, Sizes::Mixed, Sizes::Large] {
            // Large messages are slow to generate in a debug build: fewer of them.
            let n = if sizes == Sizes::Large { 20 } else { 200 };
            for _ in 0..n {
                let target = target_size(sizes, &mut rng);
                let m = generate(&mut rng, SENDERS[0], "user1@example.com", target);
                let diff = m.len().abs_diff(target);
                assert!(
                    diff < target / 10 + 400,
                    "{sizes:?}: target {target}, got {}",
                    m.len()
                );
            }
        }
    }

    #[test]
    fn messages_are_crlf_and_deterministic() {
        let a = generate(&mut Rng::new(5), SENDERS[1], "u@x", 5000);
        let b = generate(&mut Rng::new(5), SENDERS[1], "u@x", 5000);
        assert_eq!(a, b);
        for (i, byte) in a.iter().enumerate() {
            if *byte == b'\n' {
                assert_eq!(a[i - 1], b'\r');
            }
        }
        assert!(a.ends_with(b"\r\n"));
        assert!(a.starts_with(b"From: bob@example.org\r\n"));
    }

    #[test]
    fn all_three_shapes_occur() {
        let mut rng = Rng::new(11);
        let (mut plain, mut alt, mut mixed) = (0, 0, 0);
        for _ in 0..100 {
            let m = String::from_utf8(generate(&mut rng, SENDERS[2], "u@x", 4000)).expect("ascii");
            if m.contains("multipart/alternative") {
                alt += 1;
                assert!(m.contains("text/html"));
            } else if m.contains("multipart/mixed") {
                mixed += 1;
                assert!(m.contains("Content-Transfer-Encoding: base64"));
            } else {
                plain += 1;
            }
        }
        assert!(plain > 20 && alt > 10 && mixed > 5, "{plain} {alt} {mixed}");
    }
}
