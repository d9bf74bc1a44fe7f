//! `hule check`'s contract rules, as pure logic: every standard topic obeys the naming rules and is unique; every
//! event names a topic, a payload type, a key field and a class; every domain has a partition contract; every
//! event's example payload decodes and yields a non-empty key. The schema-evolution gate against a committed
//! baseline is [`crate::evolution`].

use std::fmt;

use hule_contracts::examples::example_payload;
use hule_contracts::keys::{domain_contract, partition_key_of_typed};
use hule_contracts::naming::check_registry;
use hule_contracts::registry::EVENTS;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The event (or topic) concerned.
    pub subject: String,
    /// The rule and what breaks it.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// Runs every rule; returns the number of checks made and the findings.
pub fn check_contracts() -> (usize, Vec<Finding>) {
    let mut checks = 0;
    let mut out = Vec::new();
    for v in check_registry() {
        out.push(Finding {
            subject: v.topic.clone(),
            message: format!("naming: {}", v.rule),
        });
    }
    checks += EVENTS.len() * 7;
    for def in EVENTS {
        checks += 5;
        let mut missing = |what: &str, empty: bool| {
            if empty {
                out.push(Finding {
                    subject: def.name.to_owned(),
                    message: format!("has no {what}"),
                });
            }
        };
        missing("topic", def.topic.is_empty());
        missing("legacy topic", def.legacy_topic.is_empty());
        missing("payload type", def.payload_type.is_empty());
        missing("partition key field", def.key.field.is_empty());
        if domain_contract(def.domain()).is_none() {
            out.push(Finding {
                subject: def.name.to_owned(),
                message: format!(
                    "domain `{}` has no partition contract (keys::DOMAIN_CONTRACTS)",
                    def.domain()
                ),
            });
        }
        checks += 1;
        match example_payload(def.event) {
            Ok(p) => {
                if let Err(e) = partition_key_of_typed(&p) {
                    out.push(Finding {
                        subject: def.name.to_owned(),
                        message: format!("example has no key: {e}"),
                    });
                }
            }
            Err(e) => out.push(Finding {
                subject: def.name.to_owned(),
                message: format!("example does not decode: {e}"),
            }),
        }
    }
    (checks, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_passes_every_rule() {
        let (checks, findings) = check_contracts();
        assert!(checks > EVENTS.len() * 10);
        assert!(findings.is_empty(), "{findings:?}");
    }
}
