//! The `verifyd` binary: parse the command line, run it, exit with its code.

use clap::Parser;

/// mimalloc instead of the system allocator: a request allocates and frees dozens of small
/// buffers on two threads, and glibc's allocator spent ~10 % of the workers' time on them
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = verifyd::cli::Cli::parse();
    let code = verifyd::cli::run(cli).await;
    std::process::exit(code);
}
