//! The socketmap session from byte transcripts: whole and byte by byte, pipelined
//! requests, malformed requests, garbage; a proptest that nothing panics; and
//! Postfix's own client (`postmap -q … socketmap:…`) against
//! the session served on a loopback socket.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use protocols::limits::SOCKETMAP_REQUEST_BYTES_MAX;
use protocols::socketmap::{MapName, SocketmapEvent, SocketmapReply, SocketmapSession};

/// A tiny engine: answers like msgstore will (alice is local on shard 1's port,
/// team@ forwards, dave's shard is unreachable).
fn answer(map: &MapName, key: &str) -> SocketmapReply {
    match (map, key) {
        (MapName::Transport, "alice@example.com") => SocketmapReply::lmtp_inet("127.0.0.1", 2426),
        (MapName::Transport, _) => SocketmapReply::NotFound,
        (MapName::Recipient, "alice@example.com") => SocketmapReply::recipient_ok(),
        (MapName::Recipient, "dave@example.com") => SocketmapReply::Temp("owner shard busy".into()),
        (MapName::Recipient, _) => SocketmapReply::NotFound,
        (MapName::Virtual, "team@example.com") => {
            SocketmapReply::virtual_targets(["alice@example.com", "bob@example.net"])
        }
        (MapName::Virtual, _) => SocketmapReply::NotFound,
        (MapName::Other(name), _) => SocketmapReply::Perm(format!("unknown map {name}")),
    }
}

/// Feeds `input` in pieces of `piece` bytes, answering every lookup; returns the
/// output and whether the session closed.
fn run(input: &[u8], piece: usize) -> (Vec<u8>, bool) {
    let mut session = SocketmapSession::new();
    let mut output = Vec::new();
    let mut closed = false;
    for chunk in input.chunks(piece.max(1)) {
        if session.handle_input(chunk).is_err() {
            closed = true;
        }
        while let Some(event) = session.poll_event() {
            match event {
                SocketmapEvent::Lookup { map, key } => {
                    assert!(session.reply(answer(&map, &key)).is_ok());
                }
                SocketmapEvent::Close => closed = true,
            }
        }
        while let Some(bytes) = session.poll_output() {
            output.extend(bytes);
        }
    }
    (output, closed)
}

fn ns(payload: &str) -> String {
    format!("{}:{payload},", payload.len())
}

fn check(input: &str, expect: &[&str], expect_closed: bool) {
    let want: String = expect.iter().map(|p| ns(p)).collect();
    for piece in [input.len(), 1, 3, 7] {
        let (output, closed) = run(input.as_bytes(), piece);
        assert_eq!(
            String::from_utf8_lossy(&output),
            want,
            "input {input:?} in pieces of {piece}"
        );
        assert_eq!(
            closed, expect_closed,
            "input {input:?} in pieces of {piece}"
        );
    }
}

#[test]
fn the_three_maps() {
    check(
        &ns("transport alice@example.com"),
        &["OK lmtp:inet:127.0.0.1:2426"],
        false,
    );
    check(&ns("transport *"), &["NOTFOUND "], false);
    check(&ns("recipient alice@example.com"), &["OK OK"], false);
    check(&ns("recipient nobody@example.com"), &["NOTFOUND "], false);
    check(
        &ns("recipient dave@example.com"),
        &["TEMP owner shard busy"],
        false,
    );
    check(
        &ns("virtual team@example.com"),
        &["OK alice@example.com, bob@example.net"],
        false,
    );
    check(&ns("VIRTUAL x@example.com"), &["NOTFOUND "], false);
    check(&ns("aliases x"), &["PERM unknown map aliases"], false);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = [
        ns("recipient alice@example.com"),
        ns("transport alice@example.com"),
        ns("nokey"),
        ns("recipient nobody@example.com"),
        ns("virtual team@example.com"),
    ]
    .concat();
    check(
        &input,
        &[
            "OK OK",
            "OK lmtp:inet:127.0.0.1:2426",
            "PERM malformed request: expected <mapname> <key>",
            "NOTFOUND ",
            "OK alice@example.com, bob@example.net",
        ],
        false,
    );
}

#[test]
fn one_lookup_at_a_time() {
    let mut session = SocketmapSession::new();
    let input = [ns("recipient a@x"), ns("recipient b@x")].concat();
    assert!(session.handle_input(input.as_bytes()).is_ok());
    let first = session.poll_event();
    assert_eq!(
        first,
        Some(SocketmapEvent::Lookup {
            map: MapName::Recipient,
            key: "a@x".into()
        })
    );
    assert_eq!(
        session.poll_event(),
        None,
        "second waits for the first reply"
    );
    assert_eq!(session.poll_output(), None);
    assert!(session.reply(SocketmapReply::NotFound).is_ok());
    assert!(matches!(
        session.poll_event(),
        Some(SocketmapEvent::Lookup { key, .. }) if key == "b@x"
    ));
    assert!(session.reply(SocketmapReply::NotFound).is_ok());
    assert!(
        session.reply(SocketmapReply::NotFound).is_err(),
        "nothing waits"
    );
    assert_eq!(
        session.poll_output().as_deref(),
        Some(&b"9:NOTFOUND ,9:NOTFOUND ,"[..])
    );
}

#[test]
fn malformed_requests_get_perm_and_the_connection_lives() {
    check(
        &[
            ns(""),
            ns(" key"),
            ns("map/x key"),
            ns("recipient a\tb@x"),
            "9:recipient,".into(),
            ns("recipient alice@example.com"),
        ]
        .concat(),
        &[
            "PERM malformed request: expected <mapname> <key>",
            "PERM malformed map name",
            "PERM malformed map name",
            "PERM control character in key",
            "PERM malformed request: expected <mapname> <key>",
            "OK OK",
        ],
        false,
    );
    let mut bad_utf8 = b"4:a \xff\xfe,".to_vec();
    bad_utf8.extend(ns("recipient alice@example.com").bytes());
    let (output, closed) = run(&bad_utf8, 100);
    assert!(!closed);
    assert_eq!(output, b"25:PERM request is not UTF-8,5:OK OK,");
}

#[test]
fn garbage_closes_without_a_reply() {
    // A good request first: it is answered, then the garbage closes.
    let good = ns("recipient alice@example.com");
    for garbage in [
        "GET / HTTP/1.1\r\n",
        "05:hello,",
        "5:hello;",
        ":",
        "-3:abc,",
        "99999999:",
    ] {
        check(&format!("{good}{garbage}"), &["OK OK"], true);
    }
    let too_long = format!("{}:", SOCKETMAP_REQUEST_BYTES_MAX + 1);
    check(&too_long, &[], true);
    // Input after the close is ignored.
    let mut session = SocketmapSession::new();
    assert!(session.handle_input(b"x").is_ok());
    assert_eq!(session.poll_event(), Some(SocketmapEvent::Close));
    assert!(session.is_closed());
    assert!(session.handle_input(ns("recipient a@x").as_bytes()).is_ok());
    assert_eq!(session.poll_event(), None);
}

#[test]
fn a_flood_is_refused() {
    let mut session = SocketmapSession::new();
    // A stream of requests that is never answered fills the buffer.
    let request = ns("recipient a@x");
    let mut refused = false;
    for _ in 0..10_000 {
        if session.handle_input(request.as_bytes()).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused);
    let events: Vec<_> = std::iter::from_fn(|| session.poll_event()).collect();
    assert_eq!(events.last(), Some(&SocketmapEvent::Close));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300),
                                 piece in 1usize..20) {
        let _ = run(&input, piece);
    }

    #[test]
    fn random_keys_round_trip(key in "[ -~]{0,60}", piece in 1usize..20) {
        let input = ns(&format!("virtual {key}"));
        let (output, closed) = run(input.as_bytes(), piece);
        prop_assert!(!closed);
        prop_assert!(output.ends_with(b","));
    }
}

/// Postfix's own socketmap client: `postmap -q KEY
/// socketmap:inet:HOST:PORT:MAP` against the session on a loopback socket.
#[test]
fn postfix_postmap_queries_the_session() {
    let postmap = Path::new("/usr/sbin/postmap");
    assert!(
        postmap.exists(),
        "postmap is missing: install Debian's postfix (scripts/test.sh does)"
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        // postmap opens one connection per run.
        for _ in 0..3 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut session = SocketmapSession::new();
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 || session.handle_input(&buffer[..read]).is_err() {
                    break;
                }
                while let Some(event) = session.poll_event() {
                    if let SocketmapEvent::Lookup { map, key } = event {
                        let _ = session.reply(answer(&map, &key));
                    }
                }
                if let Some(out) = session.poll_output()
                    && stream.write_all(&out).is_err()
                {
                    break;
                }
            }
        }
    });
    // postmap reads main.cf; an empty one in a temp dir is enough.
    let config = std::env::temp_dir().join(format!("socketmap-postmap-{}", std::process::id()));
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("main.cf"), b"").expect("main.cf");
    let query = |map: &str, key: &str| {
        let out = Command::new(postmap)
            .arg("-c")
            .arg(&config)
            .args(["-q", key, &format!("socketmap:inet:127.0.0.1:{port}:{map}")])
            .output()
            .expect("run postmap");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    assert_eq!(
        query("transport", "alice@example.com"),
        (Some(0), "lmtp:inet:127.0.0.1:2426".to_owned())
    );
    assert_eq!(
        query("virtual", "team@example.com"),
        (Some(0), "alice@example.com, bob@example.net".to_owned())
    );
    // Not found: postmap exits 1 with no output.
    assert_eq!(
        query("recipient", "nobody@example.com"),
        (Some(1), String::new())
    );
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&config);
}
