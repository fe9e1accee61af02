//! An IMAP session fed arbitrary bytes against the in-memory backend, before or after
//! login, in reads of a size the input chooses. Every staged mutation is committed (or
//! failed), every message transmit resolved; the session must never panic nor wait on
//! nothing, and the output must start with the greeting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::imap::backend::{BackendError, Flags};
use protocols::imap::memory::MemoryBackend;
use protocols::imap::{
    ImapBackend, ImapConfig, ImapEvent, ImapSession, LoginOutcome, MailboxEvent, Transmit,
};
use protocols::sasl::{CredentialRequest, Credentials};

fn backend() -> MemoryBackend {
    let mut backend = MemoryBackend::new();
    backend.add_mailbox("Archive", None);
    let messages: [&[u8]; 3] = [
        b"Subject: hi\r\nFrom: a@b\r\n\r\nhello\r\n.dot\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAE=\r\n--b--\r\n",
        b"no header",
    ];
    for m in messages {
        let _ = backend.deliver("INBOX", m, Flags::default(), None);
    }
    backend
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let read = usize::from(control & 0x3f) * 8 + 1;
    let logged_in = control & 0x40 != 0;
    let fail_waits = control & 0x80 != 0;
    let mut backend = backend();
    let mut session = ImapSession::new(ImapConfig::default());
    if logged_in {
        session
            .handle_input_with(b"a LOGIN bob pw\r\n", &mut backend)
            .expect("a short LOGIN fits");
        assert!(matches!(
            session.poll_event(),
            Some(ImapEvent::Login { .. })
        ));
        session.login_result_with(LoginOutcome::Ok { user: "bob".into() }, &mut backend);
    }
    let mut written = Vec::new();
    let mut waits = 0usize;
    for (n, chunk) in input.chunks(read).enumerate() {
        if session.is_closed() {
            break;
        }
        if session.handle_input_with(chunk, &mut backend).is_err() {
            break;
        }
        if n % 7 == 3 {
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
                        if let Ok(bytes) = backend.read(&mailbox, uid, start, end) {
                            assert_eq!(bytes.len() as u64, end - start, "short message read");
                            written.extend(bytes);
                        }
                    }
                }
            }
            match session.poll_mailbox_event() {
                Some(MailboxEvent::Wait(pending)) => {
                    waits += 1;
                    let result = if fail_waits && waits % 2 == 0 {
                        Err(BackendError::Unavailable)
                    } else {
                        backend.commit(pending)
                    };
                    session.completed(pending, result, &mut backend);
                }
                Some(_) => {}
                // A login answered may let pipelined commands stage more work:
                // go round again until nothing is left to do.
                None => match session.poll_event() {
                    Some(ImapEvent::Login { .. }) => session
                        .login_result_with(LoginOutcome::Ok { user: "bob".into() }, &mut backend),
                    Some(ImapEvent::StartTls) => session.tls_started(),
                    Some(ImapEvent::Close) => {}
                    Some(ImapEvent::SaslCredentials(request)) => {
                        session.sasl_credentials(match request {
                            CredentialRequest::Verify { .. } => Credentials::Verified,
                            CredentialRequest::Lookup { .. } => Credentials::Rejected,
                        })
                    }
                    Some(ImapEvent::SaslFinished { success, .. }) => {
                        let outcome = if success {
                            LoginOutcome::Ok { user: "bob".into() }
                        } else {
                            LoginOutcome::Failed
                        };
                        session.login_result_with(outcome, &mut backend)
                    }
                    None => break,
                },
            }
        }
        assert_eq!(session.waiting_for(), None, "a wait without its event");
    }
    assert!(written.is_empty() || written.starts_with(b"* OK"));
});
