//! `hule`: the operator's tool for the HuleEdu event backbone. Argument parsing and glue only; the work is done by
//! the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_console;
mod bench_io;
mod catalog_cmd;
mod console_cmd;
mod demo_cmd;
mod dlq_cmd;
mod envelope_cmd;
mod events_cmd;
mod kafka_args;
mod lag_cmd;
mod logs;
mod outbox_cmd;
mod produce_cmd;
mod progress;
mod tail_cmd;
mod topics_cmd;

/// The HuleEdu event backbone: demo pipeline, registry, envelopes, outbox relay, consumers, benchmarks.
#[derive(Parser)]
#[command(name = "hule", version, about, after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reference HuleEdu pipeline end to end on embedded defaults and report.
    Demo(demo_cmd::DemoArgs),
    /// Start the embedded Kafka (mock cluster) with every registered topic and print its address.
    Broker(demo_cmd::BrokerArgs),
    /// List the registered events: name, standard topic, legacy topic, key field, topic class.
    Events(events_cmd::EventsArgs),
    /// Check or produce event envelopes.
    #[command(subcommand)]
    Envelope(envelope_cmd::EnvelopeCommand),
    /// Measure the performance figures beside their baselines.
    Bench(bench::BenchArgs),
    /// Move committed outbox rows to Kafka until SIGTERM or Ctrl-C.
    Relay(outbox_cmd::RelayArgs),
    /// Check the registry's contract rules and the payload schemas against a baseline (run by CI); exit 1 on a break.
    Check(catalog_cmd::CheckArgs),
    /// Write the event catalog generated from the registry.
    Catalog(catalog_cmd::CatalogArgs),
    /// Plan or apply the registry's topics (partitions, replication, cleanup and retention by topic class).
    #[command(subcommand)]
    Topics(topics_cmd::TopicsCommand),
    /// Inspect dead-letter topics and replay their records.
    #[command(subcommand)]
    Dlq(dlq_cmd::DlqCommand),
    /// Inspect the outbox and release parked rows.
    #[command(subcommand)]
    Outbox(outbox_cmd::OutboxCommand),
    /// Consumer lag: committed offset, end offset and lag per partition, totals per group.
    Lag(lag_cmd::LagArgs),
    /// Serve the operator console (dead letters by failure, replays through the ledger, audit) behind a login.
    Console(console_cmd::ConsoleArgs),
    /// Follow topics live, each record decoded with the registry (undecodable ones shown with their error).
    Tail(tail_cmd::TailArgs),
    /// Validate envelopes (a file or stdin) and publish them with their contract key and the standard headers.
    Produce(produce_cmd::ProduceArgs),
}

/// The exit status of every command, shown under `hule --help`.
const EXIT_HELP: &str = "Exit status: 0 done; 1 done, and found a problem or nothing (a check that failed, counts \
that do not reconcile, no record that matches); 2 could not run (a wrong flag, file, URL or configuration); 3 a \
server could not be reached or read (Kafka, PostgreSQL, Redis).";

/// A command ran and found a problem or nothing to show: exit status 1, as opposed to 2 (it could not run) or 3 (a
/// server could not be reached).
#[derive(Debug)]
pub struct Problem(pub String);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}

/// The exit status of a failed command (see [`EXIT_HELP`]).
fn exit_status(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<Problem>().is_some() {
            return 1;
        }
        if let Some(hule_kafka::Error::Unreachable { .. } | hule_kafka::Error::Incomplete { .. }) =
            cause.downcast_ref::<hule_kafka::Error>()
        {
            return 3;
        }
        if let Some(hule_kafka::ConnectError::Unreachable { .. }) =
            cause.downcast_ref::<hule_kafka::ConnectError>()
        {
            return 3;
        }
    }
    // PostgreSQL's connection errors (the outbox carries them as its configuration error's text): a server that does
    // not answer is 3, a certificate or a login it refuses is the configuration's (2).
    let text = format!("{e:#}");
    let refused_config = [
        "certificate",
        "authentication",
        "password",
        "SSL",
        "TLS",
        "tls",
    ]
    .iter()
    .any(|w| text.contains(w));
    if (text.contains("cannot connect to PostgreSQL") && !refused_config)
        || text.contains("cannot reach Kafka brokers")
    {
        return 3;
    }
    2
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

/// mimalloc rather than glibc's allocator: the consumer's records, the decoder's strings and the relay's batches
/// are many small, short-lived allocations freed on other threads, where glibc's malloc spent a fifth of the
/// consumer's time (`_int_free`, `malloc_consolidate`; perf, `hule bench --only consumer`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process (unless `MIMALLOC_ALLOW_THP` says otherwise, which mimalloc
/// itself reads). mimalloc asks for huge pages for its arenas, and each first touch of a fresh 2 MiB area then
/// faults in and zeroes all of it: a quarter of `hule demo`'s CPU was `clear_page_erms` under
/// `do_huge_pmd_anonymous_page` (perf, the pipeline's stretch); without them the run's CPU fell from 0.47–0.60 s
/// to 0.39–0.44 s and its p50 from 271–368 ms to 185–233 ms (same hour). The consumer's and the relay's rates
/// moved within this machine's noise. The flag holds for the whole process and is inherited by its children.
/// Called before anything allocates much; a refusal (a kernel without the `prctl`) is returned to be logged once
/// logs are set up. Tested on the running binary (`tests/demo.rs`).
fn without_huge_pages() -> Option<String> {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
            return Some(format!("transparent huge pages stay on: {e}"));
        }
    }
    None
}

fn main() -> ExitCode {
    let huge_pages = without_huge_pages();
    let cli = Cli::parse();
    // `hule relay` says when it leads or stands by; elsewhere only warnings.
    let default_filter = if matches!(cli.command, Command::Relay(_) | Command::Console(_)) {
        "warn,hule_outbox::relay=info,hule_console=info,hule::health=info"
    } else if matches!(cli.command, Command::Demo(_)) {
        // The demo's poison records are dead-lettered on purpose and counted in its report; a line each is noise.
        "warn,hule_consumer::dlq=error,hule::health=info"
    } else {
        // Recovery lines of the health board (a broker back after an outage) show with the warnings.
        "warn,hule::health=info"
    };
    let _spans = logs::init(default_filter);
    if let Some(refused) = huge_pages {
        tracing::debug!("{refused}");
    }
    let result = match cli.command {
        Command::Demo(args) => return demo_cmd::demo(&args),
        Command::Broker(args) => demo_cmd::broker(&args),
        Command::Events(args) => events_cmd::run(&args),
        Command::Envelope(cmd) => return envelope_cmd::run(cmd),
        Command::Bench(args) => bench::run(&args),
        Command::Relay(args) => outbox_cmd::relay(&args),
        Command::Outbox(cmd) => outbox_cmd::outbox(&cmd),
        Command::Dlq(cmd) => dlq_cmd::run(&cmd),
        Command::Topics(cmd) => return topics_cmd::run(&cmd),
        Command::Catalog(args) => catalog_cmd::run(&args),
        Command::Check(args) => return catalog_cmd::check(&args),
        Command::Lag(args) => lag_cmd::run(&args),
        Command::Tail(args) => tail_cmd::run(&args),
        Command::Console(args) => console_cmd::run(&args),
        Command::Produce(args) => produce_cmd::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_status(&e))
        }
    }
}
