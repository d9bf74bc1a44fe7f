/*!
The transactional outbox: events are written in the caller's own database transaction and moved to the broker by
a relay that keeps per-key order, counts attempts, backs off and parks what keeps failing.

- [`prepare::prepare`] turns a typed envelope into rows (topic mode standard / legacy / both, key from the
  event's partition contract, standard headers, size check before anything is written).
- [`sqlite::enqueue`] and [`pg::enqueue`] insert the rows inside the caller's transaction; [`Outbox::publish`] does
  it from a typed payload; on PostgreSQL, [`Outbox::begin`] opens a [`PublishingTransaction`] whose events are
  written with its `COMMIT`, in the same round trip; [`Outbox::begin_on`] does the same on a [`WriterConnection`],
  which keeps the outbox's insert prepared.
- [`store::OutboxStore`] is what the relay needs from a table; [`SqliteOutbox`] and [`PgOutbox`] implement it on
  the same columns (a superset of the original `event_outbox`).
- [`relay::run_relay`] claims batches, hands them to a [`relay::Publish`] (Kafka lives in `hule-kafka`), and
  completes or fails each row. It knows nothing of Kafka.

```no_run
# async fn demo(env: hule_contracts::EventEnvelope<hule_contracts::payloads::SpellcheckPhaseCompletedV1>) -> Result<(), Box<dyn std::error::Error>> {
use hule_outbox::prepare::{prepare, EnqueueOptions};
let outbox = hule_outbox::SqliteOutbox::open("/tmp/outbox.db")?;
let mut conn = hule_outbox::sqlite::open(outbox.path())?;
let tx = conn.transaction()?;
// ... the business write in `tx` ...
hule_outbox::sqlite::enqueue(&tx, &prepare(&env, &EnqueueOptions::default())?)?;
tx.commit()?;
outbox.notify();
# Ok(()) }
```
*/
#![warn(missing_docs)]

#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
pub mod error;
mod legacy;
pub mod metrics;
pub mod model;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "postgres")]
pub mod pg_tx;
#[cfg(feature = "postgres")]
pub mod pg_writer;
pub mod prepare;
pub mod publish;
pub mod relay;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use error::StoreError;
#[cfg(feature = "postgres")]
pub use pg::PgOutbox;
#[cfg(feature = "postgres")]
pub use pg_tx::PublishingTransaction;
#[cfg(feature = "postgres")]
pub use pg_writer::WriterConnection;
pub use publish::{Outbox, OutboxTransaction, PublishOptions};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteOutbox;
pub use store::OutboxStore;
