//! Random command sequences in the authenticated and selected states, against the
//! in-memory backend: no panic, every output is whole CRLF lines (message bytes
//! resolved), every Wait is answered, and the session never waits on nothing.

use proptest::prelude::*;
use protocols::imap::backend::{BackendError, Flags};
use protocols::imap::memory::MemoryBackend;
use protocols::imap::{
    ImapBackend, ImapConfig, ImapEvent, ImapSession, LoginOutcome, MailboxEvent, Transmit,
};

const TOKENS: &[&[u8]] = &[
    b"a ",
    b"SELECT ",
    b"EXAMINE ",
    b"INBOX",
    b"Archive",
    b"inbox/x",
    b"&AGE-",
    b"&Jjo-",
    b"FETCH ",
    b"UID ",
    b"STORE ",
    b"COPY ",
    b"MOVE ",
    b"EXPUNGE",
    b"SEARCH ",
    b"SORT ",
    b"THREAD ",
    b"REFERENCES ",
    b"ORDEREDSUBJECT ",
    b"(REVERSE DATE) ",
    b"(SUBJECT ARRIVAL) ",
    b"(DISPLAYFROM) ",
    b"UTF-8 ",
    b"ALL",
    b"LIST ",
    b"LSUB ",
    b"STATUS ",
    b"APPEND ",
    b"CREATE ",
    b"DELETE ",
    b"RENAME ",
    b"IDLE",
    b"DONE",
    b"NOOP",
    b"CLOSE",
    b"UNSELECT",
    b"ENABLE ",
    b"QRESYNC",
    b"CONDSTORE",
    b"UTF8=ACCEPT",
    b"GETQUOTAROOT ",
    b"NAMESPACE",
    b"1",
    b"2",
    b"*",
    b":",
    b",",
    b"$",
    b"1:*",
    b"4294967295",
    b"0",
    b"(",
    b")",
    b"[",
    b"]",
    b"<",
    b">",
    b".",
    b"BODY",
    b"BODY.PEEK",
    b"BINARY",
    b"BINARY.SIZE",
    b"HEADER",
    b"HEADER.FIELDS",
    b".NOT",
    b"TEXT",
    b"MIME",
    b"ENVELOPE",
    b"BODYSTRUCTURE",
    b"FLAGS",
    b"+FLAGS",
    b"-FLAGS.SILENT",
    b"\\Seen",
    b"\\Deleted",
    b"$kw",
    b"UNCHANGEDSINCE",
    b"CHANGEDSINCE",
    b"VANISHED",
    b"MODSEQ",
    b"RETURN",
    b"(MIN MAX COUNT ALL SAVE)",
    b"OR",
    b"NOT",
    b"SUBJECT",
    b"BODY hi",
    b"SINCE 1-Jan-2000",
    b"\"\"",
    b"\"*\"",
    b"%",
    b"(SUBSCRIBED)",
    b"RETURN (STATUS (MESSAGES))",
    b"{5}\r\nHello",
    b"{3+}\r\nabc",
    b"~{2}\r\n\0\0",
    b" ",
    b" ",
    b" ",
    b"\r\n",
    b"\r\n",
    b"\n",
];

fn input_strategy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => proptest::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..6),
    ];
    proptest::collection::vec(piece, 0..200).prop_map(|pieces| pieces.concat())
}

fn backend() -> MemoryBackend {
    let mut backend = MemoryBackend::new();
    backend.add_mailbox("Archive", None);
    let messages: [&[u8]; 3] = [
        b"Subject: hi\r\n\r\nhello\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAE=\r\n--b--\r\n",
        b"no header",
    ];
    for m in messages {
        let _ = backend.deliver("INBOX", m, Flags::default(), None);
    }
    backend
}

/// Feeds `input` in reads of `read` bytes; commits or fails every Wait at once
/// (alternating by `fail_every`), reports a change every `change_every` reads.
fn drive(input: &[u8], read: usize, fail_every: usize, change_every: usize) -> Vec<u8> {
    let mut backend = backend();
    let mut session = ImapSession::new(ImapConfig::default());
    session
        .handle_input_with(b"a LOGIN bob pw\r\n", &mut backend)
        .expect("fits");
    assert!(matches!(
        session.poll_event(),
        Some(ImapEvent::Login { .. })
    ));
    session.login_result_with(LoginOutcome::Ok { user: "bob".into() }, &mut backend);
    let mut written = Vec::new();
    let mut waits = 0usize;
    let chunks = std::iter::once(&input[..0]).chain(input.chunks(read.max(1)));
    for (n, chunk) in chunks.enumerate() {
        if session.is_closed() {
            break;
        }
        if session.handle_input_with(chunk, &mut backend).is_err() {
            break;
        }
        if change_every > 0 && n.is_multiple_of(change_every) {
            let _ = backend.deliver(
                "INBOX",
                b"Subject: new\r\n\r\nx\r\n",
                Flags::default(),
                None,
            );
            session.mailbox_changed(&mut backend);
        }
        loop {
            while let Some(item) = session.poll_transmit() {
                match item {
                    Transmit::Bytes(bytes) => written.extend(bytes),
                    Transmit::Message {
                        mailbox,
                        uid,
                        start,
                        end,
                    } => {
                        let bytes = backend.read(&mailbox, uid, start, end);
                        // The message may be gone (expunged meanwhile): the engine would
                        // close the connection; here it only must not be short otherwise.
                        if let Ok(bytes) = bytes {
                            assert_eq!(bytes.len() as u64, end - start);
                            written.extend(bytes);
                        }
                    }
                }
            }
            match session.poll_mailbox_event() {
                Some(MailboxEvent::Wait(pending)) => {
                    waits += 1;
                    let result = if fail_every > 0 && waits.is_multiple_of(fail_every) {
                        Err(BackendError::Unavailable)
                    } else {
                        backend.commit(pending)
                    };
                    session.completed(pending, result, &mut backend);
                }
                Some(_) => {}
                None => break,
            }
        }
        while session.poll_event().is_some() {}
        assert_eq!(session.waiting_for(), None, "a wait without its event");
    }
    written
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_never_panic(
        input in input_strategy(),
        read in 1usize..512,
        fail_every in 0usize..4,
        change_every in 0usize..6,
    ) {
        let written = drive(&input, read, fail_every, change_every);
        prop_assert!(written.starts_with(b"* OK [CAPABILITY "));
    }

    #[test]
    fn chunking_does_not_change_answers(input in input_strategy(), read in 1usize..64) {
        let whole = drive(&input, input.len().max(1), 0, 0);
        let pieces = drive(&input, read, 0, 0);
        prop_assert_eq!(whole, pieces);
    }
}
