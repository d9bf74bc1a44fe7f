//! The demo's report: what ran, what arrived, how fast, and whether the counts reconcile. Pure data and text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::services::EssayResult;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Observations.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `ms` (nearest rank).
    pub fn of(mut ms: Vec<f64>) -> Latency {
        if ms.is_empty() {
            return Latency::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            count: ms.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: ms[ms.len() - 1],
        }
    }
}

/// Records seen on one topic by the observer.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TopicCount {
    /// Records, duplicates included.
    pub records: u64,
    /// Distinct event ids.
    pub unique_events: u64,
}

/// One reconciliation check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// The numbers.
    pub detail: String,
}

/// A ranking row, with the hidden quality the judge saw.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RankRow {
    /// The stored result.
    #[serde(flatten)]
    pub result: EssayResult,
    /// Hidden quality.
    pub hidden_quality: f64,
}

impl PartialEq for EssayResult {
    fn eq(&self, other: &Self) -> bool {
        self.essay_id == other.essay_id && self.rank == other.rank
    }
}

/// The whole report (`--json` writes it as is).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// This run's id: in its consumer groups' and schemas' names (removed when it ends).
    pub run_id: String,
    /// Where the outboxes were (`sqlite` or `postgres`).
    pub outbox: String,
    /// The brokers (`embedded mock cluster` or the address given).
    pub brokers: String,
    /// The consumers' dedup store (`memory`, or `redis` with the URL, password redacted).
    pub dedup: String,
    /// Batches registered.
    pub batches_registered: u64,
    /// Batches whose results are ready.
    pub batches_completed: u64,
    /// Essays registered.
    pub essays_registered: u64,
    /// Essays with a stored result.
    pub essays_with_results: u64,
    /// Essays whose result was applied more than once (must be 0).
    pub essays_with_multiple_results: u64,
    /// Records per topic, seen by an independent observer group.
    pub events_per_topic: BTreeMap<String, TopicCount>,
    /// Registration → results ready.
    pub end_to_end_latency: Latency,
    /// One event's trip from a service to the next, in parts ([`crate::hops`]).
    pub hops: Vec<(String, Latency)>,
    /// The same parts per topic, slowest median first.
    pub hops_by_topic: Vec<crate::hops::TopicHop>,
    /// Events the relays delivered.
    pub relay_events: u64,
    /// Relay events per second from the first registration to the end.
    pub relay_events_per_second: f64,
    /// Time until every consumer group had its partitions (before the first registration).
    pub startup_seconds: f64,
    /// The process's and the machine's CPU from the first registration until every batch's results were seen ready
    /// (absent where it cannot be read; see [`crate::cpu`]).
    pub pipeline_cpu: Option<crate::cpu::CpuUse>,
    /// Records the relays published twice on purpose (`--duplicate-rate`).
    pub duplicates_injected: u64,
    /// Deliveries the consumers' dedup should suppress (each injected duplicate × its consumer groups).
    pub duplicates_expected: u64,
    /// Deliveries suppressed as duplicates.
    pub duplicates_suppressed: u64,
    /// Poison records injected (`--poison-rate`).
    pub poison_injected: u64,
    /// Dead-letter records by reason, read back from the DLQ topics.
    pub dlq_by_reason: BTreeMap<String, u64>,
    /// Broker faults injected (`--broker-faults`).
    pub broker_faults: Vec<String>,
    /// The ranking of the first batch.
    pub ranking: Vec<RankRow>,
    /// The first batch's id.
    pub ranking_batch: String,
    /// Mean Kendall's tau between hidden quality and the CJ ranking, over batches.
    pub kendall_tau_mean: f64,
    /// Smallest per-batch tau.
    pub kendall_tau_min: f64,
    /// Reconciliation checks.
    pub checks: Vec<Check>,
    /// Whether every check holds.
    pub reconciled: bool,
    /// Wall time of the run.
    pub wall_seconds: f64,
}

impl Report {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "hule demo: {} batches, {} essays, outboxes on {}, Kafka: {}, dedup: {}",
            self.batches_registered, self.essays_registered, self.outbox, self.brokers, self.dedup
        );
        let _ = writeln!(
            o,
            "\nbatches completed      {}/{}",
            self.batches_completed, self.batches_registered
        );
        let _ = writeln!(
            o,
            "essays with a result   {}/{} (applied twice: {})",
            self.essays_with_results, self.essays_registered, self.essays_with_multiple_results
        );
        let l = &self.end_to_end_latency;
        let _ = writeln!(o, "end-to-end latency     p50 {:.0} ms   p95 {:.0} ms   p99 {:.0} ms   max {:.0} ms  (registration → results ready, {} batches)", l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count);
        for (part, l) in &self.hops {
            let _ = writeln!(
                o,
                "  per hop: {part:<30} p50 {:>6.1} ms   p99 {:>6.1} ms  ({} samples)",
                l.p50_ms, l.p99_ms, l.count
            );
        }
        for h in self.hops_by_topic.iter().take(3) {
            let _ = writeln!(
                o,
                "  slowest: {:<44} {:<28} p50 {:>6.1} ms   p99 {:>6.1} ms  ({} samples)",
                h.topic, h.part, h.latency.p50_ms, h.latency.p99_ms, h.latency.count
            );
        }
        if let Some(c) = &self.pipeline_cpu {
            let _ = writeln!(o, "  cpu: {c}");
        }
        let _ = writeln!(
            o,
            "relay                  {} events, {:.0} events/s from the first registration",
            self.relay_events, self.relay_events_per_second
        );
        let _ = writeln!(o, "duplicates             {} injected → {} deliveries expected to be suppressed, {} suppressed", self.duplicates_injected, self.duplicates_expected, self.duplicates_suppressed);
        let dlq: Vec<String> = self
            .dlq_by_reason
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        let _ = writeln!(
            o,
            "dead letters           {} poison injected; DLQ {}",
            self.poison_injected,
            if dlq.is_empty() {
                "empty".to_owned()
            } else {
                dlq.join(", ")
            }
        );
        if !self.broker_faults.is_empty() {
            let _ = writeln!(
                o,
                "broker faults          {}",
                self.broker_faults.join("; ")
            );
        }
        let _ = writeln!(o, "\nevents per topic (records / distinct events):");
        for (t, c) in &self.events_per_topic {
            let _ = writeln!(o, "  {t:<58} {:>6} / {:<6}", c.records, c.unique_events);
        }
        let _ = writeln!(
            o,
            "\nranking of {} (Bradley-Terry fit of the judge's comparisons):",
            self.ranking_batch
        );
        let _ = writeln!(
            o,
            "  {:>4}  {:<16} {:>8} {:>6} {:>6} {:<5} {:>8} {:>8}",
            "rank", "essay", "bt", "score", "grade", "conf", "fixes", "hidden q"
        );
        for r in &self.ranking {
            let e = &r.result;
            let _ = writeln!(
                o,
                "  {:>4}  {:<16} {:>8.3} {:>6.2} {:>6} {:<5} {:>8} {:>8.2}",
                e.rank,
                e.essay_id,
                e.bt_score,
                e.normalized_score,
                e.grade,
                e.confidence_label,
                e.corrections
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.hidden_quality
            );
        }
        let _ = writeln!(
            o,
            "\nKendall's tau (hidden quality vs CJ ranking): mean {:.3}, min {:.3}",
            self.kendall_tau_mean, self.kendall_tau_min
        );
        let _ = writeln!(o, "\nreconciliation:");
        for c in &self.checks {
            let _ = writeln!(
                o,
                "  [{}] {:<48} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(
            o,
            "\n{} in {:.1} s ({:.1} s of it joining the consumer groups)",
            if self.reconciled {
                "all counts reconcile"
            } else {
                "COUNTS DO NOT RECONCILE"
            },
            self.wall_seconds,
            self.startup_seconds
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(vec![]).count, 0);
    }
}
