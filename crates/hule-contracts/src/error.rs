//! Errors of the contracts crate: lookups, decoding, keys and sizes.

use std::fmt;

use crate::registry::EVENTS;

/// An event name, value or topic that the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event {kind} `{given}`; known events:\n{known}")]
#[non_exhaustive]
pub struct LookupError {
    /// What was looked up (`name`, `value`, `topic`).
    pub kind: &'static str,
    /// The text given.
    pub given: String,
    /// One line per known event: `- NAME (value) ➜ 'topic' (legacy 'topic')`.
    pub known: String,
}

impl LookupError {
    pub(crate) fn unknown(kind: &'static str, given: &str) -> Self {
        let mut known = String::new();
        for d in EVENTS {
            known.push_str(&format!("- {} ({}) ➜ '{}'", d.name, d.value, d.topic));
            if d.legacy_topic != d.topic {
                known.push_str(&format!(" (legacy '{}')", d.legacy_topic));
            }
            known.push('\n');
        }
        LookupError {
            kind,
            given: given.to_owned(),
            known,
        }
    }
}

/// Which phase of the two-phase decode failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodePhase {
    /// The bytes are not a JSON envelope (not UTF-8, not JSON, missing or invalid envelope fields).
    Envelope,
    /// The topic or `event_type` names no registered event.
    Routing,
    /// The envelope's `data` does not match the payload the topic implies.
    Payload,
}

impl fmt::Display for DecodePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodePhase::Envelope => "envelope",
            DecodePhase::Routing => "routing",
            DecodePhase::Payload => "payload",
        })
    }
}

/// A record that could not be decoded: the phase, the field path (`data.essay_results[0].normalized_score`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{phase} decode failed at `{path}`: {reason}")]
#[non_exhaustive]
pub struct DecodeError {
    /// The phase that failed.
    pub phase: DecodePhase,
    /// The path of the failing field; `.` for the document itself.
    pub path: String,
    /// Why it failed.
    pub reason: String,
}

impl DecodeError {
    /// An error of `phase` at `path`.
    pub fn new(phase: DecodePhase, path: impl Into<String>, reason: impl Into<String>) -> Self {
        DecodeError {
            phase,
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// A partition key that the event's contract requires but the payload lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key field is absent or empty.
    #[error("event {event} has no partition key: field `{field}` is missing or empty")]
    Missing {
        /// The event name.
        event: &'static str,
        /// The key field path.
        field: &'static str,
    },
}

/// A record over the hard size limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event of {size} bytes exceeds the hard limit of {limit} bytes; move the data to storage and send an ArtifactRef")]
#[non_exhaustive]
pub struct SizeError {
    /// The record's size.
    pub size: usize,
    /// The limit.
    pub limit: usize,
}
