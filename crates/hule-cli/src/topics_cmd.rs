//! `hule topics plan|apply`: the registry's topics and their settings, against what a cluster has.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hule_tooling::topics::{desired, plan, Change, ClusterDescription, TopicOptions};

use crate::kafka_args::KafkaArgs;
use crate::out;

/// What to provision.
#[derive(Args, Clone)]
pub struct Wanted {
    /// Partitions per event topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor.
    #[arg(long, default_value_t = 3)]
    replication: i32,
    /// Also the legacy topics.
    #[arg(long)]
    legacy: bool,
    /// Leave out the dead-letter topics (`<topic>.dlq.v1`, one per source topic), which are planned by default:
    /// every consumer of a topic needs its dead-letter topic.
    #[arg(long)]
    no_dlq: bool,
    /// The dead-letter topics too (the default; kept for scripts written before it was).
    #[arg(long, hide = true, conflicts_with = "no_dlq")]
    dlq: bool,
}

/// `hule topics` subcommands.
#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Shows what to create or change.
    Plan {
        /// The cluster to compare with.
        #[command(flatten)]
        kafka: KafkaArgs,
        /// A cluster description (JSON: topic → {partitions, replication, configs}) instead of a live cluster.
        #[arg(long, conflicts_with = "brokers")]
        described: Option<PathBuf>,
        #[command(flatten)]
        wanted: Wanted,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Creates and changes topics through the admin API (needs a real cluster); safe to repeat.
    Apply {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        wanted: Wanted,
        /// Carry out partition additions too: they move keys to other partitions, so a key's records before and
        /// after the change are in different partitions (no order between them); refused without this.
        #[arg(long)]
        yes: bool,
        /// One JSON document: {"steps": [{line, failed}], "failed": N}.
        #[arg(long)]
        json: bool,
    },
}

fn options(w: &Wanted) -> anyhow::Result<TopicOptions> {
    if w.partitions < 1 || w.replication < 1 {
        anyhow::bail!("--partitions and --replication must be at least 1");
    }
    Ok(TopicOptions {
        partitions: w.partitions,
        replication: w.replication,
        legacy: w.legacy,
        dlq: !w.no_dlq,
        ..TopicOptions::default()
    })
}

fn describe(c: &Change) -> String {
    match c {
        Change::Create {
            topic,
            class,
            partitions,
            replication,
            configs,
        } => format!(
            "+ create {topic} ({}, {partitions} partitions, replication {replication}, {})",
            class.as_str(),
            configs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Change::AlterConfig { topic, changes } => format!(
            "~ configure {topic}: {}",
            changes
                .iter()
                .map(|(k, (from, to))| format!(
                    "{k} {} → {to}",
                    from.as_deref().unwrap_or("(unset)")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Change::AddPartitions { topic, from, to } => {
            format!("~ partitions of {topic}: {from} → {to}")
        }
        Change::Warning { topic, message } => format!("! {topic} {message}"),
    }
}

/// Refuses a replication factor the cluster cannot have (every create would fail, one by one).
fn check_replication(kafka: &crate::kafka_args::Kafka, opts: &TopicOptions) -> anyhow::Result<()> {
    let brokers = hule_kafka::admin::broker_count(kafka, kafka.timeout)?;
    if opts.replication > brokers {
        anyhow::bail!(
            "--replication {} needs {} brokers; the cluster has {brokers} (use --replication {brokers})",
            opts.replication,
            opts.replication
        );
    }
    Ok(())
}

async fn cluster(
    kafka: &crate::kafka_args::Kafka,
    opts: &TopicOptions,
) -> anyhow::Result<ClusterDescription> {
    let wanted: Vec<String> = desired(opts).into_keys().collect();
    Ok(hule_kafka::admin::describe(kafka, &wanted, kafka.timeout).await?)
}

/// Runs a topics subcommand: exit 0 done, 1 when the cluster refused a step of `apply`, 2 on usage, I/O or
/// connection errors.
pub fn run(cmd: &TopicsCommand) -> ExitCode {
    match run_inner(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(cmd: &TopicsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        TopicsCommand::Plan {
            kafka,
            described,
            wanted,
            json,
        } => {
            let opts = options(wanted)?;
            let have: ClusterDescription = match described {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("read {}", path.display()))?;
                    serde_json::from_str(&text).with_context(|| {
                        format!("{} is not a cluster description (topic → {{partitions, replication, configs}})", path.display())
                    })?
                }
                None if kafka.given() => {
                    let kafka = kafka.connect()?;
                    check_replication(&kafka, &opts)?;
                    runtime.block_on(cluster(&kafka, &opts))?
                }
                None => anyhow::bail!("give --brokers (or --kafka-config) or --described"),
            };
            let changes = plan(&have, &opts);
            if *json {
                out(serde_json::to_string_pretty(&changes)?);
                return Ok(ExitCode::SUCCESS);
            }
            let (warnings, actions): (Vec<&Change>, Vec<&Change>) = changes
                .iter()
                .partition(|c| matches!(c, Change::Warning { .. }));
            if actions.is_empty() {
                out(format!(
                    "nothing to do: all {} topics as wanted{}",
                    desired(&opts).len() - warnings.len(),
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!("; {} left as they are (below)", warnings.len())
                    }
                ));
            } else {
                for c in &actions {
                    out(describe(c));
                }
                let creates = actions
                    .iter()
                    .filter(|c| matches!(c, Change::Create { .. }))
                    .count();
                out(format!("{} change(s): {creates} to create", actions.len()));
            }
            for w in &warnings {
                out(describe(w));
            }
            Ok(ExitCode::SUCCESS)
        }
        TopicsCommand::Apply {
            kafka,
            wanted,
            yes,
            json,
        } => {
            let opts = options(wanted)?;
            let kafka = kafka.connect()?;
            check_replication(&kafka, &opts)?;
            runtime.block_on(async {
                let changes = plan(&cluster(&kafka, &opts).await?, &opts);
                let remaps: Vec<String> = changes.iter().filter(|c| matches!(c, Change::AddPartitions { .. })).map(describe).collect();
                if !remaps.is_empty() && !yes {
                    anyhow::bail!(
                        "the plan adds partitions to {} topic(s), which moves keys to other partitions (a key's records \
                         before and after are then in different partitions, with no order between them):\n{}\nre-run \
                         with --yes to carry it out",
                        remaps.len(),
                        remaps.join("\n")
                    );
                }
                if changes.iter().all(|c| matches!(c, Change::Warning { .. })) {
                    if *json {
                        out(serde_json::json!({"steps": [], "failed": 0, "warnings": changes.iter().map(describe).collect::<Vec<_>>()}));
                        return Ok(ExitCode::SUCCESS);
                    }
                    for c in &changes {
                        out(describe(c));
                    }
                    out("nothing to do");
                    return Ok(ExitCode::SUCCESS);
                }
                let spinner = crate::progress::spinner(&format!(
                    "applying {} change(s) to the cluster",
                    changes
                        .iter()
                        .filter(|c| !matches!(c, Change::Warning { .. }))
                        .count()
                ));
                let steps = hule_kafka::admin::apply(&kafka, &changes, kafka.timeout.max(Duration::from_secs(30))).await;
                spinner.finish_and_clear();
                let steps = steps?;
                let failed = steps.iter().filter(|s| s.failed).count();
                if *json {
                    let warnings: Vec<String> = changes
                        .iter()
                        .filter(|c| matches!(c, Change::Warning { .. }))
                        .map(describe)
                        .collect();
                    out(serde_json::json!({"steps": steps, "failed": failed, "warnings": warnings}));
                    return Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS });
                }
                for step in &steps {
                    out(&step.line);
                }
                if failed > 0 {
                    eprintln!(
                        "error: {failed} of {} step(s) failed; the others were carried out (run `hule topics plan` \
                         to see what remains)",
                        steps.len()
                    );
                    return Ok(ExitCode::from(1));
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
