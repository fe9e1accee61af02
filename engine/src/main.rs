//! `msgstore`: the server and its command line (DESIGN §10).
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(engine::cli::main());
}
