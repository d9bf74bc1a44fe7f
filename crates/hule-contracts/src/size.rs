//! Size limits of an event record, and `ArtifactRef` for data moved out of events (seed 002).

use serde::{Deserialize, Serialize};

use crate::error::SizeError;

/// Hard cap: a record over 1 MiB is refused before anything is written.
pub const MAX_EVENT_BYTES: usize = 1_048_576;
/// Over 100 KB a record is accepted with a warning.
pub const WARN_EVENT_BYTES: usize = 100_000;

/// The verdict of a size check that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeVerdict {
    /// Within the target.
    Ok,
    /// Over the 100 KB target: move bulk data to storage.
    Warn,
}

/// Checks a record's size against the limits.
pub fn check_size(bytes: usize) -> Result<SizeVerdict, SizeError> {
    if bytes > MAX_EVENT_BYTES {
        Err(SizeError {
            size: bytes,
            limit: MAX_EVENT_BYTES,
        })
    } else if bytes > WARN_EVENT_BYTES {
        Ok(SizeVerdict::Warn)
    } else {
        Ok(SizeVerdict::Ok)
    }
}

/// Kinds of artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    /// Markdown feedback.
    FeedbackMd,
    /// Annotated HTML.
    AnnotatedHtml,
    /// Metrics as JSON.
    MetricsJson,
}

/// A reference to data stored outside the event (S3 or HTTPS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: ArtifactType,
    /// Where it is.
    pub uri: String,
    /// Its size.
    pub bytes: u64,
    /// Its MIME type.
    pub content_type: String,
    /// Hex SHA-256 of its content.
    pub sha256: String,
    /// How long it is kept, in seconds.
    #[serde(default)]
    pub ttl_sec: Option<u64>,
    /// How it is encrypted.
    #[serde(default)]
    pub encryption: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(check_size(100), Ok(SizeVerdict::Ok));
        assert_eq!(check_size(WARN_EVENT_BYTES + 1), Ok(SizeVerdict::Warn));
        assert_eq!(check_size(MAX_EVENT_BYTES), Ok(SizeVerdict::Warn));
        assert!(check_size(MAX_EVENT_BYTES + 1).is_err());
    }
}
