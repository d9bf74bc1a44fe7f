//! `hule`: the operator's tool for the HuleEdu event backbone. Argument parsing and glue only; the work is done by
//! the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod envelope_cmd;
mod events_cmd;

/// The HuleEdu event backbone: registry, envelopes, outbox relay, benchmarks.
#[derive(Parser)]
#[command(name = "hule", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered events: name, standard topic, legacy topic, key field, topic class.
    Events(events_cmd::EventsArgs),
    /// Check or produce event envelopes.
    #[command(subcommand)]
    Envelope(envelope_cmd::EnvelopeCommand),
    /// Measure the performance figures beside their baselines.
    Bench(bench::BenchArgs),
}

/// Prints a line to stdout; a closed pipe (`hule events | head`) ends the process quietly instead of panicking.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Events(args) => events_cmd::run(&args),
        Command::Envelope(cmd) => return envelope_cmd::run(cmd),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
