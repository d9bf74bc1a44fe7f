//! What the relay reads from the store and what it reports back.

use hule_contracts::headers::Headers;

/// A claimed row, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The ordering sequence.
    pub seq: i64,
    /// The target topic.
    pub topic: String,
    /// The partition key.
    pub key: Option<String>,
    /// The record value.
    pub value: Vec<u8>,
    /// The record headers.
    pub headers: Headers,
    /// Attempts made before this one.
    pub attempts: i32,
    /// Commit time in microseconds since the epoch (for commit-to-publish latency).
    pub created_at_micros: i64,
}

/// Turns a stored row into what is published. Rows written by the Python `OutboxManager` (no `headers` column
/// value) keep the envelope in `event_data` with extra `topic` and optional `headers` keys: those are removed,
/// the caller's headers kept, and the standard headers added (see [`crate::legacy`]). A `headers` value that is not a JSON object of
/// strings is treated the same way (logged), never published as no headers.
pub fn from_row(
    seq: i64,
    topic: String,
    key: Option<String>,
    event_data: String,
    headers: Option<String>,
    attempts: i32,
    created_at_micros: i64,
) -> Claimed {
    if let Some(h) = headers {
        match Headers::from_json(&h) {
            Ok(headers) => {
                return Claimed {
                    seq,
                    topic,
                    key,
                    value: event_data.into_bytes(),
                    headers,
                    attempts,
                    created_at_micros,
                }
            }
            // Not silently headerless: the standard headers are rebuilt from the envelope, as for legacy rows.
            Err(e) => tracing::warn!(
                seq,
                error = %e,
                "corrupt headers column; rebuilding the standard headers from the envelope"
            ),
        }
    }
    let (value, headers) =
        match crate::legacy::translate(&event_data, &topic, key.as_deref().unwrap_or("")) {
            Some(translated) => translated,
            None => (event_data.into_bytes(), Headers::default()),
        };
    Claimed {
        seq,
        topic,
        key,
        value,
        headers,
        attempts,
        created_at_micros,
    }
}

/// What the relay's gauges show: one pass over the unpublished rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Gauges {
    /// Rows waiting to be published (not parked).
    pub pending: i64,
    /// Parked rows.
    pub parked: i64,
    /// Age of the oldest pending row, seconds.
    pub oldest_pending_age_seconds: Option<f64>,
}

/// A row `discard` removed, as it was (kept in `hule_outbox_discarded` with the reason and time).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Discarded {
    /// Its sequence number.
    pub seq: i64,
    /// Its event id, when the row has one.
    pub event_id: Option<String>,
    /// Its topic.
    pub topic: String,
    /// Its partition key.
    pub key: Option<String>,
    /// Failed attempts.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
}

/// An unpublished row as the console lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listed {
    /// Its sequence number.
    pub seq: i64,
    /// Its event id.
    pub event_id: Option<String>,
    /// Its event type.
    pub event_type: String,
    /// Its topic.
    pub topic: String,
    /// Its partition key.
    pub key: Option<String>,
    /// Failed attempts.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was committed, milliseconds since the epoch.
    pub created_ms: i64,
    /// Parked (waits for an operator)?
    pub parked: bool,
    /// The envelope's correlation id.
    pub correlation_id: Option<String>,
}

/// Counts for `hule outbox status`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Status {
    /// Pending rows per topic.
    pub pending: Vec<(String, i64)>,
    /// Parked rows per topic.
    pub parked: Vec<(String, i64)>,
    /// Age of the oldest pending row, seconds.
    pub oldest_pending_age_seconds: Option<f64>,
    /// The last errors: (event row seq, topic, attempts, error).
    pub last_errors: Vec<(i64, String, i32, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row the original wrote (no headers column; `topic` and maybe `headers` inside `event_data`, in Python's
    /// spaced JSON) goes out as the compact envelope without those keys, with the given headers and the standard
    /// ones made from the envelope; a JSON object that is no envelope (here without `data`) gets no standard headers.
    #[test]
    fn a_legacy_row_is_published_as_its_envelope_with_the_standard_headers() {
        let row = &crate::testkit::numbered_rows(3..4, 1).expect("rows")[0];
        let envelope: serde_json::Value = serde_json::from_str(&row.event_data).expect("json");
        let mut legacy = envelope.as_object().expect("object").clone();
        legacy.insert("topic".into(), row.topic.clone().into());
        legacy.insert(
            "headers".into(),
            serde_json::json!({"x-given": "yes", "n": 1}),
        );
        // Python's `json.dumps` separators.
        let spaced = serde_json::to_string(&legacy)
            .expect("json")
            .replace("\",\"", "\", \"")
            .replace("\":", "\": ");
        let claimed = from_row(
            1,
            row.topic.clone(),
            Some(row.event_key.clone()),
            spaced,
            None,
            0,
            0,
        );
        assert_eq!(claimed.value, envelope.to_string().into_bytes());
        assert_eq!(claimed.headers.get("x-given"), Some("yes"));
        assert_eq!(claimed.headers.get("n"), None);
        let id = envelope["event_id"].as_str().expect("id");
        assert_eq!(claimed.headers.get("event_id"), Some(id));

        let mut no_data = legacy.clone();
        no_data.remove("data");
        let text = serde_json::Value::Object(no_data).to_string();
        let claimed = from_row(1, row.topic.clone(), None, text, None, 0, 0);
        assert_eq!(
            claimed.headers.get("event_id"),
            None,
            "{:?}",
            claimed.headers
        );
        assert_eq!(claimed.headers.get("x-given"), Some("yes"));
        let text = "[1, 2]".to_owned();
        let claimed = from_row(1, row.topic.clone(), None, text.clone(), None, 0, 0);
        assert_eq!(claimed.value, text.into_bytes());
        assert!(claimed.headers.is_empty());
    }

    #[test]
    fn a_corrupt_headers_column_is_rebuilt_from_the_envelope_not_dropped() {
        let row = &crate::testkit::numbered_rows(7..8, 1).expect("rows")[0];
        let good = from_row(
            1,
            row.topic.clone(),
            Some(row.event_key.clone()),
            row.event_data.clone(),
            Some(row.headers.clone()),
            0,
            0,
        );
        assert!(good.headers.get("event_id").is_some(), "{:?}", good.headers);
        for corrupt in ["{not json", "[1,2]", "\"text\""] {
            let claimed = from_row(
                1,
                row.topic.clone(),
                Some(row.event_key.clone()),
                row.event_data.clone(),
                Some(corrupt.into()),
                0,
                0,
            );
            assert_eq!(claimed.headers, good.headers, "{corrupt}");
            assert_eq!(claimed.value, row.event_data.as_bytes());
        }
    }
}
