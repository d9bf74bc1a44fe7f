//! `hule events`: the registry as a table or JSON.

use clap::Args;
use hule_contracts::keys::is_override;
use hule_contracts::EVENTS;

/// Options of `hule events`.
#[derive(Args)]
pub struct EventsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EventsArgs) -> anyhow::Result<()> {
    if args.json {
        let rows: Vec<serde_json::Value> = EVENTS
            .iter()
            .map(|d| {
                serde_json::json!({
                    "event": d.name, "value": d.value, "topic": d.topic, "legacy_topic": d.legacy_topic,
                    "payload": d.payload_type, "key_field": d.key.field, "key": d.key.concept.as_str(),
                    "key_override": is_override(d.event), "class": d.class.as_str(),
                    "cleanup_policy": d.class.cleanup_policy(), "retention_ms": d.class.retention_ms(),
                    "producers": d.producers, "consumers": d.consumers,
                })
            })
            .collect();
        crate::out(format_args!("{}", serde_json::to_string_pretty(&rows)?));
        return Ok(());
    }
    let w = |f: fn(&hule_contracts::EventDef) -> usize| EVENTS.iter().map(f).max().unwrap_or(0);
    let (wn, wt, wl, wk) = (
        w(|d| d.name.len()),
        w(|d| d.topic.len()),
        w(|d| d.legacy_topic.len()),
        w(|d| d.key.field.len()),
    );
    crate::out(format_args!(
        "{:wn$}  {:wt$}  {:wl$}  {:wk$}  CLASS",
        "EVENT", "STANDARD TOPIC", "LEGACY TOPIC", "KEY"
    ));
    for d in EVENTS {
        let legacy = if d.has_distinct_legacy_topic() {
            d.legacy_topic
        } else {
            "="
        };
        crate::out(format_args!(
            "{:wn$}  {:wt$}  {:wl$}  {:wk$}  {}",
            d.name,
            d.topic,
            legacy,
            d.key.field,
            d.class.as_str()
        ));
    }
    crate::out(format_args!("{} events", EVENTS.len()));
    Ok(())
}
