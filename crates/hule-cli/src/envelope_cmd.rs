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
    /// Validate envelopes: one JSON document, or JSON Lines (one envelope per line). Exit 0 when all are valid, 1
    /// when one is not (phase, field path and reason on stderr, with its line), 2 on usage or I/O errors.
    Check {
        /// A file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// The topic the records were read from (standard or legacy); defaults to each envelope's `event_type`. An
        /// `event_type` that names another event than the topic's is invalid.
        #[arg(long)]
        topic: Option<String>,
        /// One JSON object per record on stdout: {line, valid, event, topic, event_id, key} or {line, valid: false,
        /// phase, path, reason}.
        #[arg(long)]
        json: bool,
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
        EnvelopeCommand::Check { file, topic, json } => check(&file, topic.as_deref(), json),
        EnvelopeCommand::Example { event, python } => example(&event, python),
    }
}

fn check(file: &str, topic: Option<&str>, json: bool) -> ExitCode {
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
    // A legacy topic two events share names none: routing then goes by event_type, as a consumer's does.
    let topic_event = topic.and_then(|t| Event::lookup(t).ok());
    let records = records_of(&bytes);
    let many = records.len() > 1;
    let mut invalid = 0usize;
    for (line, record) in &records {
        let verdict = check_one(topic, topic_event, record);
        let at = if many {
            format!("line {line}: ")
        } else {
            String::new()
        };
        match verdict {
            Ok(ok) => {
                if json {
                    crate::out(serde_json::json!({
                        "line": line, "valid": true, "event": ok.event.name(), "topic": ok.event.topic(),
                        "event_id": ok.event_id, "key": ok.key,
                    }));
                } else {
                    crate::out(format_args!(
                        "{at}valid: {} ({}) event_id={} key={}",
                        ok.event.name(),
                        ok.event.topic(),
                        ok.event_id,
                        ok.key
                    ));
                }
            }
            Err(bad) => {
                invalid += 1;
                if json {
                    crate::out(serde_json::json!({
                        "line": line, "valid": false, "phase": bad.phase, "path": bad.path, "reason": bad.reason,
                    }));
                }
                eprintln!(
                    "{at}invalid: {} phase, at `{}`: {}",
                    bad.phase, bad.path, bad.reason
                );
            }
        }
    }
    if many && !json {
        crate::out(format_args!(
            "{} record(s): {} valid, {invalid} invalid",
            records.len(),
            records.len() - invalid
        ));
    }
    if invalid > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The records of an input: the whole of it when it is one JSON document (pretty-printed included), else each
/// non-blank line (JSON Lines), with its 1-based line number. An input whose first line is not a JSON value of its
/// own is one document (a pretty-printed one with a mistake), checked whole so that its one error says where.
fn records_of(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let whole = bytes.trim_ascii();
    let parses = |b: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok();
    let first_line = whole.split(|b| *b == b'\n').next().unwrap_or_default();
    if parses(whole) || !whole.contains(&b'\n') || !parses(first_line.trim_ascii()) {
        return vec![(1, whole)];
    }
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_ascii()))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

/// A valid record's facts.
struct Valid {
    event: Event,
    event_id: Uuid,
    key: String,
}

/// Why a record is invalid.
struct Invalid {
    phase: String,
    path: String,
    reason: String,
}

impl Invalid {
    fn new(phase: &str, path: &str, reason: impl Into<String>) -> Self {
        Invalid {
            phase: phase.into(),
            path: path.into(),
            reason: reason.into(),
        }
    }
}

fn check_one(
    topic: Option<&str>,
    topic_event: Option<Event>,
    bytes: &[u8],
) -> Result<Valid, Invalid> {
    hule_contracts::size::check_size(bytes.len())
        .map_err(|e| Invalid::new("envelope", ".", e.to_string()))?;
    let env = decode::decode(topic, bytes)
        .map_err(|e| Invalid::new(&e.phase.to_string(), &e.path, e.reason.clone()))?;
    let event = env.data.event();
    if let Some(wanted) = topic_event {
        // A consumer routes by topic and pydantic accepts any string here; a record whose event_type names another
        // event than its topic's was misrouted or mislabelled, which a check must say.
        if Event::lookup(&env.event_type).ok() != Some(wanted) {
            return Err(Invalid::new(
                "routing",
                "event_type",
                format!(
                    "`{}` does not name the topic's event {} ({})",
                    env.event_type,
                    wanted.name(),
                    wanted.topic()
                ),
            ));
        }
    }
    let key = partition_key_of_typed(&env.data)
        .map_err(|e| Invalid::new("payload", "data", e.to_string()))?;
    Ok(Valid {
        event,
        event_id: env.event_id,
        key: key.to_string(),
    })
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
