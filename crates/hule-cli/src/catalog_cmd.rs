//! `hule catalog`: the event catalog generated from the registry.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::out;

/// Output formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Per domain: topics, key, retention, producers, consumers; then the dual-event pairs.
    Markdown,
    /// Not built yet.
    Html,
    /// Not built yet.
    Asyncapi,
    /// Not built yet.
    JsonSchema,
}

/// `hule catalog` options.
#[derive(Args)]
pub struct CatalogArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "markdown")]
    format: Format,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Writes the catalog.
pub fn run(args: &CatalogArgs) -> anyhow::Result<()> {
    let text = match args.format {
        Format::Markdown => hule_contracts::catalog::markdown(),
        Format::Html | Format::Asyncapi | Format::JsonSchema => {
            anyhow::bail!("only --format markdown is built so far (HTML, AsyncAPI and JSON Schema are issue 5's open part)")
        }
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

/// `hule check`: the registry's contract rules; exit status 1 when one breaks.
pub fn check() -> std::process::ExitCode {
    let (checks, findings) = hule_contracts::check::check_contracts();
    if findings.is_empty() {
        out(format!(
            "ok: {} events, {checks} checks (naming, topics, payloads, keys, domain contracts, examples); the schema-evolution baseline is not checked yet",
            hule_contracts::EVENTS.len()
        ));
        return std::process::ExitCode::SUCCESS;
    }
    for f in &findings {
        out(format!("FAIL {f}"));
    }
    out(format!("{} finding(s) in {checks} checks", findings.len()));
    std::process::ExitCode::from(1)
}
