//! `msgstore`: the server and its command line (DESIGN §10).
#![forbid(unsafe_code)]

/// mimalloc: per-thread heaps with no shared lock suit thread-per-core shards (each
/// shard allocates and frees on its own thread); glibc's malloc/free were ~8% of the
/// server's CPU in the IMAP mix profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(engine::cli::main());
}
