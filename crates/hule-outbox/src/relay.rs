//! The relay loop: claim a batch, publish every record without awaiting each, await the reports, complete or fail.
//!
//! One relay per outbox, always: [`run_relay`] first becomes the outbox's leader ([`lead`]: PostgreSQL's advisory
//! lock, SQLite's lease row) and renews that leadership before every batch; started several times, the other
//! instances wait as hot standbys and take over when the leader dies. A batch in flight keeps renewing the
//! leadership, so a publish slower than the lease does not hand its rows to a standby; a relay that finds its
//! leadership gone publishes nothing more and stands by. The relay's steps ([`drain`],
//! [`relay_once`]) take the [`Leader`] token, so they cannot be run without having led first.

use std::future::Future;
use std::time::{Duration, Instant};

use hule_contracts::{DeliveryError, FailureKind};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Result, StoreError};
use crate::model::Claimed;
use crate::store::{Completion, FailedAttempt, FailurePolicy, Idle, OutboxStore};

/// Where records go. `hule-kafka` implements it for Kafka; tests implement it in memory.
pub trait Publish: Send + Sync + 'static {
    /// Publishes a batch concurrently and returns one outcome per record, in the same order. A retriable error
    /// is tried again with backoff, a permanent one parks its row at once, a fatal one stops the relay (the
    /// batch's rows stay pending for the next relay).
    fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> impl Future<Output = Vec<std::result::Result<(), DeliveryError>>> + Send;
}

/// Rows claimed per batch unless configured. Measured with `hule bench --only drain --relay-batch N` (100,000 rows
/// of 1 KB, 2026-12-06): 2,000 against 500 took the PostgreSQL drain from 25.6k to 31.5–40.3k events/s on the mock
/// cluster and from 11.3k to 25.9k on a real broker, because each batch waits for its slowest acknowledgement and
/// the database's round trips are paid per batch. The memory a batch holds is its rows: 2,000 events of 1 KB are
/// 2 MB, and two batches of events are held at once (the one being published and the next one claimed; the one
/// before keeps only its rows' `seq` and topic until its outcomes are recorded); a claim also stops at
/// [`crate::store::CLAIM_BYTES`] of events, so events near the 1 MiB limit hold at most about 34 MB.
pub const DEFAULT_BATCH_SIZE: usize = 2_000;

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows claimed per batch.
    pub batch_size: usize,
    /// Fallback poll interval when no wake-up arrives.
    pub poll_interval: Duration,
    /// Delete or mark delivered rows.
    pub completion: Completion,
    /// Attempts and backoff.
    pub failure: FailurePolicy,
    /// Where to count (none: not counted).
    pub metrics: Option<crate::metrics::OutboxMetrics>,
    /// How often a standby asks whether it may lead.
    pub standby_poll: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: poll_interval_for(std::env::var("ENVIRONMENT").ok().as_deref()),
            completion: Completion::Delete,
            failure: FailurePolicy::default(),
            metrics: None,
            standby_poll: Duration::from_secs(1),
        }
    }
}

/// The fallback poll interval by `ENVIRONMENT`, as in the original: testing 0.1 s, development 1 s, otherwise 5 s.
pub fn poll_interval_for(environment: Option<&str>) -> Duration {
    match environment.map(str::to_ascii_lowercase).as_deref() {
        Some("testing") => Duration::from_millis(100),
        Some("development") => Duration::from_secs(1),
        _ => Duration::from_secs(5),
    }
}

/// Counters of one relay run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayStats {
    /// Records delivered.
    pub published: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Batches claimed.
    pub batches: u64,
}

/// Proof that this instance led the outbox when it was made; the relay's steps require it.
#[derive(Debug)]
pub struct Leader(());

/// Waits until this instance leads the outbox (a hot standby until then), polling every `every`; `None` when
/// `stop` is set first.
pub async fn lead<S: OutboxStore>(
    store: &S,
    every: Duration,
    stop: &CancellationToken,
) -> Result<Option<Leader>> {
    let mut announced = false;
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        match store.try_lead().await {
            Ok(true) => {
                tracing::info!("relay: leading the outbox");
                return Ok(Some(Leader(())));
            }
            Ok(false) if !announced => {
                tracing::info!("relay: another relay leads this outbox; standing by");
                announced = true;
            }
            Ok(false) => {}
            // The database unreachable (a restart, a failover): stand by and try again, rather than end.
            Err(e) => tracing::warn!(error = %e, "relay: cannot take the lead yet; standing by"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return Ok(None),
        }
    }
}

/// Runs the relay until `stop` is set; the batch in flight is always finished before returning. Leads first
/// ([`lead`]) and goes back to standing by if leadership is lost.
pub async fn run_relay<S: OutboxStore, P: Publish>(
    store: &S,
    publisher: &P,
    config: &RelayConfig,
    stop: CancellationToken,
) -> Result<RelayStats> {
    let mut stats = RelayStats::default();
    let result = relay_loop(store, publisher, config, &stop, &mut stats).await;
    if let (Err(e), Some(m)) = (&result, &config.metrics) {
        m.database(false, &e.to_string());
    }
    result.map(|()| stats)
}

async fn relay_loop<S: OutboxStore, P: Publish>(
    store: &S,
    publisher: &P,
    config: &RelayConfig,
    stop: &CancellationToken,
    stats: &mut RelayStats,
) -> Result<()> {
    let health = config.metrics.as_ref();
    let mut last_cleanup = Instant::now();
    let mut last_status: Option<Instant> = None;
    let mut in_flight_pause = IN_FLIGHT_FIRST;
    health.inspect(|m| m.leading(false));
    let Some(mut leader) = lead(store, config.standby_poll, stop).await? else {
        return Ok(());
    };
    health.inspect(|m| m.leading(true));
    // Stands by until this instance leads again (`None`: stopped meanwhile).
    let lead_again = || async {
        health.inspect(|m| m.leading(false));
        let leader = lead(store, config.standby_poll, stop).await?;
        if leader.is_some() {
            health.inspect(|m| m.leading(true));
        }
        Result::<Option<Leader>>::Ok(leader)
    };
    while !stop.is_cancelled() {
        if !store.renew_leadership().await? {
            tracing::warn!("relay: leadership lost; standing by");
            leader = match lead_again().await? {
                Some(l) => l,
                None => break,
            };
        }
        let before = (stats.published, stats.failed);
        let moved = match drain(store, publisher, config, stats, stop, &leader).await {
            Err(StoreError::LeadershipLost) => {
                tracing::warn!("relay: leadership lost while a batch was in flight; publishing nothing more, standing by");
                leader = match lead_again().await? {
                    Some(l) => l,
                    None => break,
                };
                continue;
            }
            // The database failed (a restart, a failover, a lost session): stand by and lead again once it answers,
            // rather than end; what was claimed and not completed is claimed again.
            Err(e @ StoreError::Database { .. }) => {
                tracing::warn!(error = %e, "relay: database error; standing by and trying again");
                health.inspect(|m| m.database(false, &e.to_string()));
                tokio::select! {
                    () = tokio::time::sleep(config.standby_poll) => {}
                    () = stop.cancelled() => break,
                }
                leader = match lead_again().await? {
                    Some(l) => l,
                    None => break,
                };
                continue;
            }
            other => other?,
        };
        if let Some(m) = &config.metrics {
            m.database(true, "connected");
            // The broker is unwell while attempts fail and none succeeds; well again at the first acknowledgement.
            if stats.published > before.0 {
                m.broker(true, "acknowledging");
            } else if stats.failed > before.1 {
                m.broker(
                    false,
                    &format!(
                        "{} publish attempts failed, none acknowledged",
                        stats.failed - before.1
                    ),
                );
            }
            // The gauges count rows (a real COUNT, one pass): every 200 ms when idle, every 5 s while draining.
            // Measured with `hule bench --only drain` (100,000 rows, mock broker): refreshing `status` (four
            // passes) every second while draining cut the drain from 19.6k to 15.0k events/s on PostgreSQL and
            // from 13.5k to 9.2k on SQLite.
            let every = if moved == 0 {
                Duration::from_millis(200)
            } else {
                STATUS_WHILE_DRAINING
            };
            if last_status.is_none_or(|t| t.elapsed() >= every) {
                // A failed refresh is the next drain's to meet; the gauges keep their last values meanwhile.
                match store.gauges().await {
                    Ok(g) => m.gauges(&g),
                    Err(e) => tracing::warn!(error = %e, "relay: cannot refresh the outbox gauges"),
                }
                last_status = Some(Instant::now());
            }
        }
        if let Completion::Mark { retention } = config.completion {
            if last_cleanup.elapsed() > Duration::from_secs(10) {
                if let Err(e) = store.cleanup(retention, 1000).await {
                    tracing::warn!(error = %e, "relay: cleanup of published rows failed; trying again later");
                }
                last_cleanup = Instant::now();
            }
        }
        if moved > 0 {
            // Rows found right after falling asleep (committed just before): awake, so writers stop notifying
            // for the rest of the drain.
            if let Err(e) = store.awake().await {
                tracing::warn!(error = %e, "relay: cannot announce that it is awake; writers keep waking it");
            }
        } else {
            // A failed announcement never stops the relay, and never lets it sleep unannounced (a writer would
            // then not wake it): it looks again shortly, as when writers are in flight.
            let idle = store.idle().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "relay: cannot announce that it sleeps; looking again shortly");
                Idle::WritersInFlight
            });
            match idle {
                // Rows committed just before the announcement woke nobody: look once more.
                Idle::FellAsleep => {
                    in_flight_pause = IN_FLIGHT_FIRST;
                    continue;
                }
                Idle::WritersInFlight => {
                    tokio::select! {
                        () = tokio::time::sleep(in_flight_pause) => {}
                        () = stop.cancelled() => break,
                    }
                    in_flight_pause = (in_flight_pause * 2).min(IN_FLIGHT_MAX);
                    continue;
                }
                Idle::Asleep => {}
            }
            in_flight_pause = IN_FLIGHT_FIRST;
            // The stop is noticed while waiting, not after the poll interval (5 s in production).
            tokio::select! {
                () = store.wait_for_work(config.poll_interval.min(store.renew_every())) => {}
                () = stop.cancelled() => break,
            }
            if let Err(e) = store.awake().await {
                tracing::warn!(error = %e, "relay: cannot announce that it woke; writers keep waking it");
            }
        }
    }
    Ok(())
}

/// How soon the relay looks again when writers are inside transactions that add rows; doubling up to
/// [`IN_FLIGHT_MAX`] while they stay open (the longest a row committed then waits).
const IN_FLIGHT_FIRST: Duration = Duration::from_millis(1);
/// See [`IN_FLIGHT_FIRST`].
const IN_FLIGHT_MAX: Duration = Duration::from_millis(8);

/// How often the relay refreshes its gauges while a backlog drains.
pub const STATUS_WHILE_DRAINING: Duration = Duration::from_secs(5);

/// How long one [`drain`] call runs before returning to its caller (which refreshes the status gauges and calls it
/// again while there is work).
pub const DRAIN_SLICE: Duration = Duration::from_secs(1);

/// One claim-publish-complete round; returns the number of rows claimed.
pub async fn relay_once<S: OutboxStore, P: Publish>(
    store: &S,
    publisher: &P,
    config: &RelayConfig,
    stats: &mut RelayStats,
    _leader: &Leader,
) -> Result<usize> {
    let started = Instant::now();
    let batch = store.claim(config.batch_size).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    if !store.renew_leadership().await? {
        return Err(StoreError::LeadershipLost);
    }
    stats.batches += 1;
    let (outcomes, held) = publish_leading(store, publisher, &batch).await;
    let settled = settle(
        &batch,
        outcomes,
        chrono::Utc::now().timestamp_micros(),
        started,
    );
    let fatal = settled.fatal.clone();
    // A fatal publisher error outranks a failed recording: the relay must stop, not stand by and lead again.
    let recorded = record(store, config, stats, settled).await;
    stop_if_fatal(fatal)?;
    recorded?;
    if !held {
        return Err(StoreError::LeadershipLost);
    }
    Ok(batch.len())
}

/// Publishes `batch` while renewing leadership every [`OutboxStore::renew_every`], so that a publish slower than
/// the lease (a broker that takes `message.timeout.ms` to refuse) never lets a standby take over the rows in
/// flight. Returns the outcomes and whether leadership held throughout; when it did not, the records already
/// handed to the publisher cannot be called back (at least once: consumers deduplicate), but the caller publishes
/// nothing more.
async fn publish_leading<S: OutboxStore, P: Publish>(
    store: &S,
    publisher: &P,
    batch: &[Claimed],
) -> (Vec<std::result::Result<(), DeliveryError>>, bool) {
    let publish = publisher.publish_batch(batch).instrument(batch_span(batch));
    tokio::pin!(publish);
    let every = store.renew_every();
    let keeper = async {
        loop {
            tokio::time::sleep(every).await;
            match store.renew_leadership().await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: cannot renew leadership while publishing");
                    return;
                }
            }
        }
    };
    tokio::select! {
        outcomes = &mut publish => (outcomes, true),
        () = keeper => (publish.await, false),
    }
}

/// Drains until nothing is claimable or [`DRAIN_SLICE`] has passed, overlapping each batch's publish with the
/// database work around it; returns the rows moved.
///
/// While batch n+1 is being published, the relay records batch n's outcomes (deletes or marks what was delivered,
/// backs off what failed) and claims batch n+2, excluding batch n+1's rows: after the recording when n had a
/// failure (the claim must see its key held back), at the same time when every row of n was delivered (the claim
/// then excludes n's rows too, and is dropped if the recording fails). Order is kept: batch n+1 is handed
/// to the publisher only after every delivery report of batch n is in, and loses every row whose key failed in
/// batch n (those stay pending behind their failed row, which the claim query holds back until its retry); a fatal
/// publisher error in batch n stops the drain before n+1 is published. Leadership is confirmed right before each
/// batch is published and renewed while it is; when it is lost, the drain publishes nothing more and returns
/// [`StoreError::LeadershipLost`] (the batch's completion is refused too when another relay holds the lease).
///
/// What overlapping costs: when recording batch n fails (the database gone, the lease taken), batch n+1 is already
/// on its way. The drain then records n+1 if it can (its reports are in), claims nothing more and returns the error;
/// n's rows, still pending (and n+1's, if its recording failed too), are published again later — after n+1's. Every
/// other error ends the drain the same way: the batch already published is recorded first. That is the at-least-once
/// of a crash between produce and delete: the copies carry their first event id, and a consumer deduplicating by
/// event id (as this library's do) sees each key in order. What it buys is the database's time hidden behind
/// the publish: measured with `hule bench --only drain` (mock cluster, 2026-12-06) the drain ran at 0.66–0.90 of the
/// awaited-produce loop alone, against 0.73 before, in runs too noisy to say more.
pub async fn drain<S: OutboxStore, P: Publish>(
    store: &S,
    publisher: &P,
    config: &RelayConfig,
    stats: &mut RelayStats,
    stop: &CancellationToken,
    _leader: &Leader,
) -> Result<usize> {
    let mut moved = 0;
    let began = Instant::now();
    let mut current = store.claim(config.batch_size).await?;
    // The previous batch's outcomes, recorded while the current batch is published.
    let mut unrecorded: Option<Settled> = None;
    while !current.is_empty() {
        let started = Instant::now();
        moved += current.len();
        stats.batches += 1;
        let exclude: Vec<i64> = current.iter().map(|r| r.seq).collect();
        // Leadership is confirmed (renewed) right before each batch is handed to the publisher: a relay that lost
        // it (a slow database, a stall) publishes nothing more.
        let renewed = store.renew_leadership().await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                let lost = StoreError::LeadershipLost;
                return finish_with(store, config, stats, unrecorded.take(), lost).await;
            }
            Err(e) => return finish_with(store, config, stats, unrecorded.take(), e).await,
        }
        // A drain returns after about `DRAIN_SLICE` so that the caller refreshes the gauges while a long backlog
        // drains.
        let more = !stop.is_cancelled() && began.elapsed() < DRAIN_SLICE;
        let previous = unrecorded.take();
        let counted = &mut *stats;
        let (((outcomes, held), acked_at), (recorded, next)) = futures::join!(
            async {
                let published = publish_leading(store, publisher, &current).await;
                (published, chrono::Utc::now().timestamp_micros())
            },
            async {
                match previous {
                    // Every row delivered: its completion and the next claim, which leaves its rows out too, run
                    // at once (a store with a session for each runs them side by side). A claim made while the
                    // completion failed is dropped unpublished, as if never made.
                    Some(settled) if settled.failures.is_empty() => {
                        let mut both = exclude.clone();
                        both.extend(settled.delivered.iter().map(|(seq, ..)| *seq));
                        let (recorded, next) =
                            futures::join!(record(store, config, counted, settled), async {
                                if more {
                                    store.claim_excluding(config.batch_size, &both).await
                                } else {
                                    Ok(Vec::new())
                                }
                            });
                        let next = if recorded.is_ok() {
                            next
                        } else {
                            Ok(Vec::new())
                        };
                        (recorded, next)
                    }
                    // Failed rows recorded before the next claim, so that the claim sees their keys held back.
                    previous => {
                        let recorded = match previous {
                            Some(settled) => record(store, config, counted, settled).await,
                            None => Ok(()),
                        };
                        let next = match (&recorded, more) {
                            (Ok(()), true) => {
                                store.claim_excluding(config.batch_size, &exclude).await
                            }
                            _ => Ok(Vec::new()),
                        };
                        (recorded, next)
                    }
                }
            }
        );
        let settled = settle(&current, outcomes, acked_at, started);
        // Every way out below records this batch first (its records are out): a drain that ends on an error
        // sends again only the rows it could not record.
        let fatal = settled.fatal.clone();
        if let Err(e) = recorded {
            let ended = finish_with(store, config, stats, Some(settled), e).await;
            // A fatal publisher error outranks the failed recording: the relay must stop, not lead again.
            stop_if_fatal(fatal)?;
            return ended;
        }
        if fatal.is_some() || !held {
            let recorded = record(store, config, stats, settled).await;
            stop_if_fatal(fatal)?;
            recorded?;
            // The next batch was claimed while leading; another relay may lead now and own those rows.
            return Err(StoreError::LeadershipLost);
        }
        let mut next = match next {
            Ok(next) => next,
            Err(e) => return finish_with(store, config, stats, Some(settled), e).await,
        };
        if !settled.failed_keys.is_empty() {
            let failed: std::collections::HashSet<&Option<String>> =
                settled.failed_keys.iter().collect();
            next.retain(|r| !failed.contains(&r.key));
        }
        current = next;
        unrecorded = Some(settled);
    }
    if let Some(settled) = unrecorded {
        record(store, config, stats, settled).await?;
    }
    Ok(moved)
}

/// Ends a drain with `error` after trying to record `settled` (a batch already published): its rows are then
/// not sent again. A failure to record is logged; `error` is what the drain returns.
async fn finish_with<S: OutboxStore>(
    store: &S,
    config: &RelayConfig,
    stats: &mut RelayStats,
    settled: Option<Settled>,
    error: StoreError,
) -> Result<usize> {
    if let Some(settled) = settled {
        if let Err(e) = record(store, config, stats, settled).await {
            tracing::warn!(error = %e, "relay: cannot record a published batch; its rows will be sent again");
        }
    }
    Err(error)
}

/// The span of one batch's publish; each record's `outbox.publish` span (the publisher's) continues its own
/// event's trace and links here.
fn batch_span(batch: &[Claimed]) -> tracing::Span {
    tracing::info_span!(target: "hule", "outbox.relay_batch", records = batch.len())
}

/// A batch's outcomes sorted for the store: what was delivered, the failed attempts to record, the keys whose rows
/// must not be published after this batch, and a fatal publisher error. Pure: [`record`] writes it.
#[derive(Debug)]
struct Settled {
    /// Delivered rows: the row's `seq`, its topic and its age at the acknowledgement (seconds), for the metrics.
    /// The batch's rows themselves are not kept: a batch waiting to be recorded holds no events.
    delivered: Vec<(i64, String, f64)>,
    failures: Vec<FailedAttempt>,
    failed_keys: Vec<Option<String>>,
    fatal: Option<String>,
    /// When the batch was claimed.
    started: Instant,
}

/// Ends the relay's run on a fatal publisher error (after its batch is recorded).
fn stop_if_fatal(fatal: Option<String>) -> Result<()> {
    match fatal {
        Some(message) => {
            tracing::error!(error = %message, "publisher failed fatally; the relay stops");
            Err(StoreError::PublisherFatal(message))
        }
        None => Ok(()),
    }
}

/// Sorts a batch's outcomes (see [`Settled`]).
fn settle(
    batch: &[Claimed],
    outcomes: Vec<std::result::Result<(), DeliveryError>>,
    acked_at: i64,
    started: Instant,
) -> Settled {
    let mut settled = Settled {
        delivered: Vec::with_capacity(batch.len()),
        failures: Vec::new(),
        failed_keys: Vec::new(),
        fatal: None,
        started,
    };
    // A publisher that returned fewer outcomes than records: the rows without one are held back (no attempt
    // counted), as behind a failed row, rather than taken as delivered or forgotten.
    for row in batch.iter().skip(outcomes.len()) {
        tracing::error!(
            seq = row.seq,
            "the publisher returned no outcome for this row; it stays due"
        );
        settled.failed_keys.push(row.key.clone());
    }
    // The keys whose row failed earlier in this batch (rows are in `seq` order), with that row's index in
    // `failures`: a later row of the key is held back as the claim query would have held it back.
    let mut failed_at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (row, outcome) in batch.iter().zip(outcomes) {
        let behind = row.key.as_deref().and_then(|k| failed_at.get(k).copied());
        match outcome {
            Ok(()) => {
                if let Some(i) = behind {
                    // The publisher sent it before its key's earlier row failed (a broker's late refusal): it is
                    // out, so the earlier row, if retried, would follow it. Said where an operator will look.
                    let failures = &mut settled.failures;
                    tracing::warn!(seq = row.seq, before = failures[i].seq, topic = %row.topic, "delivered after an earlier row of its key failed: that row is now out of order");
                    failures[i].error.push_str(&format!(
                        " [row #{} of the same key was delivered after this failure: retrying this row delivers it out of order; discard it unless order does not matter]",
                        row.seq
                    ));
                }
                let age = (acked_at - row.created_at_micros) as f64 / 1e6;
                settled.delivered.push((row.seq, row.topic.clone(), age));
            }
            // Held back behind its key's failed row: no attempt counted; it stays due, and the claim query keeps it
            // behind that row until the row is delivered or discarded.
            Err(_) if behind.is_some() => settled.failed_keys.push(row.key.clone()),
            Err(e) => {
                tracing::warn!(seq = row.seq, topic = %row.topic, attempts = row.attempts + 1, error = %e, "publish failed");
                let attempts = row.attempts + 1;
                let failure = match e.kind {
                    FailureKind::Retriable => {
                        FailedAttempt::retriable(row.seq, attempts, e.to_string())
                    }
                    // Retrying cannot help: park now instead of after max_attempts rounds of backoff (the count
                    // stays true: one attempt reads as one).
                    FailureKind::Permanent => {
                        FailedAttempt::permanent(row.seq, attempts, e.to_string())
                    }
                    // Not the row's fault: the row stays due (no attempt counted) for the next relay.
                    FailureKind::Fatal => {
                        settled.fatal.get_or_insert_with(|| e.message.clone());
                        settled.failed_keys.push(row.key.clone());
                        continue;
                    }
                };
                if let Some(k) = row.key.as_deref() {
                    failed_at.insert(k, settled.failures.len());
                }
                settled.failures.push(failure);
                settled.failed_keys.push(row.key.clone());
            }
        }
    }
    settled
}

/// Writes a batch's outcomes to the store, then counts them (in `stats` and the metrics): what the store refused
/// is not counted.
async fn record<S: OutboxStore>(
    store: &S,
    config: &RelayConfig,
    stats: &mut RelayStats,
    settled: Settled,
) -> Result<()> {
    let Settled {
        delivered,
        failures,
        started,
        ..
    } = settled;
    if !delivered.is_empty() {
        // Counted once completed: a relay whose completion is refused (another leads now) delivered nothing.
        let seqs = delivered.iter().map(|(seq, ..)| *seq).collect();
        store.delivered(seqs, config.completion).await?;
        stats.published += delivered.len() as u64;
        if let Some(m) = &config.metrics {
            m.published_all(
                delivered
                    .iter()
                    .map(|(_, topic, age)| (topic.as_str(), *age)),
            );
        }
    }
    if !failures.is_empty() {
        let n = failures.len();
        store.failed(failures, config.failure).await?;
        stats.failed += n as u64;
        if let Some(m) = &config.metrics {
            m.failed(n);
        }
    }
    if let Some(m) = &config.metrics {
        m.batch(started.elapsed().as_secs_f64());
    }
    Ok(())
}
