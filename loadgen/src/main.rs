#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match loadgen::cli::main() {
        Ok(code) => {
            // Workers still blocked on a stalled server are abandoned here, not waited for.
            std::process::exit(i32::from(code));
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
