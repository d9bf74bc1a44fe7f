//! Rows the Python original's `OutboxManager` wrote: the envelope in `event_data` as Python's `json.dumps` spaced
//! it, with the row's `topic` and optional caller `headers` as two extra top-level keys. Published as the compact
//! envelope without those two keys, with the given headers (string values) and the standard headers made from the
//! envelope. Pure; no I/O.
//!
//! The fast path never builds a JSON tree: one validating pass of serde_json splits the top-level object into its
//! members (each value a borrowed slice of the row), the kept members are copied out with the insignificant
//! whitespace removed, and the envelope's own fields are read from that copy with its payload skipped. The tree
//! path (a `serde_json::Value`, re-serialised) cost about a quarter of the relay's CPU on such rows; it remains for
//! a row whose top-level keys repeat, where the last value must win, as in pydantic.
//!
//! Values are copied as written: a number keeps its digits (Python's integers beyond 64 bits included, which a tree
//! of `f64` would round) and a string keeps its escapes (`json.dumps` writes non-ASCII text as `\u00e9`; the
//! record carries the same characters either way).

use std::borrow::Cow;

use hule_contracts::headers::{standard_headers, Headers};
use hule_contracts::EventEnvelope;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The keys the original adds beside the envelope's own.
const TOPIC: &str = "topic";
const GIVEN_HEADERS: &str = "headers";

/// The record value and headers of a row the original wrote; `None` when `event_data` is not a JSON object (it is
/// then published as it is, without headers).
pub(crate) fn translate(event_data: &str, topic: &str, key: &str) -> Option<(Vec<u8>, Headers)> {
    match serde_json::from_str::<Members<'_>>(event_data) {
        Ok(members) if !members.repeats_a_key() => {
            Some(
                from_members(&members, topic, key).unwrap_or_else(|(value, given)| {
                    // A field of the envelope's own repeated inside it (`metadata`'s, say) fails the headers' read
                    // here; the tree path keeps its last value, as pydantic does, so the row keeps its headers. Where
                    // the tree path fails too (a number out of range, deep nesting), the given headers stay.
                    let headers = translate_tree(event_data, topic, key)
                        .map(|(_, headers)| headers)
                        .unwrap_or(given);
                    (value, headers)
                }),
            )
        }
        Ok(_) => translate_tree(event_data, topic, key),
        Err(_) => None,
    }
}

/// The value and headers; the value and the given headers alone when the members hold an envelope (a `data` key)
/// whose fields do not read as one.
fn from_members(
    members: &Members<'_>,
    topic: &str,
    key: &str,
) -> Result<(Vec<u8>, Headers), (Vec<u8>, Headers)> {
    let mut headers = Headers::default();
    let mut value = String::with_capacity(members.len + 2);
    // The envelope without its payload, to read the standard headers' fields from (not the whole value a second
    // time).
    let mut head = String::from("{");
    let mut has_data = false;
    value.push('{');
    for (name, raw) in &members.list {
        match name.as_ref() {
            TOPIC => {}
            GIVEN_HEADERS => given_headers(raw.get(), &mut headers),
            name => {
                if value.len() > 1 {
                    value.push(',');
                }
                let start = value.len();
                push_key(name, &mut value);
                value.push(':');
                minify_into(raw.get(), &mut value);
                if name == "data" {
                    has_data = true;
                } else {
                    if head.len() > 1 {
                        head.push(',');
                    }
                    head.push_str(&value[start..]);
                }
            }
        }
    }
    value.push('}');
    if has_data {
        head.push_str(if head.len() > 1 {
            ",\"data\":0}"
        } else {
            "\"data\":0}"
        });
        match serde_json::from_str::<EventEnvelope<IgnoredAny>>(&head) {
            Ok(envelope) => add_standard(&mut headers, &envelope, topic, key),
            Err(_) => return Err((value.into_bytes(), headers)),
        }
    }
    Ok((value.into_bytes(), headers))
}

/// Appends `name` as a JSON string, escaped as serde_json escapes it (the original's keys are plain identifiers,
/// copied as they are).
fn push_key(name: &str, out: &mut String) {
    if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(name);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(name).to_string());
    }
}

/// The caller's headers: the string values of a JSON object, anything else ignored.
fn given_headers(raw: &str, headers: &mut Headers) {
    if let Ok(given) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw) {
        add_given(given, headers);
    }
}

fn add_given(given: serde_json::Map<String, serde_json::Value>, headers: &mut Headers) {
    for (k, v) in given {
        if let Some(s) = v.as_str() {
            headers.set(&k, s);
        }
    }
}

/// The standard headers the caller did not give.
fn add_standard<P>(headers: &mut Headers, envelope: &EventEnvelope<P>, topic: &str, key: &str) {
    for (k, v) in standard_headers(envelope, topic, key).iter() {
        if headers.get(k).is_none() {
            headers.push(k, v);
        }
    }
}

/// The tree path: the whole row as a `serde_json::Value` (its last value of a repeated key winning), re-serialised.
/// Read without `serde_json::Value`'s raw-value case, which would rewrite an object keyed by its private token.
fn translate_tree(event_data: &str, topic: &str, key: &str) -> Option<(Vec<u8>, Headers)> {
    let Ok(serde_json::Value::Object(mut map)) =
        hule_contracts::payloads::plain_value_from_str(event_data)
    else {
        return None;
    };
    let mut headers = Headers::default();
    // `shift_remove`: the keys keep their order (`remove` moves the last key into the removed one's place).
    map.shift_remove(TOPIC);
    if let Some(serde_json::Value::Object(given)) = map.shift_remove(GIVEN_HEADERS) {
        add_given(given, &mut headers);
    }
    let stripped = serde_json::Value::Object(map);
    if let Ok(envelope) = EventEnvelope::<IgnoredAny>::deserialize(&stripped) {
        add_standard(&mut headers, &envelope, topic, key);
    }
    Some((stripped.to_string().into_bytes(), headers))
}

/// Appends `json` (valid JSON, as serde_json has checked it) without the whitespace between its tokens; the
/// bytes of strings are copied unchanged.
fn minify_into(json: &str, out: &mut String) {
    let bytes = json.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip to the closing quote: a backslash always escapes the next byte. memchr, because most of a
                // row's bytes are inside strings (the byte loop was a fifth of the translation's time).
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at + 1;
                            break;
                        }
                        None => {
                            i = bytes.len();
                            break;
                        }
                    }
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push_str(&json[run_start..i]);
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\n' | b'\r' | b'\t') {
                    i += 1;
                }
                run_start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&json[run_start..]);
}

/// A JSON object's members in order, each value a borrowed slice of the input.
struct Members<'a> {
    list: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The values' total length (a capacity for the copy).
    len: usize,
}

impl Members<'_> {
    /// Whether a key comes twice: compared pairwise for an envelope's dozen keys, through a set for a row of many.
    fn repeats_a_key(&self) -> bool {
        if self.list.len() <= 16 {
            return self
                .list
                .iter()
                .enumerate()
                .any(|(i, (a, _))| self.list[..i].iter().any(|(b, _)| a == b));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.list.len());
        !self.list.iter().all(|(name, _)| seen.insert(name.as_ref()))
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Members {
                    list: Vec::with_capacity(12),
                    len: 0,
                };
                while let Some(Key(name)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.len += name.len() + value.get().len() + 4;
                    members.list.push((name, value));
                }
                Ok(members)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A key borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `json.dumps` separators on a compact text (its strings are left alone).
    fn spaced(compact: &str) -> String {
        let mut out = String::new();
        let mut in_string = false;
        let mut escaped = false;
        for c in compact.chars() {
            out.push(c);
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
            } else if c == '"' {
                in_string = true;
            } else if c == ',' || c == ':' {
                out.push(' ');
            }
        }
        out
    }

    fn legacy_of(row: &crate::prepare::NewRow, extra: serde_json::Value) -> String {
        let envelope: serde_json::Value = serde_json::from_str(&row.event_data).expect("json");
        let mut legacy = envelope.as_object().expect("object").clone();
        legacy.insert("topic".into(), row.topic.clone().into());
        if !extra.is_null() {
            legacy.insert("headers".into(), extra);
        }
        spaced(&serde_json::Value::Object(legacy).to_string())
    }

    /// The fast path and the tree path agree, byte for byte, on every kind of row the testkit makes (spaced as
    /// Python spaces them, with and without given headers, whitespace inside strings kept).
    #[test]
    fn the_fast_path_publishes_what_the_tree_path_did() {
        let rows = crate::testkit::numbered_rows(0..64, 8).expect("rows");
        let givens = [
            serde_json::Value::Null,
            serde_json::json!({"x-given": "yes", "n": 1, "event_id": "given-wins"}),
            serde_json::json!(["not", "an object"]),
        ];
        let mut compared = 0;
        for row in &rows {
            for given in &givens {
                let text = legacy_of(row, given.clone());
                let fast = translate(&text, &row.topic, &row.event_key).expect("fast");
                let tree = translate_tree(&text, &row.topic, &row.event_key).expect("tree");
                assert_eq!(
                    String::from_utf8_lossy(&fast.0),
                    String::from_utf8_lossy(&tree.0)
                );
                assert_eq!(fast.1, tree.1, "{text}");
                assert!(fast.1.get("event_id").is_some());
                compared += 1;
            }
        }
        assert_eq!(compared, 64 * 3);
        let with_space_in_strings =
            r#"{"topic": "t", "event_id": "a b", "data": {"text": "one ,  two :\t\"three\" \\"}}"#;
        let (value, _) = translate(with_space_in_strings, "t", "k").expect("object");
        assert_eq!(
            String::from_utf8(value).expect("utf-8"),
            r#"{"event_id":"a b","data":{"text":"one ,  two :\t\"three\" \\"}}"#
        );
    }

    /// A row on the tree path (a repeated top-level key) keeps an object keyed by serde_json's private raw-value
    /// token as written, with its standard headers (`serde_json::Value` read its string as JSON: `[1]` published
    /// for it, or, text that is not JSON, the row published without headers).
    #[test]
    fn the_tree_path_keeps_an_object_keyed_by_the_raw_value_token() {
        let row = &crate::testkit::numbered_rows(7..8, 1).expect("rows")[0];
        for inner in ["[1]", "not json"] {
            let kept = format!(r#"{{"$serde_json::private::RawValue":"{inner}"}}"#);
            let text = legacy_of(row, serde_json::Value::Null).replacen(
                '{',
                &format!(r#"{{"k": {kept}, "twice": 1, "twice": 2, "#),
                1,
            );
            let (value, headers) =
                translate(&text, &row.topic, &row.event_key).expect("translated");
            let value = String::from_utf8(value).expect("utf-8");
            assert!(
                value.contains(&format!(r#""k":{kept}"#)),
                "{inner}: {value}"
            );
            assert!(value.contains(r#""twice":2"#), "the tree path: {value}");
            assert!(headers.get("event_id").is_some(), "{inner}: headers");
        }
    }

    /// A field repeated inside the envelope (not at its top) fails the headers' read on the fast path: the row
    /// keeps its value as written and takes its standard headers from the tree path.
    #[test]
    fn a_field_repeated_inside_the_envelope_keeps_the_headers() {
        let row = &crate::testkit::numbered_rows(5..6, 1).expect("rows")[0];
        let text = legacy_of(row, serde_json::Value::Null);
        let repeated = text.replacen(
            "\"metadata\": null",
            "\"metadata\": {\"baggage\": \"a\", \"baggage\": \"b\"}",
            1,
        );
        assert_ne!(repeated, text);
        let (value, headers) = translate(&repeated, &row.topic, &row.event_key).expect("object");
        assert!(headers.get("event_id").is_some(), "{headers:?}");
        let value = String::from_utf8(value).expect("utf-8");
        assert!(
            value.contains("\"baggage\":\"a\",\"baggage\":\"b\""),
            "the value as written: {value}"
        );
    }

    /// When neither path reads the envelope's fields (a number beyond f64 inside it, which only the full parse
    /// checks), the caller's headers are still published.
    #[test]
    fn the_given_headers_stay_when_no_path_reads_the_envelope() {
        let text = r#"{"event_id": "e", "data": {}, "metadata": {"n": 1e400}, "topic": "t", "headers": {"x-given": "yes"}}"#;
        let (value, headers) = translate(text, "t", "k").expect("object");
        assert_eq!(headers.get("x-given"), Some("yes"), "{headers:?}");
        assert_eq!(
            value,
            br#"{"event_id":"e","data":{},"metadata":{"n":1e400}}"#
        );
    }

    /// What only the fast path keeps: a number's digits and a string's escapes, as written.
    #[test]
    fn values_are_copied_as_written() {
        let text = "{\"topic\": \"t\", \"big\": 123456789012345678901234567890, \"f\": 1e+16, \"s\": \"caf\\u00e9\"}";
        let (value, headers) = translate(text, "t", "k").expect("object");
        assert_eq!(
            String::from_utf8(value).expect("utf-8"),
            "{\"big\":123456789012345678901234567890,\"f\":1e+16,\"s\":\"caf\\u00e9\"}"
        );
        assert!(headers.is_empty(), "no envelope, no standard headers");
    }

    /// A repeated key takes the tree path, where the last value wins (as in pydantic); what is no JSON object is
    /// left to the caller.
    #[test]
    fn repeated_keys_and_other_json() {
        let (value, _) = translate(r#"{"a": 1, "topic": "x", "a": 2}"#, "t", "k").expect("object");
        assert_eq!(value, br#"{"a":2}"#);
        assert_eq!(
            translate(r#"{"topic": "x", "topic": "y"}"#, "t", "k").map(|v| v.0),
            Some(b"{}".to_vec())
        );
        for other in [
            "[1, 2]",
            "\"text\"",
            "{not json",
            "NaN",
            "{\"a\": 1} trailing",
        ] {
            assert!(translate(other, "t", "k").is_none(), "{other}");
        }
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let repeated = format!("{{{}, \"k3\": \"last\"}}", many.join(", "));
        let (value, _) = translate(&repeated, "t", "k").expect("object");
        let value = String::from_utf8(value).expect("utf-8");
        assert!(
            value.contains("\"k3\":\"last\"") && !value.contains("\"k3\":3"),
            "a set finds the repeat: {value}"
        );
        let (value, _) =
            translate(r#"{"topic": "x", "a": 1, "b": 2, "a": 3}"#, "t", "k").expect("object");
        assert_eq!(
            value, br#"{"a":3,"b":2}"#,
            "the tree path keeps the keys' order"
        );
        let (value, _) = translate("{\"k\\u0065y\": 1, \"topic\": 2}", "t", "k").expect("object");
        assert_eq!(value, br#"{"key":1}"#, "an escaped key is written plain");
        let (value, _) = translate(r#"{"a\"b\u0001": 1}"#, "t", "k").expect("object");
        assert_eq!(value, br#"{"a\"b\u0001":1}"#, "as serde_json escapes it");
    }

    #[test]
    fn minify_removes_only_whitespace_between_tokens() {
        let mut out = String::new();
        minify_into(
            " { \"a b\" :\n[ 1 ,\t2 ] , \"c\\\"\" : \" x \" } ",
            &mut out,
        );
        assert_eq!(out, "{\"a b\":[1,2],\"c\\\"\":\" x \"}");
    }
}
