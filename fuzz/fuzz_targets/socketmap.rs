//! Postfix socketmap: the netstring decoder on any bytes (with a limit the input
//! chooses), and a session fed the same bytes in reads of a chosen size, every lookup
//! answered. A decoded frame must lie inside the input and end with ','.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::socketmap::netstring::{decode, encode};
use protocols::socketmap::{SocketmapEvent, SocketmapReply, SocketmapSession};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let max = usize::from(control) * 16;
    if let Ok(Some(frame)) = decode(input, max) {
        let (start, end) = frame.payload;
        assert!(start <= end && end < frame.consumed && frame.consumed <= input.len());
        assert_eq!(input[frame.consumed - 1], b',');
        assert!(end - start <= max);
        let mut again = Vec::new();
        encode(&input[start..end], &mut again);
        assert_eq!(
            again,
            &input[..frame.consumed],
            "decode/encode do not round-trip"
        );
    }

    let read = usize::from(control & 0x3f) + 1;
    let mut session = SocketmapSession::new();
    let mut lookups = 0usize;
    for chunk in input.chunks(read) {
        if session.is_closed() {
            break;
        }
        if session.handle_input(chunk).is_err() {
            break;
        }
        while let Some(event) = session.poll_event() {
            match event {
                SocketmapEvent::Lookup { key, .. } => {
                    lookups += 1;
                    let reply = match lookups % 3 {
                        0 => SocketmapReply::NotFound,
                        1 => SocketmapReply::lmtp_inet("127.0.0.1", 2425),
                        _ => SocketmapReply::virtual_targets([key.as_str(), "x@y"]),
                    };
                    session.reply(reply).expect("a lookup waits for this reply");
                }
                SocketmapEvent::Close => {}
            }
        }
        let _ = session.poll_output();
    }
});
