//! Partition keys: what each key identifies, the domain contracts of seed 001, and Kafka's murmur2 partitioner.
//!
//! A key is hashed exactly as the Java client's `DefaultPartitioner` and librdkafka's `murmur2_random` do
//! (`toPositive(murmur2(key)) % partitions`), so a Rust and a Python (aiokafka) producer put one key on one partition.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::registry::{Event, Payload, TypedEvent};

/// What a partition key identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyConcept {
    /// A batch (`batch_id`).
    BatchId,
    /// An essay (`essay_id`).
    EssayId,
    /// A class (`class_id`).
    ClassId,
    /// A student (`student_id`).
    StudentId,
    /// A CJ assessment job (`cj_assessment_job_id`).
    CjJobId,
    /// A user (`user_id`).
    UserId,
    /// A teacher (`teacher_id`).
    TeacherId,
    /// An e-mail message (`message_id`).
    MessageId,
    /// An entitlements subject, user or organisation (`subject.id`).
    SubjectId,
    /// An LLM request (`request_id`).
    RequestId,
    /// A request correlation (`correlation_id`).
    CorrelationId,
    /// An access-controlled resource (`resource_id`).
    ResourceId,
    /// An e-mail address (login failures, which have no user).
    Email,
    /// A cost-alert kind.
    AlertType,
    /// An analytics period.
    Period,
}

impl KeyConcept {
    /// The concept's canonical field name.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyConcept::BatchId => "batch_id",
            KeyConcept::EssayId => "essay_id",
            KeyConcept::ClassId => "class_id",
            KeyConcept::StudentId => "student_id",
            KeyConcept::CjJobId => "cj_assessment_job_id",
            KeyConcept::UserId => "user_id",
            KeyConcept::TeacherId => "teacher_id",
            KeyConcept::MessageId => "message_id",
            KeyConcept::SubjectId => "subject_id",
            KeyConcept::RequestId => "request_id",
            KeyConcept::CorrelationId => "correlation_id",
            KeyConcept::ResourceId => "resource_id",
            KeyConcept::Email => "email",
            KeyConcept::AlertType => "alert_type",
            KeyConcept::Period => "period_start",
        }
    }
}

impl fmt::Display for KeyConcept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain's partition contract: the key concept its events use unless an event says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainContract {
    /// The domain: the second segment of a standard topic.
    pub domain: &'static str,
    /// The default key concept.
    pub concept: KeyConcept,
    /// Where the contract comes from and why it differs from seed 001, if it does.
    pub note: &'static str,
}

/// The partition contracts per domain. Seed 001 named batch, essay, class, identity, email, entitlements, llm and
/// commands; the standard topics use more domains, each of which gets a contract here.
pub static DOMAIN_CONTRACTS: &[DomainContract] = &[
    DomainContract { domain: "batch", concept: KeyConcept::BatchId, note: "seed 001" },
    DomainContract { domain: "essay", concept: KeyConcept::EssayId, note: "seed 001" },
    DomainContract { domain: "class", concept: KeyConcept::ClassId, note: "seed 001" },
    DomainContract { domain: "identity", concept: KeyConcept::UserId, note: "seed 001" },
    DomainContract { domain: "email", concept: KeyConcept::MessageId, note: "seed 001" },
    DomainContract {
        domain: "entitlements",
        concept: KeyConcept::SubjectId,
        note: "seed 001 says subscriptionId, but no entitlements payload carries one; the original keys by subject id",
    },
    DomainContract { domain: "llm", concept: KeyConcept::RequestId, note: "seed 001 (llm.provider)" },
    DomainContract { domain: "els", concept: KeyConcept::BatchId, note: "ELS events are batch-level but one" },
    DomainContract { domain: "file", concept: KeyConcept::BatchId, note: "file events belong to a batch" },
    DomainContract { domain: "cj", concept: KeyConcept::CjJobId, note: "seed 002: CJ results by job id" },
    DomainContract { domain: "assessment", concept: KeyConcept::CjJobId, note: "seed 002: CJ results by job id" },
    DomainContract { domain: "ras", concept: KeyConcept::BatchId, note: "result aggregation is per batch" },
    DomainContract { domain: "pipeline", concept: KeyConcept::BatchId, note: "pipeline decisions are per batch" },
    DomainContract { domain: "notification", concept: KeyConcept::TeacherId, note: "one teacher's stream" },
    DomainContract { domain: "resource", concept: KeyConcept::UserId, note: "credit accounting is per user" },
];

/// The contract of a domain, if one is declared.
pub fn domain_contract(domain: &str) -> Option<&'static DomainContract> {
    DOMAIN_CONTRACTS.iter().find(|c| c.domain == domain)
}

/// True when the event's key differs from its domain's default (seed 002's per-event keys).
pub fn is_override(event: Event) -> bool {
    let def = event.def();
    domain_contract(def.domain())
        .map(|c| c.concept != def.key.concept)
        .unwrap_or(true)
}

/// The partition key of a typed payload, or an error naming the event and the missing field.
pub fn partition_key_of<P: Payload>(payload: &P) -> Result<String, KeyError> {
    check_key(P::EVENT, payload.partition_key().map(|k| k.into_owned()))
}

/// The partition key of a decoded event, or an error naming the event and the missing field.
pub fn partition_key_of_typed(event: &TypedEvent) -> Result<String, KeyError> {
    check_key(event.event(), event.partition_key().map(|k| k.into_owned()))
}

fn check_key(event: Event, key: Option<String>) -> Result<String, KeyError> {
    match key {
        Some(k) if !k.is_empty() => Ok(k),
        _ => Err(KeyError::Missing {
            event: event.name(),
            field: event.def().key.field,
        }),
    }
}

/// Kafka's murmur2 hash (the Java client's `Utils.murmur2`), as a signed 32-bit value like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client (and librdkafka's `murmur2_random`) chooses for a key.
///
/// # Panics
/// Never: a partition count of zero yields partition 0.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        assert_eq!(
            partition_for(b"21", 3),
            ((-973_932_308i32 & 0x7fff_ffff) as u32) % 3
        );
        assert_eq!(partition_for(b"x", 0), 0);
    }

    #[test]
    fn every_domain_has_a_contract() {
        for def in crate::registry::EVENTS {
            assert!(
                domain_contract(def.domain()).is_some(),
                "{} has no contract for {}",
                def.name,
                def.domain()
            );
        }
    }
}
