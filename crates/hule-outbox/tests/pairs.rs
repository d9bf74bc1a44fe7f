//! The dual-event pattern (seed 003) and dual production of versions (seed 000) through the outbox: the events of
//! one business transaction are stored together or not at all, with their own topics and keys.

use hule_contracts::examples::example_envelope;
use hule_contracts::{DecodedEnvelope, Event, EventEnvelope, Payload, Timestamp, TypedEvent};
use hule_outbox::prepare::{prepare, EnqueueOptions, NewRow};
use hule_outbox::store::OutboxStore;
use hule_outbox::SqliteOutbox;
use uuid::Uuid;

fn typed<P: Payload>(env: DecodedEnvelope) -> EventEnvelope<P> {
    env.map_data(|d: TypedEvent| P::from_typed(d).expect("payload of the event"))
}

fn rows_of(events: &[Event]) -> Vec<NewRow> {
    use hule_contracts::payloads::*;
    let at = Timestamp::from_datetime(chrono::Utc::now());
    let mut rows = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let env = example_envelope(*e, Uuid::from_u128(100 + i as u128), Uuid::from_u128(7), at)
            .expect("example");
        let opts = EnqueueOptions::default();
        rows.extend(
            match e {
                Event::SpellcheckPhaseCompleted => {
                    prepare(&typed::<SpellcheckPhaseCompletedV1>(env), &opts)
                }
                Event::SpellcheckResults => prepare(&typed::<SpellcheckResultV1>(env), &opts),
                Event::BatchNlpInitiateCommand => {
                    prepare(&typed::<BatchServiceNlpInitiateCommandDataV1>(env), &opts)
                }
                Event::BatchNlpInitiateCommandV2 => {
                    prepare(&typed::<BatchServiceNlpInitiateCommandDataV2>(env), &opts)
                }
                other => panic!("not used here: {other:?}"),
            }
            .expect("prepare"),
        );
    }
    rows
}

#[tokio::test]
async fn a_thin_and_a_rich_event_are_stored_together_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("hule-pairs-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("o.db");
    let outbox = SqliteOutbox::open(&path).expect("open");
    let mut conn = hule_outbox::sqlite::open(&path).expect("conn");

    for events in [
        vec![Event::SpellcheckPhaseCompleted, Event::SpellcheckResults],
        vec![
            Event::BatchNlpInitiateCommand,
            Event::BatchNlpInitiateCommandV2,
        ],
    ] {
        let rows = rows_of(&events);
        assert_eq!(rows.len(), 2);
        let tx = conn.transaction().expect("tx");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.rollback().expect("rollback");
        assert_eq!(
            outbox.depth().await.expect("depth"),
            0,
            "a rolled-back pair leaves nothing"
        );

        let tx = conn.transaction().expect("tx");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.commit().expect("commit");
        let claimed = outbox.claim(10).await.expect("claim");
        let topics: Vec<&str> = claimed.iter().map(|c| c.topic.as_str()).collect();
        assert_eq!(
            topics,
            events.iter().map(|e| e.topic()).collect::<Vec<_>>(),
            "both, in order, on their topics"
        );
        outbox
            .delivered(
                claimed.iter().map(|c| c.seq).collect(),
                hule_outbox::store::Completion::Delete,
            )
            .await
            .expect("done");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn both_topics_is_refused_where_kafka_cannot_hold_both_names() {
    use hule_outbox::prepare::TopicMode;
    let example = |e: Event| {
        let at = Timestamp::from_datetime(chrono::Utc::now());
        example_envelope(e, Uuid::from_u128(1), Uuid::from_u128(2), at).expect("example")
    };
    let both = EnqueueOptions {
        mode: TopicMode::Both,
        ..EnqueueOptions::default()
    };
    let colliding = typed::<hule_contracts::payloads::EmailDeliveryFailedV1>(example(
        Event::EmailDeliveryFailed,
    ));
    let err = prepare(&colliding, &both).expect_err("legacy and standard names collide in Kafka");
    assert!(
        err.to_string().contains("huleedu.email.delivery_failed.v1"),
        "{err}"
    );
    let distinct = typed::<hule_contracts::payloads::BatchServiceSpellcheckInitiateCommandDataV1>(
        example(Event::BatchSpellcheckInitiateCommand),
    );
    assert_eq!(
        prepare(&distinct, &both)
            .expect("two names Kafka can hold")
            .len(),
        2
    );
}
