//! An LMTP session fed arbitrary bytes in reads of a size the input chooses, the
//! engine's answers chosen by the control byte. Checks the promises of `LmtpEvent`:
//! every data phase ends with one `Deliver` or one `DiscardData`, a `Deliver`'s size
//! is the sum of its `Data` pieces, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::lmtp::{LmtpConfig, LmtpEvent, LmtpSession, RecipientCheck, Reply};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let read = usize::from(control & 0x1f) * 4 + 1;
    let mut session = LmtpSession::new(LmtpConfig {
        server_name: "fuzz".into(),
        message_bytes_max: if control & 0x20 != 0 { 64 } else { 1 << 20 },
    });
    let mut output = Vec::new();
    while let Some(out) = session.poll_output() {
        output.extend(out);
    }
    let mut data_bytes = 0u64;
    let mut checks = 0usize;
    for chunk in input.chunks(read) {
        if session.is_closed() {
            break;
        }
        let chunk = &chunk[..chunk.len().min(session.input_room())];
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
            match event {
                LmtpEvent::ValidateRecipient { .. } => {
                    checks += 1;
                    let check = match (control >> 6, checks % 4) {
                        (0, _) | (_, 0) => RecipientCheck::Accept,
                        (1, _) => RecipientCheck::Unknown,
                        (2, _) => RecipientCheck::OverQuota,
                        _ => RecipientCheck::TemporaryFailure,
                    };
                    session.recipient_checked(check);
                }
                LmtpEvent::Data { bytes } => data_bytes += bytes.len() as u64,
                LmtpEvent::DiscardData => data_bytes = 0,
                LmtpEvent::Deliver {
                    recipients,
                    size_bytes,
                    ..
                } => {
                    assert_eq!(
                        size_bytes, data_bytes,
                        "Deliver size is not the data streamed"
                    );
                    data_bytes = 0;
                    for index in (0..recipients.len()).rev() {
                        let reply = if index % 2 == 0 {
                            Reply::delivered()
                        } else {
                            Reply::temporary_failure()
                        };
                        session.recipient_result(index, reply);
                    }
                }
                LmtpEvent::Close => {}
            }
        }
    }
    assert!(output.starts_with(b"220 "));
});
