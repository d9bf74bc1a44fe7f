//! `hule bench`: each scenario's figure beside the baseline it is judged against, measured in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use hule_contracts::examples::example_envelope;
use hule_contracts::{decode, Event, Timestamp, TypedEvent};
use serde::Serialize;
use uuid::Uuid;

/// Options of `hule bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Small sizes, all scenarios within 60 seconds (CI smoke test).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this path.
    #[arg(long)]
    json: Option<PathBuf>,
    /// PostgreSQL for the outbox, relay and inbox scenarios (each in a schema of its own, dropped afterwards).
    #[arg(
        long,
        env = "HULE_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// A real Kafka cluster for the relay, latency, consumer and pipeline scenarios instead of the embedded mock
    /// cluster (the bench topic is created when missing, with replication 1; earlier records are skipped).
    #[command(flatten)]
    kafka: crate::kafka_args::KafkaArgs,
    /// Only the envelope scenarios (no PostgreSQL, Redis or Kafka); the same as `--only envelope`.
    #[arg(long)]
    envelope_only: bool,
    /// Only these groups of scenarios (repeat or comma-separate); all when absent.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Group>,
    /// Rows per relay batch in the drain scenarios, and in the SQL and produce loops they are judged against
    /// (default: the relay's own default, as `hule relay` runs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    relay_batch: Option<u32>,
}

/// Groups of scenarios `--only` selects.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Group {
    /// Envelope decode and encode.
    Envelope,
    /// Outbox write cost.
    Write,
    /// Relay drain, PostgreSQL and SQLite.
    Drain,
    /// This relay against a model of the Python original's, on the original's table (needs `python3` and the
    /// packages `scripts/setup.sh` installs).
    Python,
    /// Commit-to-publish latency.
    Latency,
    /// Consumer runtime: no dedup, Redis, PostgreSQL inbox.
    Consumer,
    /// The demo pipeline.
    Pipeline,
    /// The console's index: ingest, trace queries, dead-letter page queries.
    Console,
}

/// One scenario's result.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub figure: f64,
    pub unit: String,
    pub baseline_name: String,
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
    pub peak_rss_mb: f64,
    pub note: String,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let budget = if args.quick {
        Duration::from_millis(700)
    } else {
        Duration::from_secs(4)
    };
    let started = Instant::now();
    let mut only = args.only.clone();
    if args.envelope_only {
        only.push(Group::Envelope);
    }
    let wanted = |g: Group| only.is_empty() || only.contains(&g);
    let real = if args.kafka.on_command_line() {
        Some(args.kafka.connect()?.settings)
    } else {
        None
    };
    let mut results = Vec::new();
    if wanted(Group::Envelope) {
        results.extend(envelope_scenarios(budget)?);
    }
    if wanted(Group::Console) {
        results.extend(crate::bench_console::console_scenarios(args.quick)?);
    }
    if [
        Group::Write,
        Group::Drain,
        Group::Python,
        Group::Latency,
        Group::Consumer,
        Group::Pipeline,
    ]
    .into_iter()
    .any(wanted)
    {
        results.extend(crate::bench_io::run_all(
            args.quick,
            args.relay_batch.map(|b| b as usize),
            &args.database_url,
            &wanted,
            real.as_ref(),
        )?);
    }
    print_table(&results);
    eprintln!(
        "bench: {} scenarios in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let kafka = real
            .as_ref()
            .map_or("embedded mock cluster", |k| k.brokers.as_str());
        let doc = serde_json::json!({ "quick": args.quick, "kafka": kafka, "seconds": started.elapsed().as_secs_f64(), "scenarios": results });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `f` repeatedly for about `budget` and returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..100 {
        f()?;
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f()?;
        }
        n += 64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The `ASSESSMENT_RESULT_PUBLISHED` envelope with 30 essay results used by the envelope scenarios.
pub fn assessment_envelope_bytes() -> anyhow::Result<Vec<u8>> {
    let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").map_err(anyhow::Error::msg)?;
    let mut env = example_envelope(
        Event::AssessmentResultPublished,
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        at,
    )?;
    if let TypedEvent::AssessmentResultPublished(p) = &mut env.data {
        let template = p.essay_results[0].clone();
        p.essay_results = (0..30)
            .map(|i| {
                let mut r = template.clone();
                r.essay_id = format!("essay-{i:04}-5d1e-4c1a-9a0b-{:012}", i * 7919);
                r.display_name = Some(format!("Student {i}, Åsa L."));
                r.rank = hule_contracts::constrained::PositiveInt::new(i + 1)
                    .expect("invariant: rank > 0");
                r.bt_score = 2.0 - f64::from(i as i32) * 0.131;
                r
            })
            .collect();
    }
    Ok(env.to_json()?)
}

fn envelope_scenarios(budget: Duration) -> anyhow::Result<Vec<ScenarioResult>> {
    let bytes = assessment_envelope_bytes()?;
    let topic = Event::AssessmentResultPublished.topic();
    let baseline = rate(budget, || {
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        std::hint::black_box(v);
        Ok(())
    })?;
    let decode_rate = rate(budget, || {
        let env = decode::decode(Some(topic), std::hint::black_box(&bytes))?;
        std::hint::black_box(env);
        Ok(())
    })?;
    // The limit: the same bytes into the same types with serde_json's strict derive (no pydantic JSON rules, no lax
    // coercions, no error paths).
    let typed = rate(budget, || {
        let env: hule_contracts::EventEnvelope<hule_contracts::payloads::AssessmentResultV1> =
            serde_json::from_slice(std::hint::black_box(&bytes))?;
        std::hint::black_box(env);
        Ok(())
    })?;
    // The fastest parsers' typed parse of the same bytes into the same types, strict, without validation: the
    // limit the decoder is judged against (the fastest of the three).
    type Typed = hule_contracts::EventEnvelope<hule_contracts::payloads::AssessmentResultV1>;
    let sonic = rate(budget, || {
        let env: Typed = sonic_rs::from_slice(std::hint::black_box(&bytes))?;
        std::hint::black_box(env);
        Ok(())
    })?;
    let mut scratch = bytes.clone();
    let simd = rate(budget, || {
        // simd-json parses in place, so each run starts from a fresh copy (a 9 KB memcpy, under 1 % of a parse).
        scratch.copy_from_slice(&bytes);
        let env: Typed = simd_json::serde::from_slice(std::hint::black_box(&mut scratch))?;
        std::hint::black_box(env);
        Ok(())
    })?;
    let (fastest_name, fastest) = [
        ("serde_json typed, strict", typed),
        ("sonic-rs typed, strict", sonic),
        ("simd-json typed, strict", simd),
    ]
    .into_iter()
    .fold(
        ("", 0.0),
        |best, (n, r)| if r > best.1 { (n, r) } else { best },
    );
    let tree_rate = rate(budget, || {
        let env = decode::decode_tree(Some(topic), std::hint::black_box(&bytes))?;
        std::hint::black_box(env);
        Ok(())
    })?;
    let env = decode::decode(Some(topic), &bytes)?;
    let encode_rate = rate(budget, || {
        let out = std::hint::black_box(&env).to_json()?;
        std::hint::black_box(out);
        Ok(())
    })?;
    let rss = peak_rss_mb();
    let size = bytes.len();
    Ok(vec![
        ScenarioResult {
            scenario: "envelope decode+validate".into(),
            figure: decode_rate,
            unit: "envelopes/s".into(),
            baseline_name: "serde_json::Value parse".into(),
            baseline,
            ratio: decode_rate / baseline,
            peak_rss_mb: rss,
            note: format!("ASSESSMENT_RESULT_PUBLISHED, 30 essay results, {size} bytes; Python original ~10k/s"),
        },
        ScenarioResult {
            scenario: "envelope decode vs typed".into(),
            figure: decode_rate,
            unit: "envelopes/s".into(),
            baseline_name: fastest_name.into(),
            baseline: fastest,
            ratio: decode_rate / fastest,
            peak_rss_mb: rss,
            note: format!(
                "the limit: the fastest of three parsers' typed parse of the same bytes into the same types, strict, without pydantic's JSON rules, lax coercions or constraints (serde_json {typed:.0}/s, sonic-rs {sonic:.0}/s, simd-json {simd:.0}/s); target 100,000/s"
            ),
        },
        ScenarioResult {
            scenario: "envelope decode, tree path".into(),
            figure: tree_rate,
            unit: "envelopes/s".into(),
            baseline_name: "the decoder (fast path)".into(),
            baseline: decode_rate,
            ratio: tree_rate / decode_rate,
            peak_rss_mb: rss,
            note: "the path a record takes when the streaming fast path refuses it (a duplicate key, an enum as an object, any error): jiter's parsed tree, then the lax deserializer".into(),
        },
        ScenarioResult {
            scenario: "envelope encode".into(),
            figure: encode_rate,
            unit: "envelopes/s".into(),
            baseline_name: "serde_json::Value parse".into(),
            baseline,
            ratio: encode_rate / baseline,
            peak_rss_mb: rss,
            note: format!("{size} bytes, pydantic-compatible compact JSON"),
        },
    ])
}

/// The machine's busy CPU time so far, in core-seconds, from `/proc/stat` (every process, the database's and the
/// broker's included; idle and I/O wait left out); `None` where there is no `/proc/stat`. Its figures are in
/// `USER_HZ`, 100 a second on Linux whatever the kernel's tick. Steal time counts as busy: the hypervisor gave
/// those cycles to another guest, and this machine could not use them.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal …: busy is all but idle (3) and iowait (4), up to steal.
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy as f64 / 100.0)
}

/// The cores this machine has (what [`machine_busy_seconds`] counts).
pub fn machine_cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn print_table(results: &[ScenarioResult]) {
    crate::out(format_args!(
        "{:<30} {:>14} {:<14} {:<28} {:>14} {:>7} {:>9}",
        "SCENARIO", "FIGURE", "UNIT", "BASELINE", "BASELINE", "RATIO", "PEAK MB"
    ));
    for r in results {
        crate::out(format_args!(
            "{:<30} {:>14.0} {:<14} {:<28} {:>14.0} {:>7.2} {:>9.1}",
            r.scenario, r.figure, r.unit, r.baseline_name, r.baseline, r.ratio, r.peak_rss_mb
        ));
        crate::out(format_args!("    {}", r.note));
    }
}
