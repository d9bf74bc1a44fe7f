//! `hule catalog`: the event catalog generated from the registry.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use hule_tooling::evolution::{self, Baseline};

use crate::out;

/// Output formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Per domain: topics, key, retention, producers, consumers; then the dual-event pairs.
    Markdown,
    /// One self-contained page with search and an SVG diagram of producers → topics → consumers.
    Html,
    /// An AsyncAPI 3.0 document (JSON): channels with Kafka bindings, messages, operations.
    Asyncapi,
    /// One draft-07 JSON Schema per payload and version; with `--out DIR`, one file each.
    JsonSchema,
}

/// `hule catalog` options.
#[derive(Args)]
pub struct CatalogArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "markdown")]
    format: Format,
    /// Write to this file (for `json-schema`: this directory) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Writes one schema file per event into `dir` and removes stale `*.schema.json` files; returns how many it wrote.
pub fn write_schema_dir(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("create directory {}", dir.display()))?;
    let files = hule_tooling::schema::schema_files();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".schema.json") && !files.iter().any(|(f, _)| f == name) {
            std::fs::remove_file(&path)
                .with_context(|| format!("remove stale {}", path.display()))?;
        }
    }
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(files.len())
}

/// Writes the catalog.
pub fn run(args: &CatalogArgs) -> anyhow::Result<()> {
    let text = match args.format {
        Format::Markdown => hule_tooling::catalog::markdown(),
        Format::Html => hule_tooling::html::html(),
        Format::Asyncapi => hule_tooling::asyncapi::document_json(),
        Format::JsonSchema => match &args.out {
            Some(dir) => {
                let n = write_schema_dir(dir)?;
                eprintln!("wrote {n} schemas to {}", dir.display());
                return Ok(());
            }
            None => hule_tooling::schema::bundle_json(),
        },
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => out(text.trim_end()),
    }
    Ok(())
}

/// The baseline `hule check --update-baseline` writes when no `--baseline` is given.
pub const DEFAULT_BASELINE: &str = "contracts/schema-baseline.json";

/// `hule check` options.
#[derive(Args)]
pub struct CheckArgs {
    /// Also compare the payload schemas with this committed baseline: a removed field, a changed type, a new
    /// required field, a narrowed constraint or a removed enum value in an event whose version did not change fails.
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// Rewrite the baseline (`--baseline`, or contracts/schema-baseline.json) from the current schemas, after the
    /// contract rules pass.
    #[arg(long)]
    update_baseline: bool,
}

/// `hule check`: the registry's contract rules, then schema evolution against a baseline; exit status 1 when
/// something breaks, 2 when the baseline cannot be read or written.
pub fn check(args: &CheckArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (checks, findings) = hule_tooling::check::check_contracts();
    for f in &findings {
        out(format!("FAIL {f}"));
    }
    if findings.is_empty() {
        out(format!(
            "ok: {} events, {checks} contract checks (naming, topics, payloads, keys, domain contracts, examples)",
            hule_contracts::EVENTS.len()
        ));
    } else {
        out(format!(
            "{} finding(s) in {checks} contract checks",
            findings.len()
        ));
        return ExitCode::from(1);
    }
    let current = Baseline::current();
    if args.update_baseline {
        let path = args
            .baseline
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BASELINE));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("error: create {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
        if let Err(e) = std::fs::write(&path, current.to_json()) {
            eprintln!("error: write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        out(format!(
            "wrote the baseline of {} payload schemas to {}",
            current.events.len(),
            path.display()
        ));
        return ExitCode::SUCCESS;
    }
    let Some(path) = &args.baseline else {
        out("schema evolution not checked: give --baseline PATH (CI uses contracts/schema-baseline.json)");
        return ExitCode::SUCCESS;
    };
    let baseline = match std::fs::read_to_string(path) {
        Ok(text) => match Baseline::from_json(&text) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!(
                "error: read baseline {}: {e} (create one with `hule check --update-baseline --baseline {}`)",
                path.display(),
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let report = evolution::compare(&baseline, &current);
    for (event, old, new) in &report.version_changed {
        out(format!(
            "note {event}: version {old} → {new}, not compared (a new version is a new contract)"
        ));
    }
    for event in &report.added {
        out(format!("note {event}: new since the baseline"));
    }
    for b in &report.breaking {
        out(format!("FAIL {b}"));
    }
    if report.breaking.is_empty() {
        out(format!(
            "ok: {} payload schemas compatible with {}",
            report.compared,
            path.display()
        ));
        ExitCode::SUCCESS
    } else {
        out(format!(
            "{} breaking change(s) against {}; bump the event's version (new topic .vN) or revert; \
             `hule check --update-baseline` accepts the change",
            report.breaking.len(),
            path.display()
        ));
        ExitCode::from(1)
    }
}
