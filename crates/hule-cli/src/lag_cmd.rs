//! `hule lag`: committed offset, end offset and lag per partition, with totals per group.

use std::time::Duration;

use clap::Args;
use hule_kafka::lag::{group_lag, groups, totals, PartitionLag};

use crate::kafka_args::KafkaArgs;
use crate::out;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `hule lag` arguments.
#[derive(Args)]
pub struct LagArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// One consumer group (default: every group of the cluster).
    #[arg(long)]
    group: Option<String>,
    /// One JSON document: partitions and per-group totals.
    #[arg(long)]
    json: bool,
}

/// Runs `hule lag`.
pub fn run(args: &LagArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.connect()?;
    let names = match &args.group {
        Some(g) => vec![g.clone()],
        None => groups(&kafka, TIMEOUT)?,
    };
    let mut rows: Vec<PartitionLag> = Vec::new();
    let mut empty = Vec::new();
    for g in &names {
        let lag = group_lag(&kafka, g, TIMEOUT)?;
        if lag.is_empty() {
            empty.push(g.clone());
        }
        rows.extend(lag);
    }
    let sums = totals(&rows);
    if args.json {
        out(serde_json::json!({ "partitions": rows, "groups": sums, "without_offsets": empty }));
        return Ok(());
    }
    if names.is_empty() {
        out("no consumer groups");
        return Ok(());
    }
    if !rows.is_empty() {
        let w = rows.iter().map(|r| r.group.len()).max().unwrap_or(5).max(5);
        let t = rows.iter().map(|r| r.topic.len()).max().unwrap_or(5).max(5);
        out(format!(
            "{:<w$}  {:<t$}  {:>9}  {:>12}  {:>12}  {:>10}",
            "GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
        ));
        for r in &rows {
            out(format!(
                "{:<w$}  {:<t$}  {:>9}  {:>12}  {:>12}  {:>10}",
                r.group, r.topic, r.partition, r.committed, r.end, r.lag
            ));
        }
    }
    for s in &sums {
        out(format!(
            "group {}: lag {} over {} partition(s)",
            s.group, s.lag, s.partitions
        ));
    }
    for g in &empty {
        out(format!("group {g}: no committed offsets"));
    }
    Ok(())
}
