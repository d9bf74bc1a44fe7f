//! The standard Kafka headers every record carries, and the retry policy they describe.
//!
//! The seeds' idempotency key `topic:partition_key:version` would make two different events of one aggregate
//! collide (both are version 1), so `X-Idempotency-Key` is `topic:partition_key:event_id`.

use std::time::Duration;

use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::time::Timestamp;

/// Header names.
pub mod names {
    /// The event id (also read by the Python idempotency decorator).
    pub const EVENT_ID: &str = "event_id";
    /// The envelope's `event_type`.
    pub const EVENT_TYPE: &str = "event_type";
    /// The correlation id, under the original's name.
    pub const TRACE_ID: &str = "trace_id";
    /// Envelope schema version.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// When the event happened.
    pub const OCCURRED_AT: &str = "occurred_at";
    /// Always `application/json`.
    pub const CONTENT_TYPE: &str = "content_type";
    /// The producing service.
    pub const SOURCE_SERVICE: &str = "source_service";
    /// The correlation id.
    pub const CORRELATION_ID: &str = "X-Correlation-Id";
    /// `topic:partition_key:event_id`.
    pub const IDEMPOTENCY_KEY: &str = "X-Idempotency-Key";
    /// Deliveries so far that failed.
    pub const RETRY_COUNT: &str = "X-Retry-Count";
    /// How many retries a consumer may make.
    pub const MAX_RETRIES: &str = "X-Max-Retries";
    /// Comma-separated retry delays in milliseconds.
    pub const BACKOFF_MS: &str = "X-Backoff-Ms";
    /// When the event was first produced.
    pub const ORIGINAL_TIMESTAMP: &str = "X-Original-Timestamp";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state.
    pub const TRACESTATE: &str = "tracestate";
    /// Set on records republished from a dead-letter topic.
    pub const REPLAYED_FROM: &str = "X-Replayed-From";
    /// How many times this record has been republished from a dead-letter topic (1 on the first replay); a replayed
    /// record that fails again keeps it in its dead letter, so the next replay says so.
    pub const REPLAY_COUNT: &str = "X-Replay-Count";
}

/// Default `X-Max-Retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default `X-Backoff-Ms`.
pub const DEFAULT_BACKOFF_MS: &[u64] = &[1000, 5000, 15000];

/// An ordered list of header names and UTF-8 values (a name may repeat, as Kafka allows).
///
/// Every name and value lives in one string, and the list is shared behind an `Arc`: a record's 13 standard
/// headers are three allocations instead of 26 strings when the consumer copies them out of librdkafka, and the
/// handler's context shares them instead of copying them again
/// (profiled: the owned strings' allocations and first-touch page faults were a tenth of the consumer's samples).
/// A change to a shared list copies it first.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(std::sync::Arc<HeaderList>);

/// The names and values one after another in `text`; `ends[i]` is where header `i`'s name and value end.
#[derive(Clone, Default, PartialEq, Eq)]
struct HeaderList {
    text: String,
    ends: Vec<(usize, usize)>,
}

impl HeaderList {
    /// Where header `i`'s name starts.
    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1].1
        }
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let (name_end, value_end) = self.ends[i];
        (
            &self.text[self.start(i)..name_end],
            &self.text[name_end..value_end],
        )
    }

    /// The first header named `name`. Lengths are compared first and bytes then, without slicing `text` as a
    /// `str` (whose boundary checks, for both halves of every header passed, made this a twentieth of the
    /// consumer's samples: the validate layer looks up every standard header).
    fn position(&self, name: &str) -> Option<usize> {
        let (text, name) = (self.text.as_bytes(), name.as_bytes());
        let mut start = 0;
        for (i, &(name_end, value_end)) in self.ends.iter().enumerate() {
            if name_end - start == name.len() && text.get(start..name_end) == Some(name) {
                return Some(i);
            }
            start = value_end;
        }
        None
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Headers::default();
        h.extend(iter);
        h
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Headers {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.push(k.as_ref(), v);
        }
    }
}

impl From<Vec<(String, String)>> for Headers {
    fn from(pairs: Vec<(String, String)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl Headers {
    /// An empty list with room for `count` headers of `bytes` bytes of names and values in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Headers(std::sync::Arc::new(HeaderList {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }))
    }

    fn list_mut(&mut self) -> &mut HeaderList {
        std::sync::Arc::make_mut(&mut self.0)
    }

    /// Adds or replaces a header (the first of that name).
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        let Some(i) = self.0.position(name) else {
            self.push(name, value);
            return;
        };
        let list = self.list_mut();
        let (name_end, value_end) = list.ends[i];
        list.text.replace_range(name_end..value_end, value);
        let new_end = name_end + value.len();
        list.ends[i].1 = new_end;
        // Every later header moves by the same amount.
        for end in &mut list.ends[i + 1..] {
            end.0 = end.0 + new_end - value_end;
            end.1 = end.1 + new_end - value_end;
        }
    }

    /// Appends a header, keeping any of the same name (Kafka headers may repeat).
    pub fn push(&mut self, name: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        let list = self.list_mut();
        list.text.push_str(name);
        let name_end = list.text.len();
        list.text.push_str(value);
        list.ends.push((name_end, list.text.len()));
    }

    /// Keeps only the headers `keep` says yes to, in order; `keep` is called once for each header, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let kept: Vec<bool> = self.iter().map(|(k, v)| keep(k, v)).collect();
        if kept.iter().all(|&k| k) {
            return;
        }
        *self = self
            .iter()
            .zip(kept)
            .filter_map(|(pair, k)| k.then_some(pair))
            .collect();
    }

    /// Removes every header of this name.
    pub fn remove(&mut self, name: &str) {
        self.retain(|k, _| k != name);
    }

    /// The value of a header (the first of that name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.position(name).map(|i| self.0.pair(i).1)
    }

    /// Whether every one of `names` is present. One pass when the headers carry them in the order given (as
    /// [`standard_headers`] writes [`REQUIRED`]): each name is looked for from where the last was found, wrapping
    /// round, so headers in another order cost at most the lookups one by one.
    pub fn has_all(&self, names: &[&str]) -> bool {
        let list = &*self.0;
        let n = list.ends.len();
        let mut from = 0;
        names.iter().all(|name| {
            let found = (0..n).map(|k| (from + k) % n).find(|&i| {
                let (start, name_end) = (list.start(i), list.ends[i].0);
                name_end - start == name.len()
                    && list.text.as_bytes().get(start..name_end) == Some(name.as_bytes())
            });
            if let Some(i) = found {
                from = i + 1;
            }
            found.is_some()
        })
    }

    /// Iterates over the headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.0.ends.len()).map(|i| self.0.pair(i))
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.0.ends.len()
    }

    /// The bytes of every name and value together (what the headers add to a record's size).
    pub fn byte_len(&self) -> usize {
        self.0.text.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.ends.is_empty()
    }

    /// The headers as owned pairs, in order.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Encodes as a JSON object (for storage in an outbox row). A JSON object has one value per name: of a
    /// repeated name the first value is kept, the one [`Headers::get`] answers.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::with_capacity(self.len());
        for (k, v) in self.iter() {
            map.entry(k)
                .or_insert_with(|| serde_json::Value::String(v.to_owned()));
        }
        serde_json::Value::Object(map).to_string()
    }

    /// Decodes a JSON object of string values; other values are skipped. A name given twice keeps its first place
    /// and its last value (as a JSON map reads it), and is skipped when that value is not a string.
    ///
    /// Read straight into the header list, names and values borrowed from `text` unless escaped: the relay reads
    /// one such object per outbox row, and going through a `serde_json::Map` (a string allocated per name and
    /// value, then copied again into the list) cost about 2.9 µs a row of the 1 KB rows `hule bench` drains.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        use serde::Deserialize as _;
        let mut reader = serde_json::Deserializer::from_str(text);
        let fields = JsonFields::deserialize(&mut reader)?;
        reader.end()?;
        let mut out = Headers::with_capacity(fields.0.len(), text.len());
        for (name, value) in &fields.0 {
            if let Some(value) = value {
                out.push(name, value);
            }
        }
        Ok(out)
    }

    /// Parses raw Kafka headers; a value that is not UTF-8 is an error naming the header.
    pub fn from_raw<'a>(
        raw: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Result<Self, HeaderError> {
        let mut out = Headers::default();
        for (name, value) in raw {
            let value = value.unwrap_or_default();
            let text = std::str::from_utf8(value).map_err(|_| HeaderError::NotUtf8 {
                name: name.to_owned(),
            })?;
            out.push(name, text);
        }
        Ok(out)
    }

    /// The retry policy these headers describe, with the defaults for absent headers.
    pub fn retry_policy(&self) -> Result<RetryPolicy, HeaderError> {
        let max_retries = match self.get(names::MAX_RETRIES) {
            Some(v) => v.trim().parse().map_err(|_| HeaderError::Invalid {
                name: names::MAX_RETRIES.to_owned(),
                value: v.to_owned(),
                expected: "a non-negative integer",
            })?,
            None => DEFAULT_MAX_RETRIES,
        };
        let backoff_ms = match self.get(names::BACKOFF_MS) {
            Some(v) => parse_backoff(v).ok_or_else(|| HeaderError::Invalid {
                name: names::BACKOFF_MS.to_owned(),
                value: v.to_owned(),
                expected: "comma-separated milliseconds such as 1000,5000,15000",
            })?,
            None => DEFAULT_BACKOFF_MS.to_vec(),
        };
        Ok(RetryPolicy {
            max_retries,
            backoff_ms,
        })
    }

    /// `X-Retry-Count`, 0 when absent or unreadable.
    pub fn retry_count(&self) -> u32 {
        self.get(names::RETRY_COUNT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn parse_backoff(v: &str) -> Option<Vec<u64>> {
    let list: Option<Vec<u64>> = v.split(',').map(|p| p.trim().parse().ok()).collect();
    list.filter(|l| !l.is_empty())
}

/// A header that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value is not UTF-8.
    #[error("header `{name}` is not UTF-8")]
    NotUtf8 {
        /// The header's name.
        name: String,
    },
    /// The value does not parse.
    #[error("header `{name}` has value `{value}`; expected {expected}")]
    Invalid {
        /// The header's name.
        name: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// How often and how long a consumer retries a failing delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before retry n (1-based) is `backoff_ms[min(n, len) - 1]`.
    pub backoff_ms: Vec<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_ms: DEFAULT_BACKOFF_MS.to_vec(),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `n` (1-based); the last delay repeats.
    pub fn delay_before_retry(&self, n: u32) -> Duration {
        let idx = (n.max(1) as usize - 1).min(self.backoff_ms.len().saturating_sub(1));
        Duration::from_millis(self.backoff_ms.get(idx).copied().unwrap_or(0))
    }
}

/// Builds the standard headers of an event about to be published.
pub fn standard_headers<T>(
    envelope: &EventEnvelope<T>,
    topic: &str,
    partition_key: &str,
) -> Headers {
    let occurred = envelope.event_timestamp.to_string();
    let correlation = envelope.correlation_id.to_string();
    let event_id = envelope.event_id.to_string();
    let mut h = Headers::with_capacity(15, 512);
    h.set(names::EVENT_ID, &event_id);
    h.set(names::EVENT_TYPE, &envelope.event_type);
    h.set(names::TRACE_ID, &correlation);
    h.set(names::SCHEMA_VERSION, envelope.schema_version.to_string());
    h.set(names::OCCURRED_AT, &occurred);
    h.set(names::CONTENT_TYPE, "application/json");
    h.set(names::SOURCE_SERVICE, &envelope.source_service);
    h.set(names::CORRELATION_ID, correlation);
    h.set(
        names::IDEMPOTENCY_KEY,
        idempotency_key(topic, partition_key, envelope.event_id),
    );
    h.set(names::RETRY_COUNT, "0");
    h.set(names::MAX_RETRIES, DEFAULT_MAX_RETRIES.to_string());
    h.set(names::BACKOFF_MS, "1000,5000,15000");
    h.set(names::ORIGINAL_TIMESTAMP, occurred);
    if let Some(meta) = &envelope.metadata {
        if let Some(tp) = &meta.traceparent {
            h.set(names::TRACEPARENT, tp);
        }
        if let Some(ts) = &meta.tracestate {
            h.set(names::TRACESTATE, ts);
        }
    }
    h
}

/// `topic:partition_key:event_id`.
pub fn idempotency_key(topic: &str, partition_key: &str, event_id: Uuid) -> String {
    format!("{topic}:{partition_key}:{event_id}")
}

/// The standard header names every record must carry (trace context only when known).
pub const REQUIRED: &[&str] = &[
    names::EVENT_ID,
    names::EVENT_TYPE,
    names::TRACE_ID,
    names::SCHEMA_VERSION,
    names::OCCURRED_AT,
    names::CONTENT_TYPE,
    names::SOURCE_SERVICE,
    names::CORRELATION_ID,
    names::IDEMPOTENCY_KEY,
    names::RETRY_COUNT,
    names::MAX_RETRIES,
    names::BACKOFF_MS,
    names::ORIGINAL_TIMESTAMP,
];

/// The `occurred_at` header as a timestamp, if present and valid.
pub fn occurred_at(h: &Headers) -> Option<Timestamp> {
    h.get(names::OCCURRED_AT)
        .and_then(|v| Timestamp::parse(v).ok())
}

/// A JSON object's fields in first-seen order, string values borrowed where unescaped and `None` for any other
/// value (what [`Headers::from_json`] reads).
struct JsonFields<'a>(Vec<(std::borrow::Cow<'a, str>, Option<std::borrow::Cow<'a, str>>)>);

/// A JSON value that is kept when it is a string and skipped otherwise.
struct MaybeText<'a>(Option<std::borrow::Cow<'a, str>>);

impl<'de> serde::Deserialize<'de> for MaybeText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = MaybeText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(std::borrow::Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(std::borrow::Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(std::borrow::Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(MaybeText(None))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl<'de> serde::Deserialize<'de> for JsonFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields: Vec<(
                    std::borrow::Cow<'de, str>,
                    Option<std::borrow::Cow<'de, str>>,
                )> = Vec::with_capacity(a.size_hint().unwrap_or(8));
                // A JSON object's names are strings: `MaybeText` borrows them as it does string values.
                while let Some(MaybeText(name)) = a.next_key()? {
                    let name = name.unwrap_or_default();
                    let MaybeText(value) = a.next_value()?;
                    // A handful of headers: a linear search is cheaper than any map.
                    match fields.iter_mut().find(|(n, _)| *n == name) {
                        Some(field) => field.1 = value,
                        None => fields.push((name, value)),
                    }
                }
                Ok(JsonFields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_all_finds_names_in_any_order_and_misses_an_absent_one() {
        let h: Headers = [("a", "1"), ("bb", "2"), ("c", "3"), ("bb", "4")]
            .into_iter()
            .collect();
        assert!(h.has_all(&["a", "bb", "c"]));
        assert!(h.has_all(&["c", "a", "bb", "bb"]));
        assert!(h.has_all(&[]));
        assert!(
            !h.has_all(&["a", "b"]),
            "a prefix of a name is not the name"
        );
        assert!(!h.has_all(&["c", "d", "a"]));
        assert!(!Headers::default().has_all(&["a"]));
        // All the required names, in the order the standard headers write them and reversed; then each taken out.
        let env = crate::EventEnvelope::new(
            uuid::Uuid::nil(),
            "t",
            crate::Timestamp::from_datetime(chrono::Utc::now()),
            "s",
            uuid::Uuid::nil(),
            serde_json::json!({}),
        );
        let standard = standard_headers(&env, "topic", "key");
        assert!(standard.has_all(REQUIRED));
        let reversed: Vec<&str> = REQUIRED.iter().rev().copied().collect();
        assert!(standard.has_all(&reversed));
        for missing in REQUIRED {
            let mut h = standard.clone();
            h.remove(missing);
            assert!(!h.has_all(REQUIRED), "{missing} removed");
        }
    }

    #[test]
    fn retry_policy_from_headers() {
        let mut h = Headers::default();
        assert_eq!(h.retry_policy().expect("defaults"), RetryPolicy::default());
        h.set(names::BACKOFF_MS, "10, 20");
        h.set(names::MAX_RETRIES, "5");
        let p = h.retry_policy().expect("valid");
        assert_eq!(p.max_retries, 5);
        assert_eq!(p.delay_before_retry(1), Duration::from_millis(10));
        assert_eq!(p.delay_before_retry(4), Duration::from_millis(20));
        h.set(names::BACKOFF_MS, "soon");
        let err = h.retry_policy().expect_err("invalid");
        assert!(err.to_string().contains("X-Backoff-Ms"));
    }

    #[test]
    fn set_replaces_the_first_of_a_name_and_moves_the_rest() {
        let mut h: Headers = [("a", "1"), ("b", "22"), ("a", "333"), ("c", "")]
            .into_iter()
            .collect();
        let shared = h.clone();
        h.set("b", "a longer value");
        h.set("a", "");
        h.set("d", "new");
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(
            pairs,
            [
                ("a", ""),
                ("b", "a longer value"),
                ("a", "333"),
                ("c", ""),
                ("d", "new")
            ]
        );
        assert_eq!(
            (h.get("a"), h.get("c"), h.get("x")),
            (Some(""), Some(""), None)
        );
        assert_eq!((h.len(), h.byte_len()), (5, 1 + 15 + 4 + 1 + 4));
        // A clone made before is not changed by the writes after it.
        assert_eq!(
            shared.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "22"), ("a", "333"), ("c", "")]
        );
        h.remove("a");
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("b", "a longer value"), ("c", ""), ("d", "new")]
        );
        // Built in another order of calls, the same list is equal; the same bytes split otherwise are not.
        let same: Headers = [("b", "a longer value"), ("c", ""), ("d", "new")]
            .into_iter()
            .collect();
        assert_eq!(h, same);
        assert_ne!(h, shared);
        let mut changed = same.clone();
        changed.set("b", "short");
        let mut want = Headers::default();
        want.extend([("b", "short"), ("c", ""), ("d", "new")]);
        assert_eq!(changed, want);
        assert_ne!(
            [("ab", "")].into_iter().collect::<Headers>(),
            [("a", "b")].into_iter().collect::<Headers>()
        );
        assert!(Headers::default().is_empty() && !same.is_empty());
        assert_eq!(
            format!("{same:?}"),
            r#"[("b", "a longer value"), ("c", ""), ("d", "new")]"#
        );
    }

    #[test]
    fn retain_asks_once_per_header_in_order() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        let mut seen = Vec::new();
        h.retain(|k, v| {
            let first = !seen.iter().any(|(s, _): &(String, String)| s == k);
            seen.push((k.to_owned(), v.to_owned()));
            first
        });
        assert_eq!(
            h.to_vec(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(seen.len(), 3);
    }

    /// `from_json` reads what a `serde_json::Map` of the same text holds, its string values in its order.
    #[test]
    fn from_json_reads_what_a_json_map_reads() {
        let by_map = |text: &str| -> Option<Vec<(String, String)>> {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).ok()?;
            Some(
                map.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect(),
            )
        };
        for text in [
            r#"{}"#,
            r#"{"event_id": "e-1", "X-Retry-Count": "2"}"#,
            r#"{"a": "1", "b": 2, "c": null, "d": [1, {"x": "y"}], "e": {"f": "g"}, "h": true, "i": -1.5e3}"#,
            r#"{"a": "1", "b": "2", "a": "3"}"#,
            r#"{"a": "1", "b": "2", "a": 3}"#,
            r#"{"a": 1, "b": "2", "a": "3"}"#,
            r#"{"a": "1", "a": 2, "a": "4"}"#,
            r#"{"esc\"aped": "ü\"\\\n\u00e9", "\u0041": "\ud83d\ude00"}"#,
            r#"  {"a" : "1"}  "#,
            r#"[]"#,
            r#""text""#,
            r#"{"a": "1""#,
            r#"{"a": "1"} trailing"#,
            r#"{"a": "\ud800"}"#,
            "",
        ] {
            let ours = Headers::from_json(text).ok().map(|h| h.to_vec());
            assert_eq!(ours, by_map(text), "{text}");
        }
    }

    #[test]
    fn json_round_trip_keeps_names_values_and_order() {
        let h: Headers = [("event_id", "e-1"), ("X-Retry-Count", "2"), ("é", "ü\"\\")]
            .into_iter()
            .collect();
        let back = Headers::from_json(&h.to_json()).expect("json");
        assert_eq!(back, h);
        // A repeated name keeps its first value, the one `get` answers.
        let repeated: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        let back = Headers::from_json(&repeated.to_json()).expect("json");
        assert_eq!(
            back.to_vec(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(Headers::from_json("[]").is_err());
        assert!(Headers::from_json(r#"{"n": 1, "s": "x"}"#)
            .expect("object")
            .iter()
            .eq([("s", "x")]));
    }

    #[test]
    fn non_utf8_header_is_named() {
        let bad: &[u8] = &[0xff, 0xfe];
        let err = Headers::from_raw([("event_id", Some(bad))]).expect_err("not utf8");
        assert_eq!(err.to_string(), "header `event_id` is not UTF-8");
        let h = Headers::from_raw([("x", Some(&b"1"[..])), ("x", None), ("y", Some(b"2"))])
            .expect("utf8");
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("x", "1"), ("x", ""), ("y", "2")]
        );
    }
}
