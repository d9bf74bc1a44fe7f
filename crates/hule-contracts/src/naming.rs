//! Topic naming rules as code, checked over every standard topic. Legacy topics break them and exist only for the
//! transition.

use std::fmt;

use crate::registry::EVENTS;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingViolation {
    /// The topic.
    pub topic: String,
    /// The rule it breaks.
    pub rule: NamingRule,
}

/// The naming rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamingRule {
    /// The first segment is `huleedu`.
    Prefix,
    /// No segment contains an underscore.
    NoUnderscore,
    /// The last segment is `v<N>`.
    VersionSuffix,
    /// At least four segments.
    MinSegments,
    /// A topic containing `command` has `command` as its second-last segment.
    CommandPosition,
    /// No segment is empty and all are lowercase ASCII letters or digits.
    Charset,
    /// No two events share a topic.
    Unique,
}

impl fmt::Display for NamingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamingRule::Prefix => "must start with `huleedu.`",
            NamingRule::NoUnderscore => "no segment may contain `_`",
            NamingRule::VersionSuffix => "last segment must be `v<N>`",
            NamingRule::MinSegments => "must have at least 4 segments",
            NamingRule::CommandPosition => "`command` must be the second-last segment",
            NamingRule::Charset => "segments must be non-empty lowercase letters and digits",
            NamingRule::Unique => "no two events may share a topic",
        })
    }
}

impl fmt::Display for NamingViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.topic, self.rule)
    }
}

/// The rules one topic breaks.
pub fn check_topic(topic: &str) -> Vec<NamingRule> {
    let segs: Vec<&str> = topic.split('.').collect();
    let mut broken = Vec::new();
    if segs.first() != Some(&"huleedu") {
        broken.push(NamingRule::Prefix);
    }
    if segs.iter().any(|s| s.contains('_')) {
        broken.push(NamingRule::NoUnderscore);
    }
    let last = segs.last().copied().unwrap_or("");
    let version_ok = last.len() > 1
        && last.starts_with('v')
        && last[1..].bytes().all(|b| b.is_ascii_digit())
        && !last[1..].starts_with('0');
    if !version_ok {
        broken.push(NamingRule::VersionSuffix);
    }
    if segs.len() < 4 {
        broken.push(NamingRule::MinSegments);
    }
    if topic.contains("command") && (segs.len() < 2 || segs[segs.len() - 2] != "command") {
        broken.push(NamingRule::CommandPosition);
    }
    if segs.iter().any(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }) {
        broken.push(NamingRule::Charset);
    }
    broken
}

/// Every violation in the registry's standard topics, including shared topics.
pub fn check_registry() -> Vec<NamingViolation> {
    let mut out = Vec::new();
    for (i, def) in EVENTS.iter().enumerate() {
        for rule in check_topic(def.topic) {
            out.push(NamingViolation {
                topic: def.topic.to_owned(),
                rule,
            });
        }
        if EVENTS[..i].iter().any(|d| d.topic == def.topic) {
            out.push(NamingViolation {
                topic: def.topic.to_owned(),
                rule: NamingRule::Unique,
            });
        }
    }
    out
}

/// The dead-letter topic of a source topic: `<topic>.dlq.v1`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq.v1")
}

/// The name Kafka compares topics by for collisions: `.` replaced by `_` (Kafka's `Topic.unifyCollisionChars`). A
/// broker refuses to create a topic whose collision name equals an existing topic's.
pub fn kafka_collision_name(topic: &str) -> String {
    topic.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_topic_follows_the_rules() {
        let violations = check_registry();
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn each_rule_catches_its_case() {
        assert_eq!(check_topic("kafka.batch.x.v1"), vec![NamingRule::Prefix]);
        assert_eq!(
            check_topic("huleedu.llm_provider.x.v1"),
            vec![NamingRule::NoUnderscore]
        );
        assert_eq!(
            check_topic("huleedu.batch.x.y"),
            vec![NamingRule::VersionSuffix]
        );
        assert_eq!(
            check_topic("huleedu.batch.v1"),
            vec![NamingRule::MinSegments]
        );
        assert_eq!(
            check_topic("huleedu.commands.batch.pipeline.v1"),
            vec![NamingRule::CommandPosition]
        );
        assert_eq!(check_topic("huleedu.Batch.x.v1"), vec![NamingRule::Charset]);
    }

    #[test]
    fn legacy_topics_break_them() {
        let broken = EVENTS
            .iter()
            .filter(|d| !check_topic(d.legacy_topic).is_empty())
            .count();
        assert!(
            broken >= 14,
            "expected the 14 underscore topics and the prefix-form command to break rules"
        );
    }
}
