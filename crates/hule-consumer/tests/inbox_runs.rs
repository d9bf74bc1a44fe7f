//! The PostgreSQL inbox's batched runs, driven as the Kafka driver drives a partition's run: `prepare` on the
//! records waiting, `call` each in order, `finish` on those that reached their outcomes (processing again, alone,
//! those it names), `abandon` on the rest. Each test checks what is committed from a connection of its own.
//! PostgreSQL on 127.0.0.1:5432, database `test` (or `$HULE_TEST_DATABASE_URL`); fails when it is missing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use hule_consumer::inbox::Transaction;
use hule_consumer::*;
use hule_contracts::headers::names;
use hule_contracts::payloads::{
    BatchEssaysRegistered, BatchServiceSpellcheckInitiateCommandDataV1,
};
use hule_contracts::Event;
use uuid::Uuid;

/// What the test's handler is told to do, by event id, and how often it ran.
#[derive(Clone, Default)]
struct Script {
    /// Refuse after writing the effect (permanent: dead-lettered when alone).
    refuse: Arc<Mutex<HashSet<Uuid>>>,
    /// Run a statement that fails and drop its error.
    swallow: Arc<Mutex<HashSet<Uuid>>>,
    /// Write a row that breaks a deferred foreign key: refused only at COMMIT.
    defer: Arc<Mutex<HashSet<Uuid>>>,
    calls: Arc<Mutex<HashMap<Uuid, u32>>>,
}

fn has(set: &Mutex<HashSet<Uuid>>, id: &Uuid) -> bool {
    set.lock().expect("lock").contains(id)
}

async fn effect(
    s: Script,
    tx: &Transaction<'_>,
    ctx: Context,
    p: BatchEssaysRegistered,
) -> Result<(), HandlerError> {
    *s.calls
        .lock()
        .expect("lock")
        .entry(ctx.event_id)
        .or_default() += 1;
    tx.execute(
        "INSERT INTO effects VALUES ($1, $2)",
        &[&ctx.event_id, &p.entity_id],
    )
    .await?;
    if has(&s.refuse, &ctx.event_id) {
        return Err(HandlerError::permanent("refused by rule"));
    }
    if has(&s.swallow, &ctx.event_id) {
        let _ = tx
            .execute("INSERT INTO no_such_table VALUES (1)", &[])
            .await;
    }
    if has(&s.defer, &ctx.event_id) {
        tx.execute("INSERT INTO children VALUES ('no such parent')", &[])
            .await?;
    }
    Ok(())
}

struct Db {
    admin: tokio_postgres::Client,
    schema: String,
    stack: BoxService,
    metrics: ConsumerMetrics,
    sink: Arc<MemorySink>,
    script: Script,
}

/// A schema of the test's own (`effects`, and `children` whose foreign key is checked at commit), an inbox on it
/// with `router_extra`'s routes beside the inbox route of `BatchEssaysRegistered`, in the standard stack.
async fn db(router_extra: impl FnOnce(Router, Arc<tokio_postgres::Client>) -> Router) -> Db {
    db_pooled(2, router_extra).await
}

/// [`db`] with an inbox of `pool` connections.
async fn db_pooled(
    pool: usize,
    router_extra: impl FnOnce(Router, Arc<tokio_postgres::Client>) -> Router,
) -> Db {
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("hule_test_{}", Uuid::new_v4().simple());
    let connect = || async {
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it)");
        tokio::spawn(conn);
        client
    };
    let admin = connect().await;
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.effects (event_id uuid, note text);
             CREATE TABLE {schema}.parents (id text PRIMARY KEY);
             CREATE TABLE {schema}.children (parent text REFERENCES {schema}.parents (id) DEFERRABLE INITIALLY DEFERRED)"
        ))
        .await
        .expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let inbox = PgInbox::connect(&url, "grp", pool).await.expect("inbox");
    let script = Script::default();
    let router = inbox.route_with(Router::new(), TopicChoice::Standard, script.clone(), effect);
    let router = router_extra(router, Arc::new(connect().await));
    let metrics = ConsumerMetrics::new(&hule_metrics::Registry::new(), "svc", "grp");
    let sink = Arc::new(MemorySink::default());
    let stack = standard_stack(router, "svc", None, sink.clone(), metrics.clone()).expect("stack");
    Db {
        admin,
        schema,
        stack,
        metrics,
        sink,
        script,
    }
}

/// A record of `id` at `offset`, dead-lettered at its first failure (no retries: the tests see outcomes at once).
fn record(id: Uuid, offset: i64) -> Message {
    let event = Event::BatchEssaysRegistered;
    let mut d = conformance::example_delivery(event, event.topic(), id, offset);
    d.headers.set(names::MAX_RETRIES, "0");
    Message::new(d)
}

impl Db {
    /// Records of `ids` at offsets 0, 1, …, prepared together.
    async fn prepared(&self, ids: &[Uuid]) -> Vec<Message> {
        let mut run: Vec<Message> = ids.iter().zip(0..).map(|(id, o)| record(*id, o)).collect();
        self.stack.prepare(&mut run).await;
        run
    }
    /// The run's first two records handled, its third undone, and `finish` naming the first two.
    async fn two_handled_then_undone(&self, run: &mut [Message]) {
        assert_eq!(self.call(&mut run[0]).await, HANDLED);
        assert_eq!(self.call(&mut run[1]).await, HANDLED);
        let undone = self.call(&mut run[2]).await;
        assert!(matches!(undone, Err(Failure::Undone(_))), "{undone:?}");
        assert_eq!(
            self.stack.finish(&mut run[..2]).await,
            Finished::Redo(vec![0, 1])
        );
    }
    async fn call(&self, msg: &mut Message) -> Processed {
        process(&self.stack, msg, &self.metrics).await
    }
    /// A record processed again alone, as the driver does with one `finish` names.
    async fn alone(&self, msg: &Message) -> Processed {
        process(
            &self.stack,
            &mut Message::new(msg.delivery.clone()),
            &self.metrics,
        )
        .await
    }
    /// The event ids with a committed effect, sorted, and how many inbox rows are committed.
    async fn committed(&self) -> (Vec<Uuid>, i64) {
        let mut ids: Vec<Uuid> = self
            .admin
            .query(
                &format!("SELECT event_id FROM {}.effects", self.schema),
                &[],
            )
            .await
            .expect("effects")
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort();
        let inboxed: i64 = self
            .admin
            .query_one(
                &format!("SELECT count(*) FROM {}.hule_inbox", self.schema),
                &[],
            )
            .await
            .expect("inbox")
            .get(0);
        (ids, inboxed)
    }
    fn calls(&self, id: Uuid) -> u32 {
        self.script
            .calls
            .lock()
            .expect("lock")
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
    async fn drop_schema(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .expect("drop");
    }
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

const HANDLED: Processed = Ok(Outcome::Handled);

/// A run's records are handled in one transaction: nothing is visible before `finish`, everything after it, all
/// written by one transaction (one `xmin`); redeliveries are duplicates.
#[tokio::test]
async fn a_run_commits_once_when_its_records_are_finished() {
    let db = db(|r, _| r).await;
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let mut run = db.prepared(&ids).await;
    for msg in &mut run {
        assert_eq!(db.call(msg).await, HANDLED);
    }
    assert_eq!(
        db.committed().await,
        (vec![], 0),
        "nothing durable before finish"
    );
    assert_eq!(db.stack.finish(&mut run).await, Finished::All);
    assert_eq!(db.committed().await, (sorted(ids.clone()), 6));
    let transactions: i64 = db
        .admin
        .query_one(
            &format!(
                "SELECT count(DISTINCT xmin::text) FROM {}.effects",
                db.schema
            ),
            &[],
        )
        .await
        .expect("xmin")
        .get(0);
    assert_eq!(transactions, 1, "one transaction for the run");
    for (id, offset) in ids.iter().zip(10..) {
        assert_eq!(
            db.call(&mut record(*id, offset)).await,
            Ok(Outcome::Duplicate {
                method: "postgres_inbox"
            })
        );
    }
    db.drop_schema().await;
}

/// A handler that fails in a run rolls the run back: it gets `Undone`, `finish` names the records handled before
/// it, and each of them, then it, is processed alone — its own failure dead-lettered there; so is the record after
/// it. Every effect once; the failing record none.
#[tokio::test]
async fn a_failure_in_a_run_undoes_it_and_each_record_is_processed_again_alone() {
    let db = db(|r, _| r).await;
    let [a, b, c, d] = [(); 4].map(|_| Uuid::new_v4());
    db.script.refuse.lock().expect("lock").insert(c);
    let mut run = db.prepared(&[a, b, c, d]).await;
    db.two_handled_then_undone(&mut run).await;
    assert_eq!(db.committed().await, (vec![], 0), "the run was rolled back");
    assert_eq!(db.alone(&run[0]).await, HANDLED);
    assert_eq!(db.alone(&run[1]).await, HANDLED);
    let refused = db.alone(&run[2]).await;
    assert!(
        matches!(refused, Ok(Outcome::DeadLettered { .. })),
        "{refused:?}"
    );
    assert_eq!(db.sink.letters.lock().expect("lock").len(), 1);
    // The rest of a run that lost handled records is handed back too, to be processed alone.
    let rest = db.call(&mut run[3]).await;
    assert!(matches!(rest, Err(Failure::Undone(_))), "{rest:?}");
    assert_eq!(db.alone(&run[3]).await, HANDLED);
    assert_eq!(db.committed().await, (sorted(vec![a, b, d]), 3));
    assert_eq!(
        [a, b, c, d].map(|id| db.calls(id)),
        [2, 2, 2, 1],
        "the undone records' handlers ran again; the last once"
    );
    db.drop_schema().await;
}

/// A handler that drops a failed statement's error returns `Ok` in a run: the next record's handler finds the
/// transaction aborted (its statement fails) and is undone; `finish` names both records before it; alone, the guilty one is found out
/// (dead-lettered) and the others are committed.
#[tokio::test]
async fn a_statement_error_swallowed_in_a_run_is_found_when_its_records_are_processed_alone() {
    let db = db(|r, _| r).await;
    let [a, s, b] = [(); 3].map(|_| Uuid::new_v4());
    db.script.swallow.lock().expect("lock").insert(s);
    let mut run = db.prepared(&[a, s, b]).await;
    db.two_handled_then_undone(&mut run).await;
    assert_eq!(db.alone(&run[0]).await, HANDLED);
    let guilty = db.alone(&run[1]).await;
    assert!(
        matches!(guilty, Ok(Outcome::DeadLettered { .. })),
        "{guilty:?}"
    );
    assert_eq!(db.alone(&run[2]).await, HANDLED);
    assert_eq!(db.committed().await, (sorted(vec![a, b]), 2));
    db.drop_schema().await;
}

/// A swallowed statement error in a run's last record, or a deferred constraint refused at COMMIT: the run's commit
/// fails at `finish`, which names every record it held; alone, the guilty records are dead-lettered and the others
/// committed.
#[tokio::test]
async fn a_commit_refused_at_finish_sends_the_runs_records_back_one_by_one() {
    let db = db(|r, _| r).await;
    let [a, bad, b, s] = [(); 4].map(|_| Uuid::new_v4());
    db.script.defer.lock().expect("lock").insert(bad);
    db.script.swallow.lock().expect("lock").insert(s);
    for ids in [[a, bad, b], [a, b, s]] {
        let mut run = db.prepared(&ids).await;
        for msg in &mut run {
            assert_eq!(db.call(msg).await, HANDLED);
        }
        assert_eq!(
            db.stack.finish(&mut run).await,
            Finished::Redo(vec![0, 1, 2])
        );
        assert_eq!(
            db.committed().await,
            (vec![], 0),
            "nothing of {ids:?} committed"
        );
    }
    let mut outcomes = Vec::new();
    for id in [a, bad, b, s] {
        outcomes.push(
            db.alone(&record(id, 9))
                .await
                .map(|o| matches!(o, Outcome::Handled)),
        );
    }
    assert_eq!(
        outcomes,
        vec![Ok(true), Ok(false), Ok(true), Ok(false)],
        "the guilty dead-lettered"
    );
    assert_eq!(db.sink.letters.lock().expect("lock").len(), 2);
    assert_eq!(db.committed().await, (sorted(vec![a, b]), 2));
    db.drop_schema().await;
}

/// A plain handler of `BatchSpellcheckInitiateCommand` that notes how many effects it sees committed.
fn counting_effects(
    seen: Arc<Mutex<Vec<i64>>>,
    schema: Arc<Mutex<String>>,
) -> impl FnOnce(Router, Arc<tokio_postgres::Client>) -> Router {
    move |router, client| {
        router.on(
            TopicChoice::Standard,
            move |_ctx: Context, _p: BatchServiceSpellcheckInitiateCommandDataV1| {
                let (client, seen, schema) = (client.clone(), seen.clone(), schema.clone());
                async move {
                    let schema = schema.lock().expect("lock").clone();
                    let n: i64 = client
                        .query_one(&format!("SELECT count(*) FROM {schema}.effects"), &[])
                        .await
                        .map_err(HandlerError::transient)?
                        .get(0);
                    seen.lock().expect("lock").push(n);
                    Ok(())
                }
            },
        )
    }
}

fn other_record(id: Uuid, offset: i64) -> Message {
    let other = Event::BatchSpellcheckInitiateCommand;
    Message::new(conformance::example_delivery(
        other,
        other.topic(),
        id,
        offset,
    ))
}

/// A record of the run handled elsewhere (a plain handler) commits the run's records before it first, so its effect
/// follows theirs: its handler sees them committed. The run goes on after it.
#[tokio::test]
async fn a_record_handled_elsewhere_in_a_run_commits_the_records_before_it_first() {
    let seen = Arc::new(Mutex::new(Vec::<i64>::new()));
    let schema_of = Arc::new(Mutex::new(String::new()));
    let db = db(counting_effects(seen.clone(), schema_of.clone())).await;
    *schema_of.lock().expect("lock") = db.schema.clone();
    let [a, b, x, c] = [(); 4].map(|_| Uuid::new_v4());
    let mut run = vec![record(a, 0), record(b, 1), other_record(x, 2), record(c, 3)];
    db.stack.prepare(&mut run).await;
    for msg in &mut run {
        assert_eq!(db.call(msg).await, HANDLED);
    }
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![2],
        "a and b committed before x"
    );
    assert_eq!(db.stack.finish(&mut run).await, Finished::All);
    assert_eq!(db.committed().await, (sorted(vec![a, b, c]), 3));
    db.drop_schema().await;
}

/// The driver finishes the records before a run's record while it is handled (a flush), and the commit fails for
/// that record's effect: `finish` names only the records it was given. The record handled elsewhere next must not
/// go ahead of the lost one: it is undone until `finish` has named that one too. One connection in the pool: the
/// records processed alone get it back from the run.
#[tokio::test]
async fn a_record_handled_elsewhere_waits_for_every_lost_record_to_be_named() {
    let seen = Arc::new(Mutex::new(Vec::<i64>::new()));
    let schema_of = Arc::new(Mutex::new(String::new()));
    let db = db_pooled(1, counting_effects(seen.clone(), schema_of.clone())).await;
    *schema_of.lock().expect("lock") = db.schema.clone();
    let [a, bad, x] = [(); 3].map(|_| Uuid::new_v4());
    db.script.defer.lock().expect("lock").insert(bad);
    let mut run = vec![record(a, 0), record(bad, 1), other_record(x, 2)];
    db.stack.prepare(&mut run).await;
    assert_eq!(db.call(&mut run[0]).await, HANDLED);
    assert_eq!(db.call(&mut run[1]).await, HANDLED);
    // The flush: only `a` is handed to finish; the commit holds `bad`'s deferred violation and fails.
    assert_eq!(
        db.stack.finish(&mut run[..1]).await,
        Finished::Redo(vec![0])
    );
    assert_eq!(db.alone(&run[0]).await, HANDLED);
    let early = db.call(&mut run[2]).await;
    assert!(matches!(early, Err(Failure::Undone(_))), "{early:?}");
    assert!(
        seen.lock().expect("lock").is_empty(),
        "x's handler did not run"
    );
    assert_eq!(
        db.stack.finish(&mut run[1..2]).await,
        Finished::Redo(vec![0])
    );
    let refused = db.alone(&run[1]).await;
    assert!(
        matches!(refused, Ok(Outcome::DeadLettered { .. })),
        "{refused:?}"
    );
    assert_eq!(db.alone(&run[2]).await, HANDLED);
    assert_eq!(*seen.lock().expect("lock"), vec![1]);
    assert_eq!(db.committed().await, (vec![a], 1));
    db.drop_schema().await;
}

/// A second copy of an event in the same run is a duplicate of the first copy's uncommitted row: when the run is
/// rolled back, `finish` names both, and alone the first is handled and the second is a duplicate again.
#[tokio::test]
async fn a_copy_judged_a_duplicate_in_a_lost_run_is_judged_again() {
    let db = db(|r, _| r).await;
    let [a, c] = [(); 2].map(|_| Uuid::new_v4());
    db.script.refuse.lock().expect("lock").insert(c);
    let mut run = db.prepared(&[a, a, c]).await;
    assert_eq!(db.call(&mut run[0]).await, HANDLED);
    assert_eq!(
        db.call(&mut run[1]).await,
        Ok(Outcome::Duplicate {
            method: "postgres_inbox"
        })
    );
    let undone = db.call(&mut run[2]).await;
    assert!(matches!(undone, Err(Failure::Undone(_))), "{undone:?}");
    assert_eq!(
        db.stack.finish(&mut run[..2]).await,
        Finished::Redo(vec![0, 1])
    );
    assert_eq!(db.alone(&run[0]).await, HANDLED);
    assert_eq!(
        db.alone(&run[1]).await,
        Ok(Outcome::Duplicate {
            method: "postgres_inbox"
        })
    );
    assert_eq!(db.committed().await, (vec![a], 1));
    db.drop_schema().await;
}
/// A run whose first record fails has lost nothing: that record is processed alone, and the rest of the run goes on
/// in one transaction.
#[tokio::test]
async fn a_failure_before_anything_was_handled_costs_only_that_record() {
    let db = db(|r, _| r).await;
    let [c, a, b] = [(); 3].map(|_| Uuid::new_v4());
    db.script.refuse.lock().expect("lock").insert(c);
    let mut run = db.prepared(&[c, a, b]).await;
    let failed = db.call(&mut run[0]).await;
    assert!(matches!(failed, Err(Failure::Undone(_))), "{failed:?}");
    let refused = db.alone(&run[0]).await;
    assert!(
        matches!(refused, Ok(Outcome::DeadLettered { .. })),
        "{refused:?}"
    );
    assert_eq!(db.call(&mut run[1]).await, HANDLED);
    assert_eq!(db.call(&mut run[2]).await, HANDLED);
    assert_eq!(db.committed().await, (vec![], 0));
    assert_eq!(db.stack.finish(&mut run[1..]).await, Finished::All);
    assert_eq!(db.committed().await, (sorted(vec![a, b]), 2));
    db.drop_schema().await;
}
