//! `hule bench --only console`: the console's index on this machine: how fast it takes records in (extraction from
//! the record's headers and envelope, and the SQLite transaction with its positions), how long a trace query takes
//! with a million records indexed, and how long the queries of a dead-letter page take with 100,000 dead letters.
//! Each figure is set beside its target (there is no faster "limit" to compare an index with here).

use std::time::{Duration, Instant};

use hule_console::index::Index;
use hule_consumer::{DeadLetter, Delivery, Failure};
use hule_contracts::examples::example_envelope;
use hule_contracts::{Event, Headers, Timestamp};
use hule_kafka::follow::Followed;

use crate::bench::{peak_rss_mb, ScenarioResult};

/// Record `i` of the bench: an event on one of 20 topics' partitions, keyed over 10,000 batches, one correlation id
/// per 20 records; every `dead_every`-th a dead letter of it, over 50 failure messages.
fn record(i: u64, dead_every: u64, now_ms: i64) -> anyhow::Result<Followed> {
    let event = Event::SpellcheckPhaseCompleted;
    let id = uuid::Uuid::from_u128(u128::from(i) + 1);
    let correlation = uuid::Uuid::from_u128(u128::from(i / 20) + 1_000_000_000);
    let env = example_envelope(
        event,
        id,
        correlation,
        Timestamp::from_datetime(chrono::Utc::now()),
    )?;
    let mut value = serde_json::to_value(&env)?;
    let key = format!("batch-{}", i % 10_000);
    value["data"]["entity_id"] = key.clone().into();
    let payload = serde_json::to_vec(&value)?;
    let headers = Headers::from(vec![
        ("event_id".into(), id.to_string()),
        ("event_type".into(), event.def().value.into()),
        ("X-Correlation-Id".into(), correlation.to_string()),
    ]);
    let delivery = Delivery {
        topic: event.def().topic.into(),
        partition: (i % 6) as i32,
        offset: (i / 6) as i64,
        key: Some(key.into_bytes()),
        headers,
        invalid_headers: Vec::new(),
        payload: Some(payload),
    };
    let delivery = if dead_every > 0 && i.is_multiple_of(dead_every) {
        let letter = DeadLetter::build(
            &delivery,
            &Failure::Permanent(format!("store refused kind {}", i % 50)),
            &format!("svc-{}", i % 5),
        );
        Delivery {
            topic: letter.topic,
            partition: (i % 6) as i32,
            offset: (i / 6) as i64,
            key: letter.key,
            headers: letter.headers,
            invalid_headers: Vec::new(),
            payload: Some(letter.value),
        }
    } else {
        delivery
    };
    Ok(Followed {
        delivery,
        timestamp_ms: Some(now_ms - 1_000 + (i % 1_000) as i64),
    })
}

/// Fills `index` with `n` records made as [`record`] says, in batches of 5,000 (as the indexer writes); returns
/// the records per second of extraction and ingestion (making the records is not timed).
fn fill(index: &Index, n: u64, dead_every: u64, now_ms: i64) -> anyhow::Result<f64> {
    let mut spent = Duration::ZERO;
    let mut i = 0;
    while i < n {
        let batch: Vec<Followed> = (i..(i + 5_000).min(n))
            .map(|j| record(j, dead_every, now_ms))
            .collect::<anyhow::Result<_>>()?;
        let started = Instant::now();
        index.ingest(&batch)?;
        spent += started.elapsed();
        i += batch.len() as u64;
    }
    Ok(n as f64 / spent.as_secs_f64())
}

fn p99(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 * 0.99).ceil() as usize)
        .saturating_sub(1)
        .min(ms.len() - 1)]
}

fn result(
    scenario: &str,
    figure: f64,
    unit: &str,
    target_name: &str,
    target: f64,
    lower_is_better: bool,
    note: String,
) -> ScenarioResult {
    ScenarioResult {
        scenario: scenario.into(),
        figure,
        unit: unit.into(),
        baseline_name: target_name.into(),
        baseline: target,
        ratio: if lower_is_better {
            target / figure
        } else {
            figure / target
        },
        peak_rss_mb: peak_rss_mb(),
        note,
    }
}

/// The console scenarios.
pub fn console_scenarios(quick: bool) -> anyhow::Result<Vec<ScenarioResult>> {
    let dir = std::env::temp_dir().join(format!(
        "hule-bench-console-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let out = run(&dir, quick);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn run(dir: &std::path::Path, quick: bool) -> anyhow::Result<Vec<ScenarioResult>> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (events, dead) = if quick {
        (100_000, 20_000)
    } else {
        (1_000_000, 100_000)
    };
    let mut out = Vec::new();

    // Ingest and trace: `events` records, one in 100 a dead letter.
    let index = Index::open(&dir.join("trace.db"))?;
    let ingest = fill(&index, events, 100, now_ms)?;
    out.push(result(
        "console index ingest",
        ingest,
        "records/s",
        "target",
        50_000.0,
        false,
        format!("{events} records of about 1 KB in batches of 5,000, 1 % dead letters: ids extracted, rows and positions in one SQLite transaction"),
    ));
    let mut times = Vec::new();
    for q in 0..300u64 {
        let i = (q * 7_919) % events;
        let needle = match q % 3 {
            0 => uuid::Uuid::from_u128(u128::from(i) + 1).to_string(),
            1 => uuid::Uuid::from_u128(u128::from(i / 20) + 1_000_000_000).to_string(),
            _ => format!("batch-{}", i % 10_000),
        };
        let started = Instant::now();
        let hits = index.trace(&needle, 2_000)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            !hits.is_empty(),
            "the bench's trace of {needle} found nothing"
        );
    }
    out.push(result(
        "console trace query p99",
        p99(times),
        "ms",
        "target",
        50.0,
        true,
        format!("{events} records indexed; 300 queries by event id, correlation id and key"),
    ));
    drop(index);

    // The dead-letter pages: `dead` dead letters over 250 failure groups.
    let index = Index::open(&dir.join("dlq.db"))?;
    fill(&index, dead, 1, now_ms)?;
    let mut times = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let groups = index.groups()?;
        let first = &groups
            .first()
            .ok_or_else(|| anyhow::anyhow!("no groups"))?
            .fingerprint
            .id;
        let page = index.group_records(first, 0, 50)?;
        let ids: Vec<String> = page.iter().map(hule_console::index::Hit::id).collect();
        index.dispositions(&ids)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    out.push(result(
        "console dead-letter page queries p99",
        p99(times),
        "ms",
        "target",
        200.0,
        true,
        format!("{dead} dead letters: the groups list, a group's first page of 50 and their ledger and archive state (the queries the two pages run; HTML rendering not timed)"),
    ));
    Ok(out)
}
