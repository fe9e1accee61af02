//! The POP3 command-line parser and the SASL response decoder on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::pop3::parser::{decode_sasl, keyword, parse_command};

fuzz_target!(|data: &[u8]| {
    let _ = keyword(data);
    let _ = parse_command(data);
    let _ = decode_sasl(data);
});
