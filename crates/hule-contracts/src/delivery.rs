//! Why a record could not be delivered to the broker, classified so that callers on either side of a trait
//! boundary (the relay's `Publish`, the consumer's `DeadLetterSink`) act on the kind instead of parsing a string:
//! a retriable error is tried again with backoff, a permanent one will fail the same way every time (the record is
//! too large, the topic is not authorized), and a fatal one means the client itself is unusable (fenced, failed
//! authentication) and the process must stop rather than spin. The classes follow librdkafka's own
//! (`rd_kafka_error_is_retriable`, `rd_kafka_error_is_fatal`); `hule-kafka` maps its error codes onto them.

use std::fmt;

/// What retrying can do about a delivery error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A later attempt may succeed (a leader moving, a timeout, a full queue).
    Retriable,
    /// Every attempt of this record will fail the same way (too large, not authorized, invalid topic).
    Permanent,
    /// The client is unusable (fenced producer, failed authentication, a librdkafka fatal error): stop.
    Fatal,
}

impl FailureKind {
    /// The lowercase name used in messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Retriable => "retriable",
            FailureKind::Permanent => "permanent",
            FailureKind::Fatal => "fatal",
        }
    }
}

/// A failed delivery: its kind and what the client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What retrying can do.
    pub kind: FailureKind,
    /// The client's message.
    pub message: String,
}

impl DeliveryError {
    /// A retriable error.
    pub fn retriable(message: impl Into<String>) -> Self {
        DeliveryError {
            kind: FailureKind::Retriable,
            message: message.into(),
        }
    }
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            kind: FailureKind::Permanent,
            message: message.into(),
        }
    }
    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        DeliveryError {
            kind: FailureKind::Fatal,
            message: message.into(),
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

impl std::error::Error for DeliveryError {}
