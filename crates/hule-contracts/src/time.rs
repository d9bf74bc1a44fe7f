//! `Timestamp`: a UTC instant that reads every form the Python services write and writes pydantic's form.
//!
//! pydantic's `model_dump_json()` writes `2025-11-21T18:04:12.345678Z`: UTC as `Z`, and the fraction only when the
//! microseconds are non-zero. Python services also emit `+00:00` offsets (`isoformat()`), other offsets, and naive
//! times (`datetime.utcnow()`); all are accepted, naive ones are read as UTC, and every one is normalised to UTC.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Timelike, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with microsecond precision, serialised like pydantic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The Unix epoch; used as the value of a defaulted timestamp that was absent on the wire, since this crate
    /// has no clock of its own. Producers always write the field.
    pub const EPOCH: Timestamp = Timestamp(DateTime::<Utc>::UNIX_EPOCH);

    /// Wraps a chrono instant, truncating it to microseconds (Python's precision).
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        let micros = at.nanosecond() / 1_000 * 1_000;
        Timestamp(at.with_nanosecond(micros).unwrap_or(at))
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_micros(micros).map(Timestamp)
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// The underlying chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Parses what pydantic accepts for a `datetime` from JSON: the ISO-8601 forms Python emits, and a Unix time
    /// as a number or numeric string (seconds, or milliseconds when its magnitude exceeds 2·10¹⁰, as pydantic
    /// decides). A leap second (`:60`) is refused, as pydantic refuses it. The error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(dt) = parse_iso(t) {
            if dt.nanosecond() >= 1_000_000_000 {
                return Err(format!(
                    "invalid datetime `{text}`: second 60 (a leap second) is not a valid time"
                ));
            }
            return Ok(Self::from_datetime(dt));
        }
        if !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        {
            if let Ok(v) = t.parse::<f64>() {
                return Self::from_unix_number(v);
            }
        }
        Err(format!(
            "invalid datetime `{text}`: expected ISO 8601 such as 2025-11-21T18:04:12.345678Z"
        ))
    }

    /// A Unix time as pydantic reads a number: seconds, or milliseconds when `|v| > 2·10¹⁰`.
    pub fn from_unix_number(v: f64) -> Result<Self, String> {
        let seconds = if v.abs() > 2e10 { v / 1000.0 } else { v };
        let micros = (seconds * 1e6).round();
        if !micros.is_finite() || micros.abs() > 9.0e18 {
            return Err(format!("invalid datetime: {v} is out of range"));
        }
        Self::from_unix_micros(micros as i64)
            .ok_or_else(|| format!("invalid datetime: {v} is out of range"))
    }
}

/// The ISO-8601 forms Python emits, naive ones read as UTC.
fn parse_iso(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    // `2025-01-01T12:00:00+00:00` without seconds fraction is RFC 3339 too; what remains is naive or date-only.
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(dt.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
    Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?))
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = if self.0.nanosecond() == 0 {
            SecondsFormat::Secs
        } else {
            SecondsFormat::Micros
        };
        f.write_str(&self.0.to_rfc3339_opts(form, true))
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::EPOCH
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Timestamp::from_datetime(at)
    }
}

/// An ISO-8601 date-time string; naive times are read as UTC (see the module documentation).
impl schemars::JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Not `format: date-time`: Python services also write naive times (`datetime.utcnow()`), which RFC 3339
        // refuses and this decoder reads as UTC.
        schemars::json_schema!({
            "type": "string",
            "description": "ISO-8601 date-time; a naive time is read as UTC.",
            "pattern": r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?\s*$",
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 8601 datetime string or a Unix time")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Timestamp::from_unix_number(v as f64).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Timestamp::from_unix_number(v as f64).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::from_unix_number(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pydantic_form() {
        let t = Timestamp::parse("2025-11-21T18:04:12.345678Z").expect("parse");
        assert_eq!(t.to_string(), "2025-11-21T18:04:12.345678Z");
        let t = Timestamp::parse("2025-11-21T18:04:12+00:00").expect("parse");
        assert_eq!(t.to_string(), "2025-11-21T18:04:12Z");
        let t = Timestamp::parse("2025-11-21T18:04:12.5").expect("naive");
        assert_eq!(t.to_string(), "2025-11-21T18:04:12.500000Z");
        let t = Timestamp::parse("2025-11-21T20:04:12+02:00").expect("offset");
        assert_eq!(t.to_string(), "2025-11-21T18:04:12Z");
    }

    #[test]
    fn rejects_garbage_with_reason() {
        let err = Timestamp::parse("yesterday").expect_err("garbage");
        assert!(err.contains("yesterday"), "{err}");
    }
}
