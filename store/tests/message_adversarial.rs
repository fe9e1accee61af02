//! Hostile and broken messages: precompute must accept any bytes, never panic, stay
//! linear, and give a structure a client can use.

use store::message::{
    PartKind, Precomputed, SectionText, cache, limits, normalize_crlf, precompute,
};

/// Checks the invariants every result must satisfy, and that it survives the cache.
fn check(msg: &[u8]) -> Precomputed {
    let p = precompute(msg);
    assert_eq!(p.size, msg.len() as u64);
    assert!(p.envelope.starts_with(b"(") && p.envelope.ends_with(b")"));
    assert!(p.bodystructure.starts_with(b"(") && p.bodystructure.ends_with(b")"));
    assert!(p.body.starts_with(b"(") && p.body.ends_with(b")"));
    assert!(!p.parts.is_empty());
    assert_eq!(p.parts[0].subtree_len as usize, p.parts.len());
    for (i, part) in p.parts.iter().enumerate() {
        assert!(
            part.header.start <= part.header.end
                && part.header.end <= part.body.start.max(part.header.end)
        );
        assert!(
            part.body.start <= part.body.end && part.body.end <= p.size,
            "part {i}"
        );
        assert!(i + part.subtree_len as usize <= p.parts.len());
    }
    for t in [SectionText::Body, SectionText::Header, SectionText::Text] {
        let r = p
            .section(&[], t)
            .and_then(|r| r.to_range())
            .expect("top-level section");
        assert!(msg.get(r).is_some());
    }
    assert_eq!(cache::decode(&cache::encode(&p)).as_ref(), Ok(&p));
    p
}

fn section<'a>(msg: &'a [u8], p: &Precomputed, path: &[u32], t: SectionText) -> &'a [u8] {
    let r = p
        .section(path, t)
        .and_then(|r| r.to_range())
        .expect("section");
    &msg[r]
}

#[test]
fn empty_message() {
    let p = check(b"");
    assert_eq!(p.envelope, b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_eq!(
        p.body,
        b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
    );
}

#[test]
fn bare_lf_is_normalised_then_parsed() {
    let msg = normalize_crlf(b"Subject: lf\n\nline1\nline2\n");
    let p = check(&msg);
    assert_eq!(
        section(&msg, &p, &[], SectionText::Text),
        b"line1\r\nline2\r\n"
    );
    assert!(p.body.ends_with(b" 14 2)"));
}

#[test]
fn nul_bytes_anywhere() {
    let msg = b"Subject: a\0b\r\nFrom: \"x\0y\" <a\0@b>\r\nContent-Type: text/plain; name=\"a\0b\"\r\n\r\n\0\0\0\r\n";
    let p = check(msg);
    assert_eq!(section(msg, &p, &[], SectionText::Text), b"\0\0\0\r\n");
}

#[test]
fn no_header_body_separator() {
    let msg = b"Subject: only a header\r\nFrom: a@b.c";
    let p = check(msg);
    assert_eq!(section(msg, &p, &[], SectionText::Header), &msg[..]);
    assert_eq!(section(msg, &p, &[], SectionText::Text), b"");
}

#[test]
fn megabyte_header_line() {
    let mut msg = b"Subject: ".to_vec();
    msg.extend(std::iter::repeat_n(b'x', 1 << 20));
    msg.extend_from_slice(b"\r\nX-Long: ");
    msg.extend(std::iter::repeat_n(b'(', 1 << 20));
    msg.extend_from_slice(b"\r\nTo: ");
    msg.extend(std::iter::repeat_n(b"a@b, ".as_slice(), 100_000).flatten());
    msg.extend_from_slice(b"\r\n\r\nbody\r\n");
    let p = check(&msg);
    assert_eq!(section(&msg, &p, &[], SectionText::Text), b"body\r\n");
}

#[test]
fn ten_thousand_parts() {
    let mut msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for i in 0..10_000 {
        msg.extend_from_slice(
            format!("--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n").as_bytes(),
        );
    }
    msg.extend_from_slice(b"--b--\r\n");
    let p = check(&msg);
    assert_eq!(p.parts.len(), 10_001);
    assert_eq!(
        section(&msg, &p, &[10_000], SectionText::Body),
        b"part 9999"
    );
    assert_eq!(
        section(&msg, &p, &[1], SectionText::Mime),
        b"Content-Type: text/plain\r\n\r\n"
    );
    assert_eq!(p.parts[10_000].path, vec![10_000]);
}

#[test]
fn parts_beyond_the_cap_become_one_opaque_body() {
    let n = limits::PARTS_MAX + 10;
    let mut msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for _ in 0..n {
        msg.extend_from_slice(b"--b\r\n\r\nx\r\n");
    }
    msg.extend_from_slice(b"--b--\r\n");
    let p = check(&msg);
    assert_eq!(p.parts.len(), limits::PARTS_MAX);
}

#[test]
fn deeply_nested_messages() {
    let depth = 1_000;
    let mut msg = Vec::new();
    for _ in 0..depth {
        msg.extend_from_slice(b"Subject: nest\r\nContent-Type: message/rfc822\r\n\r\n");
    }
    msg.extend_from_slice(b"Subject: inner\r\n\r\ninnermost\r\n");
    let p = check(&msg);
    assert!(p.parts.len() <= limits::NESTING_DEPTH_MAX + 2);
    assert_eq!(p.parts[0].path, vec![1]);
    assert_eq!(p.parts[1].path, vec![1, 1]);
    assert_eq!(p.parts[0].kind, PartKind::Message);
}

#[test]
fn deeply_nested_multiparts() {
    let depth = 500;
    let mut msg = Vec::new();
    for i in 0..depth {
        msg.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    msg.extend_from_slice(b"\r\nleaf\r\n");
    for i in (0..depth).rev() {
        msg.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    check(&msg);
}

#[test]
fn nested_message_sections() {
    let msg = normalize_crlf(
        b"Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/plain\n\none\n--X\n\
Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: multipart/alternative; boundary=Y\n\n\
--Y\n\nplain\n--Y\nContent-Type: text/html\n\n<p>html</p>\n--Y--\n\n--X--\n",
    );
    let p = check(&msg);
    assert_eq!(
        section(&msg, &p, &[2], SectionText::Header),
        b"Subject: inner\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n"
    );
    assert_eq!(section(&msg, &p, &[2, 1], SectionText::Body), b"plain");
    assert_eq!(
        section(&msg, &p, &[2, 2], SectionText::Mime),
        b"Content-Type: text/html\r\n\r\n"
    );
    assert_eq!(
        section(&msg, &p, &[2, 2], SectionText::Body),
        b"<p>html</p>"
    );
    assert_eq!(section(&msg, &p, &[1], SectionText::Body), b"one");
    assert_eq!(section(&msg, &p, &[9], SectionText::Body), b"");
    let paths: Vec<_> = p.parts.iter().map(|x| x.path.clone()).collect();
    assert_eq!(
        paths,
        vec![vec![], vec![1], vec![2], vec![2], vec![2, 1], vec![2, 2]]
    );
}

#[test]
fn malformed_boundaries() {
    let cases: &[&[u8]] = &[
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        b"Content-Type: multipart/mixed; boundary=\"unterminated\r\n\r\n--unterminated\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a--",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a\r\n--a--\r\n--a\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\nno delimiter at all\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n",
        b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--a\r\n--ab\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--ab--\r\n",
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n--d\r\nSubject: x\r\n\r\n--d--",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"\r\n\r\n\r\n",
        b"\r",
        b"\n",
        b":\r\n:\r\n\r\n",
        b" continuation first\r\n\r\n",
    ];
    for msg in cases {
        check(msg);
    }
}

#[test]
fn bad_encodings_and_garbage_headers() {
    let msg = b"Subject: =?utf-8?b?!!!?= =?x-unknown?q?=ZZ?= \xff\xfe\r\n\
From: =?utf-8?q?broken <@@@>, ,, \"unterminated\r\n\
To: group: a@b, (comment <x@y>; c@d\r\n\
Date: not a date at all\r\n\
Content-Type: text/plain; charset*0*=utf-8''%ZZ; charset*2=x; name*=\r\n\
Content-Transfer-Encoding: base64 garbage\r\n\
Content-Disposition: ; ;; =\r\n\
Content-Language: ,,\r\n\r\n\
!!!not base64!!!\r\n";
    let p = check(msg);
    assert!(p.fields.date.is_none());
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: &[&[u8]] = &[
        b"\r\n",
        b"--",
        b"b",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"\r\n\r\n",
        b":",
        b" ",
        b"\"",
        b"(",
        b")",
        b"<",
        b">",
        b"@",
        b",",
        b";",
        b"\0",
        b"\xff",
        b"x",
        b"From: ",
        b"=?utf-8?b?",
        b"?=",
        b"\\",
    ];
    for _ in 0..2_000 {
        let len = (next() % 60) as usize;
        let mut msg = Vec::new();
        for _ in 0..len {
            msg.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        check(&msg);
    }
}
