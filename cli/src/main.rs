//! `tradeauth`: the command line (see `tradeauth --help` and the README's "From the shell").

fn main() {
    std::process::exit(tradeauth_cli::run(std::env::args_os()));
}
