//! `hule envelope check` and `hule envelope example`.

use std::io::Read;
use std::process::ExitCode;

use clap::Subcommand;
use hule_contracts::examples::example_envelope;
use hule_contracts::keys::partition_key_of_typed;
use hule_contracts::{decode, Event, Timestamp};
use uuid::Uuid;

/// `hule envelope` subcommands.
#[derive(Subcommand)]
pub enum EnvelopeCommand {
    /// Validate an envelope. Exit 0 when valid, 1 when invalid (phase, field path and reason on stderr), 2 on usage
    /// or I/O errors.
    Check {
        /// A file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// The topic the record was read from (standard or legacy); defaults to the envelope's `event_type`.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Print a valid example envelope for an event given by name, value or either topic.
    Example {
        /// e.g. CJ_ASSESSMENT_COMPLETED or huleedu.cj.assessment.completed.v1
        event: String,
        /// Print in Python's `json.dumps` form instead of pydantic's compact form.
        #[arg(long)]
        python: bool,
    },
}

pub fn run(cmd: EnvelopeCommand) -> ExitCode {
    match cmd {
        EnvelopeCommand::Check { file, topic } => check(&file, topic.as_deref()),
        EnvelopeCommand::Example { event, python } => example(&event, python),
    }
}

fn check(file: &str, topic: Option<&str>) -> ExitCode {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
            eprintln!("error: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        buf
    } else {
        match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {file}: {e}");
                return ExitCode::from(2);
            }
        }
    };
    if let Err(e) = hule_contracts::size::check_size(bytes.len()) {
        eprintln!("invalid: {e}");
        return ExitCode::from(1);
    }
    match decode::decode(topic, bytes.trim_ascii()) {
        Ok(env) => {
            let event = env.data.event();
            let key = partition_key_of_typed(&env.data);
            match key {
                Ok(key) => {
                    crate::out(format_args!(
                        "valid: {} ({}) event_id={} key={key}",
                        event.name(),
                        event.topic(),
                        env.event_id
                    ));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("invalid: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("invalid: {} phase, at `{}`: {}", e.phase, e.path, e.reason);
            ExitCode::from(1)
        }
    }
}

fn example(name: &str, python: bool) -> ExitCode {
    let event = match Event::lookup(name) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let env = match example_envelope(event, Uuid::new_v4(), Uuid::new_v4(), now) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("error: example for {} is invalid: {e}", event.name());
            return ExitCode::from(2);
        }
    };
    let bytes = if python {
        env.to_python_json()
    } else {
        env.to_json()
    };
    match bytes {
        Ok(b) => {
            crate::out(format_args!("{}", String::from_utf8_lossy(&b)));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot encode: {e}");
            ExitCode::from(2)
        }
    }
}
