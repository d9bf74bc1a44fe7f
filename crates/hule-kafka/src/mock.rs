//! Helpers for librdkafka's in-process mock cluster (`rdkafka::mocking::MockCluster`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, ClientContext};

/// Creates topics on a mock cluster, quickly.
///
/// The mock cluster's thread sometimes misses the wake-up for a queued operation and only sees it at its 1 s poll
/// timeout; creating a few hundred topics then took up to a minute. Requests arriving on its sockets wake it, so a
/// client asks for metadata in a loop on another thread while the topics are created.
pub fn create_topics<C: ClientContext>(
    cluster: &MockCluster<'_, C>,
    topics: impl IntoIterator<Item = (String, i32)>,
    replication: i32,
) -> Result<(), String> {
    let done = Arc::new(AtomicBool::new(false));
    let waker = {
        let (done, bootstrap) = (done.clone(), cluster.bootstrap_servers());
        std::thread::spawn(move || {
            let Ok(client) = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create::<BaseProducer>()
            else {
                return;
            };
            while !done.load(Ordering::SeqCst) {
                let _ = client
                    .client()
                    .fetch_metadata(None, Duration::from_millis(200));
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut result = Ok(());
    for (topic, partitions) in topics {
        if let Err(e) = cluster.create_topic(&topic, partitions, replication) {
            result = Err(format!("create topic {topic}: {e}"));
            break;
        }
    }
    done.store(true, Ordering::SeqCst);
    let _ = waker.join();
    result
}
