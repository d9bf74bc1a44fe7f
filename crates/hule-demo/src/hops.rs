//! Where the end-to-end latency goes, hop by hop. Each event's trip from one service to the next is timed in four
//! parts, on one clock (this process's):
//!
//! 1. **outbox write → relay claim**: the row's `created_at` (written by the producing handler, in its transaction)
//!    to the moment the relay hands its batch to the producer — the commit, the relay's wake-up and its claim;
//! 2. **relay claim → consumer call**: that moment to the moment the consuming service's stack is called for the
//!    record — the produce, the broker, the consumer's fetch wait, its queue, the partition worker;
//! 3. **consumer call → outcome**: decoding, validation, dedup and the handler, whose own outbox write (the next
//!    hop's start) is inside it.
//!
//! Beside them, **relay claim → produce ack** (of the record's whole batch) shows how much of part 2 the produce
//! takes. The relays' publisher records parts 1 and the claim time per event id; a layer around each consumer's
//! stack records parts 2 and 3. A record redelivered or read by several services counts once per call. Each part is
//! kept per topic too ([`Hops::by_topic`]): the report names the slowest, where one hop holds a batch's time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_consumer::{BoxService, Layer, Message, Processed, Service};
use hule_contracts::headers::names;
use hule_outbox::model::Claimed;
use uuid::Uuid;

use crate::report::Latency;

/// The hops' samples (milliseconds) and each event's acknowledgement time.
#[derive(Default)]
pub struct Hops {
    inner: Mutex<Samples>,
}

#[derive(Default)]
struct Samples {
    claimed_at: HashMap<Uuid, i64>,
    write_to_claim: Vec<f64>,
    claim_to_call: Vec<f64>,
    claim_to_ack: Vec<f64>,
    call_to_outcome: Vec<f64>,
    /// The same three parts for each topic (of the record relayed or consumed).
    by_topic: BTreeMap<String, [Vec<f64>; 3]>,
}

/// The three parts' names, in order.
const PARTS: [&str; 3] = [
    "outbox write → relay claim",
    "relay claim → consumer call",
    "consumer call → outcome",
];

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn ms(from: i64, to: i64) -> f64 {
    (to - from).max(0) as f64 / 1000.0
}

fn event_id(headers: &hule_contracts::Headers) -> Option<Uuid> {
    headers
        .get(names::EVENT_ID)
        .and_then(|v| Uuid::parse_str(v).ok())
}

impl Hops {
    /// Records that the relay hands `batch` to the producer now; returns the time, for [`Hops::published`].
    pub fn claiming(&self, batch: &[Claimed]) -> i64 {
        let claimed_at = now_micros();
        let mut s = crate::services::lock(&self.inner);
        for row in batch {
            if row.created_at_micros > 0 {
                let waited = ms(row.created_at_micros, claimed_at);
                s.write_to_claim.push(waited);
                s.topic(&row.topic)[0].push(waited);
            }
            if let Some(id) = event_id(&row.headers) {
                s.claimed_at.insert(id, claimed_at);
            }
        }
        claimed_at
    }

    /// Records the broker's acknowledgement of a batch claimed at `claimed_at` (`ok`: each record's).
    pub fn published(&self, claimed_at: i64, ok: impl Iterator<Item = bool>) {
        let acked = ms(claimed_at, now_micros());
        let mut s = crate::services::lock(&self.inner);
        for _ in ok.filter(|ok| *ok) {
            s.claim_to_ack.push(acked);
        }
    }

    /// A layer that times parts 2 and 3 for the stack it wraps.
    pub fn layer(self: &Arc<Self>) -> HopTimer {
        HopTimer(self.clone())
    }

    /// Each topic's three parts with their percentiles (parts without samples left out), slowest median first:
    /// where a batch's time goes when one hop holds most of it (the spellcheck requests, arriving at once, queue
    /// in their partitions).
    pub fn by_topic(&self) -> Vec<TopicHop> {
        let s = crate::services::lock(&self.inner);
        let mut hops: Vec<TopicHop> = s
            .by_topic
            .iter()
            .flat_map(|(topic, parts)| {
                PARTS
                    .iter()
                    .zip(parts)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(part, v)| TopicHop {
                        topic: topic.clone(),
                        part: (*part).to_owned(),
                        latency: Latency::of(v.clone()),
                    })
            })
            .collect();
        hops.sort_by(|a, b| b.latency.p50_ms.total_cmp(&a.latency.p50_ms));
        hops
    }

    /// The three parts, in order, then the produce's share of part 2, with their percentiles.
    pub fn breakdown(&self) -> Vec<(String, Latency)> {
        let s = crate::services::lock(&self.inner);
        [
            (PARTS[0], &s.write_to_claim),
            (PARTS[1], &s.claim_to_call),
            (PARTS[2], &s.call_to_outcome),
            ("(relay claim → produce ack)", &s.claim_to_ack),
        ]
        .into_iter()
        .map(|(name, v)| (name.to_owned(), Latency::of(v.clone())))
        .collect()
    }
}

impl Samples {
    fn topic(&mut self, topic: &str) -> &mut [Vec<f64>; 3] {
        self.by_topic.entry(topic.to_owned()).or_default()
    }
}

/// One part of the trip for the records of one topic.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct TopicHop {
    /// The topic of the record relayed (part 1) or consumed (parts 2 and 3).
    pub topic: String,
    /// The part, as in the breakdown.
    pub part: String,
    /// Its percentiles.
    pub latency: Latency,
}

/// The layer of [`Hops::layer`].
pub struct HopTimer(Arc<Hops>);

impl Layer for HopTimer {
    fn layer(self, inner: BoxService) -> BoxService {
        Arc::new(Timed {
            inner,
            hops: self.0,
        })
    }
}

struct Timed {
    inner: BoxService,
    hops: Arc<Hops>,
}

impl Service for Timed {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            let called = now_micros();
            let id = event_id(&msg.delivery.headers);
            let out = self.inner.call(msg).await;
            let done = now_micros();
            let mut s = crate::services::lock(&self.hops.inner);
            let to_call = id
                .and_then(|id| s.claimed_at.get(&id).copied())
                .map(|claimed| ms(claimed, called));
            let to_outcome = ms(called, done);
            s.claim_to_call.extend(to_call);
            s.call_to_outcome.push(to_outcome);
            let per_topic = s.topic(&msg.delivery.topic);
            per_topic[1].extend(to_call);
            per_topic[2].push(to_outcome);
            out
        }
        .boxed()
    }

    fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        self.inner.prepare(msgs)
    }

    fn abandon<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        self.inner.abandon(msgs)
    }

    fn finish<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, hule_consumer::Finished> {
        self.inner.finish(msgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_come_slowest_median_first_without_empty_parts() {
        let hops = Hops::default();
        {
            let mut s = crate::services::lock(&hops.inner);
            s.topic("a")[0].extend([1.0, 2.0, 3.0]);
            s.topic("b")[1].extend([40.0, 50.0, 60.0]);
            s.topic("b")[2].extend([0.1]);
        }
        let by: Vec<(String, String, f64)> = hops
            .by_topic()
            .into_iter()
            .map(|h| (h.topic, h.part, h.latency.p50_ms))
            .collect();
        assert_eq!(by.len(), 3, "{by:?}");
        assert_eq!((by[0].0.as_str(), by[0].1.as_str()), ("b", PARTS[1]));
        assert_eq!((by[1].0.as_str(), by[1].1.as_str()), ("a", PARTS[0]));
        assert_eq!((by[2].0.as_str(), by[2].1.as_str()), ("b", PARTS[2]));
        assert!(by[0].2 > by[1].2 && by[1].2 > by[2].2, "{by:?}");
    }
}
