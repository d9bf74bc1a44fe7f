//! The PostgreSQL claim keeps its plan when the table's statistics are stale: a table migrated (and analysed)
//! empty, then filled without an ANALYZE — what happens in production when autovacuum is off — is still claimed by
//! an ordered index scan that stops at the limit, not by scanning and sorting every pending row, and the rows in
//! flight are excluded by a hash lookup.
#![cfg(feature = "postgres")]

use hule_outbox::pg::PgOutbox;
use uuid::Uuid;

#[tokio::test]
async fn the_claim_walks_the_pending_index_even_with_empty_table_statistics() {
    let schema = format!("hule_test_{}", Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL must run on 127.0.0.1:5432 (run scripts/setup.sh)");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let url = format!(
        "host=127.0.0.1 port=5432 user=postgres dbname=test options='-c search_path={schema}'"
    );
    // Migrates and analyses the empty table.
    let outbox = PgOutbox::connect(&url).await.expect("outbox");
    admin
        .batch_execute(&format!(
            "INSERT INTO {schema}.event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, event_key, topic)
             SELECT gen_random_uuid(), 'a' || g, 'essay', 't', '{{\"n\": 1}}'::json, 'k' || (g % 200), 'topic.v1'
             FROM generate_series(1, 20000) g"
        ))
        .await
        .expect("fill");
    // The claim is prepared once per session: the plan made for the parameters' values, and the generic one
    // PostgreSQL may switch to from the sixth execution, must both be the ordered index scan.
    for generic in [false, true] {
        let plan = outbox.claim_plan(500, generic).await.expect("explain");
        assert!(
            plan.contains("Index Scan using hule_outbox_pending"),
            "generic {generic}: {plan}"
        );
        assert!(!plan.contains("Sort"), "generic {generic}: {plan}");
        assert!(!plan.contains("Bitmap"), "generic {generic}: {plan}");
        // The rows in flight are excluded through a hash table (a subplan, hashed in any plan; an `= ANY($2)` array
        // is hashed only as a constant, and tested element by element in a generic plan: 90 ms a claim at 4,000
        // rows).
        assert!(plan.contains("hashed SubPlan"), "generic {generic}: {plan}");
        // The generic plan is the one made without values: its limit and budget are parameters.
        assert_eq!(plan.contains("$3"), generic, "{plan}");
    }
    // Explaining leaves nothing prepared behind it (a second generic explanation prepares the same name again),
    // and the claim itself, prepared on the same session, still runs.
    outbox.claim_plan(500, true).await.expect("explain again");
    use hule_outbox::store::OutboxStore as _;
    assert_eq!(outbox.claim(10).await.expect("claim").len(), 10);
    // An application widening `topic` and `event_key` under the relay's prepared claim does not stop it: the claim
    // casts what it reads, so its result type stays (without the casts PostgreSQL refuses the prepared statement,
    // 0A000 "cached plan must not change result type", on every claim).
    admin
        .batch_execute(&format!(
            "ALTER TABLE {schema}.event_outbox ALTER COLUMN topic TYPE text, ALTER COLUMN event_key TYPE varchar(512)"
        ))
        .await
        .expect("alter");
    assert_eq!(outbox.claim(10).await.expect("claim after alter").len(), 10);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}
