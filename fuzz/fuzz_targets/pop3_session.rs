//! A POP3 session fed arbitrary bytes in reads of a size the input chooses. The
//! engine's part is played here: logins succeed or fail as the control byte says,
//! SASL gets one challenge then an answer, the maildrop holds three messages (one with
//! lines starting with "."), RETR/TOP stream through the dot-stuffer, QUIT's update
//! succeeds. No panic (debug assertions are on in fuzz builds), and the output always
//! starts with the greeting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::pop3::{
    DotStuffer, LoginOutcome, MaildropError, Pop3Config, Pop3Event, Pop3Session, RetrieveError,
};

const MESSAGES: [&[u8]; 3] = [
    b"Subject: a\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n",
    b"no header, no newline",
    b"Subject: b\r\nX: y\r\n\r\nline 1\r\nline 2\r\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let read = usize::from(control & 0x1f) * 4 + 1;
    let mut session = Pop3Session::new(Pop3Config {
        server_name: "fuzz".into(),
        apop_timestamp: Some("<1.2@fuzz>".into()),
        sasl_mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
        stls_available: control & 0x20 != 0,
        plaintext_auth_allowed: control & 0x40 != 0,
    });
    let fail = control & 0x80 != 0;
    let mut output = Vec::new();
    while let Some(out) = session.poll_output() {
        output.extend(out);
    }
    let mut events = 0usize;
    for chunk in input.chunks(read) {
        if session.is_closed() {
            break;
        }
        let room = session.input_room();
        let chunk = &chunk[..chunk.len().min(room)];
        if session.handle_input(chunk).is_err() {
            break;
        }
        loop {
            while let Some(out) = session.poll_output() {
                output.extend(out);
            }
            let Some(event) = session.poll_event() else {
                break;
            };
            events += 1;
            let outcome = if fail && events % 3 == 0 {
                LoginOutcome::Failed
            } else {
                LoginOutcome::Ok { user: "bob".into() }
            };
            match event {
                Pop3Event::Login { .. } | Pop3Event::LoginApop { .. } => {
                    session.login_result(outcome)
                }
                Pop3Event::SaslStart { .. } => session.sasl_challenge(b"challenge"),
                Pop3Event::SaslResponse { .. } => session.sasl_done(outcome),
                Pop3Event::SaslAborted => {}
                Pop3Event::OpenMaildrop { .. } => {
                    if fail && events % 5 == 0 {
                        session.maildrop_failed(MaildropError::InUse);
                    } else {
                        session.maildrop_opened(
                            MESSAGES
                                .iter()
                                .enumerate()
                                .map(|(i, m)| (m.len() as u64, format!("uid{i}")))
                                .collect(),
                        );
                    }
                }
                Pop3Event::StartTls => session.tls_started(),
                Pop3Event::Retrieve { msg, top_lines } => {
                    let Some(message) = MESSAGES.get(msg) else {
                        session.retrieve_failed(RetrieveError::Gone);
                        continue;
                    };
                    session.retrieve_started();
                    while let Some(out) = session.poll_output() {
                        output.extend(out);
                    }
                    let mut stuffer = match top_lines {
                        Some(n) => DotStuffer::top(n),
                        None => DotStuffer::new(),
                    };
                    for piece in message.chunks(read) {
                        stuffer.push(piece, &mut output);
                    }
                    stuffer.finish(&mut output);
                    session.retrieve_done();
                }
                Pop3Event::Update { .. } => session.update_done(!fail),
                Pop3Event::Close => {}
            }
        }
    }
    assert!(output.starts_with(b"+OK"));
});
