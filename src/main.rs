//! The `verifyd` binary: parse the command line, run it, exit with its code.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = verifyd::cli::Cli::parse();
    let code = verifyd::cli::run(cli).await;
    std::process::exit(code);
}
