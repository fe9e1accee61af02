//! Criterion benchmarks of the hot paths that are not the store's own (those are in
//! `store/benches/mailstore.rs`): IMAP command parsing, a FETCH answered from the
//! precomputed cache (decode + the bytes a session writes), MIME precompute at
//! delivery, and LMTP command parsing.
//!
//! `cargo bench -p bench --bench hot_paths -- --save-baseline main` saves a baseline;
//! `-- --baseline main` compares against it.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// A realistic message: headers, a text part, an HTML alternative, a base64 attachment.
fn sample_message() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(
        b"Return-Path: <alice@example.org>\r\n\
          From: Alice Example <alice@example.org>\r\n\
          To: Bob <bob@example.com>, Carol <carol@example.com>\r\n\
          Cc: team@example.com\r\n\
          Subject: Re: [team] quarterly numbers\r\n\
          Date: Sat, 28 Nov 2026 10:11:12 +0100\r\n\
          Message-ID: <1234.5678@example.org>\r\n\
          In-Reply-To: <1111.2222@example.com>\r\n\
          References: <0000.1111@example.com> <1111.2222@example.com>\r\n\
          MIME-Version: 1.0\r\n\
          Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
          --outer\r\n\
          Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n\
          --inner\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    );
    for i in 0..40 {
        m.extend_from_slice(format!("Line {i} of the plain text part, caf=C3=A9.\r\n").as_bytes());
    }
    m.extend_from_slice(b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
    for i in 0..40 {
        m.extend_from_slice(format!("<p>Line {i} of the html part</p>\r\n").as_bytes());
    }
    m.extend_from_slice(
        b"</body></html>\r\n--inner--\r\n--outer\r\n\
          Content-Type: application/pdf; name=\"numbers.pdf\"\r\n\
          Content-Disposition: attachment; filename=\"numbers.pdf\"\r\n\
          Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for _ in 0..200 {
        m.extend_from_slice(
            b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+\r\n",
        );
    }
    m.extend_from_slice(b"--outer--\r\n");
    m
}

fn imap_parse(c: &mut Criterion) {
    let commands: [&[u8]; 4] = [
        b"a1 UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID)])\r\n",
        b"a2 UID STORE 100:200 +FLAGS.SILENT (\\Seen \\Flagged)\r\n",
        b"a3 UID SEARCH RETURN (MIN MAX COUNT) OR FROM alice SUBJECT \"numbers\" SINCE 1-Jan-2026\r\n",
        b"a4 SELECT \"INBOX\" (CONDSTORE)\r\n",
    ];
    let mut g = c.benchmark_group("imap_parse");
    g.throughput(Throughput::Elements(commands.len() as u64));
    g.bench_function("fetch_store_search_select", |b| {
        b.iter(|| {
            for cmd in commands {
                let _ = black_box(protocols::imap::parser::parse_command(black_box(cmd)));
            }
        })
    });
    g.finish();
}

fn mime_precompute(c: &mut Criterion) {
    let msg = sample_message();
    let mut g = c.benchmark_group("mime_precompute");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("multipart_with_attachment", |b| {
        b.iter(|| black_box(store::message::precompute(black_box(&msg))))
    });
    g.finish();
}

fn fetch_from_cache(c: &mut Criterion) {
    let msg = sample_message();
    let record = store::message::cache::encode(&store::message::precompute(&msg));
    let mut g = c.benchmark_group("fetch_from_cache");
    g.throughput(Throughput::Elements(1));
    // What answering `FETCH n (ENVELOPE BODYSTRUCTURE)` costs per message: decode the
    // cache record and write the response line; no MIME parsing.
    g.bench_function("envelope_bodystructure", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let p = store::message::cache::decode(black_box(&record)).expect("record");
            out.extend_from_slice(b"* 1 FETCH (ENVELOPE ");
            out.extend_from_slice(&p.envelope);
            out.extend_from_slice(b" BODYSTRUCTURE ");
            out.extend_from_slice(&p.bodystructure);
            out.extend_from_slice(b")\r\n");
            black_box(out.len())
        })
    });
    g.finish();
}

fn lmtp_parse(c: &mut Criterion) {
    let lines: [&[u8]; 3] = [
        b"MAIL FROM:<alice@example.org> SIZE=12345 BODY=8BITMIME",
        b"RCPT TO:<bob+lists@example.com>",
        b"DATA",
    ];
    let mut g = c.benchmark_group("lmtp_parse");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("mail_rcpt_data", |b| {
        b.iter(|| {
            for l in lines {
                let _ = black_box(protocols::lmtp::parser::parse_command(
                    black_box(l),
                    64 << 20,
                ));
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    imap_parse,
    mime_precompute,
    fetch_from_cache,
    lmtp_parse
);
criterion_main!(benches);
