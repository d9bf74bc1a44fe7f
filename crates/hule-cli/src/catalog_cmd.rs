//! `hule catalog`: the event catalog generated from the registry.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

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
    let files = hule_contracts::schema::schema_files();
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
        Format::Markdown => hule_contracts::catalog::markdown(),
        Format::Html => anyhow::bail!("todo"),
        Format::Asyncapi => anyhow::bail!("todo"),
        Format::JsonSchema => match &args.out {
            Some(dir) => {
                let n = write_schema_dir(dir)?;
                eprintln!("wrote {n} schemas to {}", dir.display());
                return Ok(());
            }
            None => hule_contracts::schema::bundle_json(),
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
