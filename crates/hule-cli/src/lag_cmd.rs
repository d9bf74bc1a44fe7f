//! `hule lag`: each consumer group's state, members and lag, with the committed offset, end offset and lag of every
//! partition of the groups that have members. Groups without members (a service stopped, a demo run, a renamed
//! group) are summed up on one line each unless `--all`; `--summary` prints the groups only.

use clap::Args;
use hule_kafka::lag::{describe, lag_of, totals, GroupInfo, PartitionLag};

use crate::kafka_args::KafkaArgs;
use crate::{out, Problem};

/// `hule lag` arguments.
#[derive(Args)]
pub struct LagArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// One consumer group (default: every group of the cluster); an unknown group is refused.
    #[arg(long)]
    group: Option<String>,
    /// Only these topics (repeatable); an unknown topic is refused.
    #[arg(long)]
    topic: Vec<String>,
    /// One line per group (state, members, partitions, lag), no partitions.
    #[arg(long)]
    summary: bool,
    /// The partitions of groups without members too.
    #[arg(long)]
    all: bool,
    /// Exit 1 when a group's total lag is above this (for scripts and alerts).
    #[arg(long, value_name = "RECORDS")]
    max_lag: Option<i64>,
    /// One JSON document: groups (state, members, totals), partitions and groups without offsets.
    #[arg(long)]
    json: bool,
}

/// One group in the report.
#[derive(serde::Serialize)]
struct GroupReport {
    group: String,
    state: String,
    members: Vec<hule_kafka::lag::Member>,
    partitions: usize,
    lag: i64,
}

/// Runs `hule lag`.
pub fn run(args: &LagArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.connect()?;
    let described = describe_groups(&kafka, args.group.as_deref())?;
    if !args.topic.is_empty() {
        let known = hule_kafka::lag::topic_names(&kafka, kafka.timeout)?;
        if let Some(t) = args.topic.iter().find(|t| !known.contains(t)) {
            anyhow::bail!("--topic {t}: no such topic on the cluster");
        }
    }
    let names: Vec<String> = match &args.group {
        Some(g) => vec![g.clone()],
        None => described.iter().map(|g| g.group.clone()).collect(),
    };
    let topics = (!args.topic.is_empty()).then_some(args.topic.as_slice());
    let rows = lag_of(&kafka, &names, topics, kafka.timeout)?;
    if let Some(g) = &args.group {
        let dead = described.first().is_none_or(|i| i.state == "Dead");
        if dead && rows.is_empty() {
            anyhow::bail!(
                "no consumer group {g} on the cluster{}",
                known_groups(&kafka)
            );
        }
    }
    let sums = totals(&rows);
    let report: Vec<GroupReport> = described
        .iter()
        .map(|g| {
            let sum = sums.iter().find(|s| s.group == g.group);
            GroupReport {
                group: g.group.clone(),
                state: g.state.clone(),
                members: g.members.clone(),
                partitions: sum.map_or(0, |s| s.partitions),
                lag: sum.map_or(0, |s| s.lag),
            }
        })
        .collect();
    let over: Vec<&GroupReport> = match args.max_lag {
        Some(max) => report.iter().filter(|g| g.lag > max).collect(),
        None => Vec::new(),
    };
    if args.json {
        let without: Vec<&str> = report
            .iter()
            .filter(|g| g.partitions == 0)
            .map(|g| g.group.as_str())
            .collect();
        out(
            serde_json::json!({ "groups": report, "partitions": rows, "without_offsets": without }),
        );
    } else {
        print_table(args, &report, &rows);
    }
    if let Some(max) = args.max_lag {
        if !over.is_empty() {
            let names: Vec<String> = over
                .iter()
                .map(|g| format!("{} ({})", g.group, g.lag))
                .collect();
            return Err(Problem(format!(
                "{} group(s) lag more than {max} record(s): {}",
                over.len(),
                names.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

/// The groups to report: the one named, or every group of the cluster.
fn describe_groups(
    kafka: &crate::kafka_args::Kafka,
    only: Option<&str>,
) -> anyhow::Result<Vec<GroupInfo>> {
    match describe(kafka, only, kafka.timeout) {
        Ok(groups) => Ok(groups),
        // A cluster that cannot list or describe groups (the embedded mock cluster): a named group is still read.
        Err(e)
            if e.to_string().contains("UnsupportedFeature")
                || e.to_string().contains("Unsupported") =>
        {
            match only {
                Some(g) => Ok(vec![GroupInfo {
                    group: g.to_owned(),
                    state: "Unknown".into(),
                    members: Vec::new(),
                }]),
                None => anyhow::bail!(
                    "this cluster cannot list its consumer groups ({e}); name one with --group"
                ),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// "; the groups are a, b" (or nothing when they cannot be listed).
fn known_groups(kafka: &crate::kafka_args::Kafka) -> String {
    match describe(kafka, None, kafka.timeout) {
        Ok(all) if all.is_empty() => "; it has no consumer groups".into(),
        Ok(all) => format!(
            "; the groups are {}",
            all.iter()
                .map(|g| g.group.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(_) => String::new(),
    }
}

fn print_table(args: &LagArgs, report: &[GroupReport], rows: &[PartitionLag]) {
    if report.is_empty() {
        out("no consumer groups");
        return;
    }
    let (active, idle): (Vec<&GroupReport>, Vec<&GroupReport>) = report
        .iter()
        .partition(|g| !g.members.is_empty() || args.all || args.group.is_some());
    let w = active
        .iter()
        .map(|g| g.group.len())
        .max()
        .unwrap_or(5)
        .max(5);
    if !active.is_empty() {
        out(format!(
            "{:<w$}  {:<19}  {:>7}  {:>10}  {:>10}  CLIENTS",
            "GROUP", "STATE", "MEMBERS", "PARTITIONS", "LAG"
        ));
        for g in &active {
            let who: Vec<String> = g
                .members
                .iter()
                .map(|m| format!("{}@{}", m.client_id, m.host))
                .collect();
            out(format!(
                "{:<w$}  {:<19}  {:>7}  {:>10}  {:>10}  {}",
                g.group,
                g.state,
                g.members.len(),
                g.partitions,
                g.lag,
                who.join(", ")
            ));
        }
    }
    let shown: Vec<&PartitionLag> = rows
        .iter()
        .filter(|r| active.iter().any(|g| g.group == r.group))
        .collect();
    if !args.summary && !shown.is_empty() {
        let w = shown
            .iter()
            .map(|r| r.group.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let t = shown
            .iter()
            .map(|r| r.topic.len())
            .max()
            .unwrap_or(5)
            .max(5);
        out("");
        out(format!(
            "{:<w$}  {:<t$}  {:>9}  {:>12}  {:>12}  {:>10}",
            "GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
        ));
        for r in shown {
            out(format!(
                "{:<w$}  {:<t$}  {:>9}  {:>12}  {:>12}  {:>10}",
                r.group, r.topic, r.partition, r.committed, r.end, r.lag
            ));
        }
    }
    if !idle.is_empty() {
        let lag: i64 = idle.iter().map(|g| g.lag).sum();
        out("");
        out(format!(
            "{} group(s) without members (lag {lag} in all; --all shows their partitions):",
            idle.len()
        ));
        for g in idle {
            out(format!(
                "  {} ({}, {} partition(s), lag {})",
                g.group, g.state, g.partitions, g.lag
            ));
        }
    }
}
