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
    ///
    /// Calls [`Handed::now`] as soon as every record has been handed, in order, to a transport that keeps each
    /// key's records in the order handed (Kafka's idempotent producer does, per partition): the relay then hands
    /// it the next batch before this one's outcomes are in ([`IN_FLIGHT_BATCHES`]). A publisher that never calls
    /// it (dropping `handed` unused) has one batch in flight at a time; a wrapper around another publisher passes
    /// `handed` on.
    fn publish_handing(
        &self,
        batch: &[Claimed],
        handed: Handed,
    ) -> impl Future<Output = Vec<std::result::Result<(), DeliveryError>>> + Send;

    /// Publishes a batch, as [`Publish::publish_handing`] without telling anyone when it is handed over.
    fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> impl Future<Output = Vec<std::result::Result<(), DeliveryError>>> + Send {
        self.publish_handing(batch, Handed::unheard())
    }
}

/// Told by a publisher once every record of a batch has been handed to its transport
/// ([`Publish::publish_handing`]). It must not outlive the publisher's future: the relay waits for the word or
/// for the `Handed` to be dropped.
#[derive(Debug)]
pub struct Handed(Option<futures::channel::oneshot::Sender<()>>);

impl Handed {
    /// Says that every record of the batch has been handed over; later calls do nothing.
    pub fn now(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }

    /// A `Handed` nobody waits for (what [`Publish::publish_batch`] passes).
    pub fn unheard() -> Self {
        Handed(None)
    }
}

/// Rows claimed per batch unless configured. Measured with `hule bench --only drain --relay-batch N` (100,000 rows
/// of 1 KB, 2026-12-06): 2,000 against 500 took the PostgreSQL drain from 25.6k to 31.5–40.3k events/s on the mock
/// cluster and from 11.3k to 25.9k on a real broker, because each batch waits for its slowest acknowledgement and
/// the database's round trips are paid per batch. The memory a batch holds is its rows: 2,000 events of 1 KB are
/// 2 MB, and up to three batches of events are held at once (the [`IN_FLIGHT_BATCHES`] being published and the
/// next one claimed; a batch waiting to be recorded keeps only its rows' `seq` and topic); a claim also stops at
/// [`crate::store::CLAIM_BYTES`] of events, so events near the 1 MiB limit hold at most about 51 MB.
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
    let landed = Landed {
        batch,
        outcomes,
        acked_at: chrono::Utc::now().timestamp_micros(),
        started,
    };
    let settled = settle(&landed, None);
    let fatal = settled.fatal.clone();
    // A fatal publisher error outranks a failed recording: the relay must stop, not stand by and lead again.
    let recorded = record(store, config, stats, settled).await;
    stop_if_fatal(fatal)?;
    recorded?;
    if !held {
        return Err(StoreError::LeadershipLost);
    }
    Ok(landed.batch.len())
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

/// Batches the relay keeps in flight at once when its publisher hands records over in order
/// ([`Publish::publish_handing`]): batch n+1 is handed to the producer as soon as batch n's records all are, not
/// when batch n's acknowledgements are in. What it changed is in BENCHMARKS.md (`hule bench --only drain`).
pub const IN_FLIGHT_BATCHES: usize = 2;

/// Drains until nothing is claimable or [`DRAIN_SLICE`] has passed, with up to [`IN_FLIGHT_BATCHES`] batches in
/// flight and the database work done while they are; returns the rows moved.
///
/// The cycle: when the oldest batch in flight (n) has every outcome, the relay sorts them ([`settle`]), records
/// the batch before it if that one was kept back (see Order) and batch n itself unless something in it failed or
/// was held back, claims the next batch (excluding every row in flight or not yet recorded, and every key that
/// failed in n), confirms its leadership and hands that batch to the publisher while batch n+1 is still in
/// flight, so the database work is done while a batch flies. A publisher that never calls [`Handed::now`] has
/// one batch in flight, and the database work waits for its outcomes.
///
/// **Order.** A batch is handed only after every record of the one before is handed, so the transport sees each
/// key's rows in `seq` order; Kafka's idempotent producer keeps that order per partition, so two batches in flight
/// are, for order, one larger batch. A row of a key that failed in batch n can already be in flight in batch n+1:
/// if it fails too it is held back (no attempt counted; it stays due behind the failed row, which the claim query
/// holds back until its retry); if it is delivered, the failed row is now out of order, and its recorded error says
/// so (`retrying this row delivers it out of order`) — which is why a batch with a failure is recorded only after
/// the batch after it is sorted. Batch n+2 is claimed after n is sorted and loses every row of n's failed keys. A fatal publisher error
/// stops the handing; the batches in flight are awaited and recorded, then the relay stops.
///
/// **Leadership** is confirmed (renewed) right before each batch is handed and renewed every
/// [`OutboxStore::renew_every`] while batches are in flight, so a publish slower than the lease does not hand its
/// rows to a standby. When it is lost the drain hands nothing more, records what is in flight (the store refuses
/// it if another relay leads) and returns [`StoreError::LeadershipLost`].
///
/// **Errors.** When recording or claiming fails (the database gone, the lease taken), the batches in flight are
/// awaited and recorded if the store lets them, and the drain returns the error; rows it could not record are
/// pending and go out again later, after rows already sent. That is the at-least-once of a crash between produce
/// and delete: the copies carry their first event id, and a consumer deduplicating by event id (as this library's
/// do) sees each key in order. One case it cannot mend: a failed row overtaken by its key's row in the next batch,
/// whose batch could not be recorded, is retried without its out-of-order mark (the warning is in the log).
pub async fn drain<S: OutboxStore, P: Publish>(
    store: &S,
    publisher: &P,
    config: &RelayConfig,
    stats: &mut RelayStats,
    stop: &CancellationToken,
    _leader: &Leader,
) -> Result<usize> {
    let began = Instant::now();
    let mut moved = 0;
    let mut sky = Sky::new(store);
    let mut next = store.claim(config.batch_size).await?;
    let mut next_claimed = Instant::now();
    // The last batch sorted: recorded once the batch after it is sorted (which may amend its failures).
    let mut unrecorded: Option<Settled> = None;
    // Why the drain hands nothing more: the first error, and a fatal publisher error.
    let mut ended: Option<StoreError> = None;
    let mut fatal: Option<String> = None;
    loop {
        // Hand batches while fewer than IN_FLIGHT_BATCHES are in flight and none has landed unsorted (a batch
        // claimed before the one in flight landed loses that one's failed keys first).
        while ended.is_none()
            && fatal.is_none()
            && !stop.is_cancelled()
            && !next.is_empty()
            && sky.flights.len() < IN_FLIGHT_BATCHES
            && !sky.landed()
        {
            match sky.flying(store.renew_leadership()).await {
                Ok(true) if sky.held => {}
                Ok(_) => {
                    ended = Some(StoreError::LeadershipLost);
                    break;
                }
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
            moved += next.len();
            stats.batches += 1;
            sky.hand(publisher, std::mem::take(&mut next), next_claimed)
                .await;
            // A drain returns after about `DRAIN_SLICE` so that the caller refreshes the gauges while a long
            // backlog drains. A publisher that says it handed a batch only once its outcomes are in has it
            // landed by now: it is sorted before anything more is claimed.
            let more = !stop.is_cancelled() && began.elapsed() < DRAIN_SLICE;
            if sky.flights.len() >= IN_FLIGHT_BATCHES || !more || sky.landed() {
                break;
            }
            next_claimed = Instant::now();
            match sky
                .flying(claim_next(
                    store,
                    config,
                    sky.excluded(unrecorded.as_ref()),
                    unrecorded.as_ref(),
                ))
                .await
            {
                Ok(rows) => next = rows,
                Err(e) => ended = Some(e),
            }
        }
        if sky.flights.is_empty() {
            break;
        }
        let landed = sky.land().await;
        let settled = settle(&landed, unrecorded.as_mut());
        drop(landed);
        if !settled.failed_keys.is_empty() {
            // Claimed while this batch flew: its rows of this batch's failed keys stay behind them.
            let failed: std::collections::HashSet<&Option<String>> =
                settled.failed_keys.iter().collect();
            next.retain(|r| !failed.contains(&r.key));
        }
        if let Some(message) = &settled.fatal {
            fatal.get_or_insert_with(|| message.clone());
        }
        if !sky.held && ended.is_none() {
            ended = Some(StoreError::LeadershipLost);
        }
        // A batch with nothing failed or held back has nothing the batch after it could amend: recorded now,
        // before the next claim, which then need not exclude its rows. One with a failure waits for the batch
        // after it; the claim meanwhile excludes its rows and its failed keys.
        let keep = !settled.failed_keys.is_empty();
        let now = match keep {
            true => unrecorded.replace(settled).into_iter().collect::<Vec<_>>(),
            false => unrecorded.take().into_iter().chain([settled]).collect(),
        };
        for settled in now {
            let recorded = sky.flying(record(store, config, stats, settled)).await;
            if let Err(e) = recorded {
                note_unrecorded(&mut ended, e);
            }
        }
        let more = !stop.is_cancelled() && began.elapsed() < DRAIN_SLICE;
        if ended.is_none() && fatal.is_none() && more && next.is_empty() {
            next_claimed = Instant::now();
            match sky
                .flying(claim_next(
                    store,
                    config,
                    sky.excluded(unrecorded.as_ref()),
                    unrecorded.as_ref(),
                ))
                .await
            {
                Ok(rows) => next = rows,
                Err(e) => ended = Some(e),
            }
        }
    }
    if let Some(last) = unrecorded {
        if let Err(e) = record(store, config, stats, last).await {
            note_unrecorded(&mut ended, e);
        }
    }
    // A fatal publisher error outranks a failed recording: the relay must stop, not stand by and lead again.
    stop_if_fatal(fatal)?;
    match ended {
        Some(e) => Err(e),
        None => Ok(moved),
    }
}

/// Keeps the first error of a drain; a later failure to record is logged (those rows are sent again).
fn note_unrecorded(ended: &mut Option<StoreError>, e: StoreError) {
    match ended {
        None => *ended = Some(e),
        Some(_) => {
            tracing::warn!(error = %e, "relay: cannot record a published batch; its rows will be sent again")
        }
    }
}

/// Claims the drain's next batch: no row in flight or not yet recorded, no row of a key that failed in the last
/// batch sorted (not recorded yet, so the claim query cannot hold those keys back itself).
async fn claim_next<S: OutboxStore>(
    store: &S,
    config: &RelayConfig,
    exclude: Vec<i64>,
    unrecorded: Option<&Settled>,
) -> Result<Vec<Claimed>> {
    let mut next = store.claim_excluding(config.batch_size, &exclude).await?;
    if let Some(s) = unrecorded.filter(|s| !s.failed_keys.is_empty()) {
        let failed: std::collections::HashSet<&Option<String>> = s.failed_keys.iter().collect();
        next.retain(|r| !failed.contains(&r.key));
    }
    Ok(next)
}

/// A batch handed to the publisher: its rows' `seq` (excluded from claims while it flies) and its landing, which
/// owns the rows and ends with their outcomes.
struct Flight<'p> {
    seqs: Vec<i64>,
    landing: futures::future::MaybeDone<futures::future::BoxFuture<'p, Landed>>,
}

/// A batch whose outcomes are all in.
struct Landed {
    batch: Vec<Claimed>,
    outcomes: Vec<std::result::Result<(), DeliveryError>>,
    /// When the last outcome came in (microseconds since the epoch).
    acked_at: i64,
    /// When the batch was claimed.
    started: Instant,
}

/// What a drain has in flight, and the leadership kept while it does.
struct Sky<'p, S> {
    flights: std::collections::VecDeque<Flight<'p>>,
    /// Renews leadership every `renew_every` while batches fly; ends when it is lost (or cannot be renewed).
    keeper: Option<futures::future::BoxFuture<'p, ()>>,
    /// Whether leadership held throughout.
    held: bool,
    _store: std::marker::PhantomData<&'p S>,
}

impl<'p, S: OutboxStore> Sky<'p, S> {
    fn new(store: &'p S) -> Self {
        let every = store.renew_every();
        let keeper = async move {
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
        Sky {
            flights: std::collections::VecDeque::new(),
            keeper: Some(Box::pin(keeper)),
            held: true,
            _store: std::marker::PhantomData,
        }
    }

    /// The rows a claim must not take: every row in flight, and the last batch sorted if it is not recorded yet.
    fn excluded(&self, unrecorded: Option<&Settled>) -> Vec<i64> {
        let mut exclude: Vec<i64> = self
            .flights
            .iter()
            .flat_map(|f| f.seqs.iter().copied())
            .collect();
        if let Some(s) = unrecorded {
            exclude.extend_from_slice(&s.seqs);
        }
        exclude
    }

    /// Drives every flight and the keeper once; true when the oldest flight has landed.
    fn poll_flights(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        for flight in &mut self.flights {
            let _ = std::pin::Pin::new(&mut flight.landing).poll(cx);
        }
        if let Some(keeper) = &mut self.keeper {
            if keeper.as_mut().poll(cx).is_ready() {
                self.keeper = None;
                self.held = false;
            }
        }
        matches!(
            self.flights.front().map(|f| &f.landing),
            Some(futures::future::MaybeDone::Done(_))
        )
    }

    /// Runs `work` while the batches in flight go on.
    async fn flying<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            self.poll_flights(cx);
            work.as_mut().poll(cx)
        })
        .await
    }

    /// Hands `batch` to the publisher and returns once every record of it is handed over (so that nothing handed
    /// later overtakes it), the flights going on meanwhile.
    async fn hand<P: Publish>(&mut self, publisher: &'p P, batch: Vec<Claimed>, started: Instant) {
        let (handed, told) = futures::channel::oneshot::channel();
        let seqs = batch.iter().map(|r| r.seq).collect();
        let span = batch_span(&batch);
        let landing = async move {
            let outcomes = publisher
                .publish_handing(&batch, Handed(Some(handed)))
                .instrument(span)
                .await;
            let acked_at = chrono::Utc::now().timestamp_micros();
            Landed {
                batch,
                outcomes,
                acked_at,
                started,
            }
        };
        self.flights.push_back(Flight {
            seqs,
            landing: futures::future::maybe_done(Box::pin(landing)),
        });
        // A publisher that drops `handed` without saying so is taken as handing its batch over when its outcomes
        // are in: nothing more is handed before it lands.
        if self.flying(told).await.is_err() {
            std::future::poll_fn(|cx| {
                self.poll_flights(cx);
                match self.flights.back().map(|f| &f.landing) {
                    Some(futures::future::MaybeDone::Future(_)) => std::task::Poll::Pending,
                    _ => std::task::Poll::Ready(()),
                }
            })
            .await;
        }
    }

    /// Whether a flight has its outcomes (as of the last poll).
    fn landed(&self) -> bool {
        self.flights
            .iter()
            .any(|f| matches!(f.landing, futures::future::MaybeDone::Done(_)))
    }

    /// Waits for the oldest flight's outcomes, the others going on meanwhile.
    async fn land(&mut self) -> Landed {
        std::future::poll_fn(|cx| {
            if self.poll_flights(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        let mut flight = self.flights.pop_front().expect("a flight has landed");
        std::pin::Pin::new(&mut flight.landing)
            .take_output()
            .expect("a landed flight has its outcomes")
    }
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
    /// Every row's `seq`: excluded from claims until the batch is recorded.
    seqs: Vec<i64>,
    /// Delivered rows: the row's `seq`, its topic and its age at the acknowledgement (seconds), for the metrics.
    /// The batch's rows themselves are not kept: a batch waiting to be recorded holds no events.
    delivered: Vec<(i64, String, f64)>,
    failures: Vec<FailedAttempt>,
    /// The keys whose row failed with an attempt counted, with that row's index in `failures`: a later row of the
    /// key (in this batch or the next, in flight with it) is held back as the claim query would hold it back.
    failed_at: std::collections::HashMap<String, usize>,
    /// The keys of rows that stay due without an attempt counted (held back, fatal, no outcome).
    held: std::collections::HashSet<String>,
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

/// Sorts a batch's outcomes (see [`Settled`]). `before` is the batch handed just before this one and not yet
/// recorded (it was in flight with this one): a row here whose key failed there is held back when it failed too,
/// and makes that failure say it is now out of order when it was delivered.
fn settle(landed: &Landed, mut before: Option<&mut Settled>) -> Settled {
    let Landed {
        batch,
        outcomes,
        acked_at,
        started,
    } = landed;
    let mut settled = Settled {
        seqs: batch.iter().map(|r| r.seq).collect(),
        delivered: Vec::with_capacity(batch.len()),
        failures: Vec::new(),
        failed_at: std::collections::HashMap::new(),
        held: std::collections::HashSet::new(),
        failed_keys: Vec::new(),
        fatal: None,
        started: *started,
    };
    // A publisher that returned fewer outcomes than records: the rows without one are held back (no attempt
    // counted), as behind a failed row, rather than taken as delivered or forgotten.
    for row in batch.iter().skip(outcomes.len()) {
        tracing::error!(
            seq = row.seq,
            "the publisher returned no outcome for this row; it stays due"
        );
        settled.hold(row);
    }
    for (row, outcome) in batch.iter().zip(outcomes) {
        // A fatal error is the relay's, not the row's: the row stays due (no attempt counted) and the relay stops.
        if let Some(e) = outcome
            .as_ref()
            .err()
            .filter(|e| e.kind == FailureKind::Fatal)
        {
            settled.fatal.get_or_insert_with(|| e.message.clone());
            settled.hold(row);
            continue;
        }
        // The key's earlier row that failed (in this batch, rows being in `seq` order, else in the batch before,
        // which was in flight with this one), or that stays due without an attempt.
        let key = row.key.as_deref();
        let failed = key.and_then(|k| {
            settled.failed_at.get(k).map(|&i| (true, i)).or_else(|| {
                before
                    .as_deref()
                    .and_then(|b| b.failed_at.get(k))
                    .map(|&i| (false, i))
            })
        });
        let held = key.is_some_and(|k| {
            settled.held.contains(k) || before.as_deref().is_some_and(|b| b.held.contains(k))
        });
        match outcome {
            Ok(()) => {
                if let Some((here, i)) = failed {
                    // Sent before its key's earlier row failed (a broker's late refusal, or a timeout): it is out,
                    // so the earlier row, if retried, would follow it. Said where an operator will look, once.
                    let failures = match (here, before.as_deref_mut()) {
                        (false, Some(b)) => &mut b.failures,
                        _ => &mut settled.failures,
                    };
                    tracing::warn!(seq = row.seq, before = failures[i].seq, topic = %row.topic, "delivered after an earlier row of its key failed: that row is now out of order");
                    if !failures[i].error.contains(OVERTAKEN) {
                        failures[i].error.push_str(&format!(
                            " [row #{} {OVERTAKEN}: retrying this row (and any row of its key still due before #{}) delivers it out of order; discard it unless order does not matter]",
                            row.seq, row.seq
                        ));
                    }
                } else if held {
                    tracing::warn!(seq = row.seq, topic = %row.topic, "delivered while an earlier row of its key stays due without an attempt: that row is now out of order");
                }
                let age = (acked_at - row.created_at_micros) as f64 / 1e6;
                settled.delivered.push((row.seq, row.topic.clone(), age));
            }
            // Held back behind its key's failed row: no attempt counted; it stays due, and the claim query keeps it
            // behind that row until the row is delivered or discarded.
            Err(_) if failed.is_some() || held => settled.hold(row),
            Err(e) => {
                tracing::warn!(seq = row.seq, topic = %row.topic, attempts = row.attempts + 1, error = %e, "publish failed");
                let attempts = row.attempts + 1;
                // Retrying cannot help a permanent error: park now instead of after max_attempts rounds of
                // backoff (the count stays true: one attempt reads as one).
                let failure = match e.kind {
                    FailureKind::Permanent => {
                        FailedAttempt::permanent(row.seq, attempts, e.to_string())
                    }
                    _ => FailedAttempt::retriable(row.seq, attempts, e.to_string()),
                };
                if let Some(k) = &row.key {
                    settled.failed_at.insert(k.clone(), settled.failures.len());
                }
                settled.failures.push(failure);
                settled.failed_keys.push(row.key.clone());
            }
        }
    }
    settled
}

/// What a failed row's recorded error says once a later row of its key was delivered.
const OVERTAKEN: &str = "of the same key was delivered after this failure";

impl Settled {
    /// A row that stays due without an attempt counted: its key's later rows are held back too.
    fn hold(&mut self, row: &Claimed) {
        if let Some(k) = &row.key {
            self.held.insert(k.clone());
        }
        self.failed_keys.push(row.key.clone());
    }
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
            for (_, topic, age) in &delivered {
                m.published(topic, *age);
            }
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
