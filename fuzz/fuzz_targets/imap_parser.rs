//! The IMAP command parser on any bytes: one frame as the framer would hand it over,
//! plus the mailbox-name and date decoders it leans on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::imap::parser::parse_command;

fuzz_target!(|data: &[u8]| {
    let _ = parse_command(data);
    // The framer hands frames ending in CRLF: make sure that shape is covered too.
    let mut frame = data.to_vec();
    frame.extend_from_slice(b"\r\n");
    let _ = parse_command(&frame);
});
