//! The decoder's first path: sonic-rs (a SIMD JSON parser) deserializing a record straight into its typed payload,
//! strictly — no lax coercion — behind a guard that refuses what sonic-rs and serde would accept but pydantic would
//! not, or would read differently.
//!
//! Like [`crate::fast`], it may only say yes: whatever it refuses goes on to the streaming path and then the tree
//! path, whose verdict and error message are the record's. A record it accepts is one the tree path accepts with
//! the same value, because:
//!
//! - every byte is still parsed and checked (sonic-rs validates the values no field reads, refuses control
//!   characters in strings, `NaN`, trailing bytes; UTF-8 and depth are checked before any parser runs);
//! - a record with a `\uD…` escape anywhere (a surrogate), or a run of 300 digits, is refused: lone surrogates are where JSON parsers disagree, and the other
//!   escapes (`\n`, `\"`, `\\`, …) have one meaning; pydantic refuses an integer of over 4,300 digits even where
//!   no field reads it, and sonic-rs skips it; sonic-rs caps an exponent at 1,000, which only a long mantissa can
//!   make matter (see [`LONG_DIGIT_RUN`]);
//! - no coercion happens: a field gets only the JSON type its Rust type asks for (a `"5"` for an integer, `1.0` for
//!   an integer, `"true"` for a bool are refused here and coerced on the lax paths), and the types' own rules
//!   (timestamps, bounds, enums' values) are the same code on every path;
//! - what serde accepts beyond pydantic is refused by the guard: a struct written as a JSON array (serde reads
//!   its fields by position), an enum written as an object (`{"PENDING": null}`), a number serde's visitors
//!   receive as a float that is an integer of 2^53 or more (a big integer literal, where the tree path keeps the
//!   integer) or zero (sonic-rs reads `-0.0` as `0.0`; pydantic keeps the sign);
//! - an object with a repeated key is refused (pydantic keeps the last value; the tree path implements that), and so
//!   is one with a key written with an escape or with more than 32 keys (the keys are compared as they come);
//!   floats are correctly rounded by both parsers (two million random literals compared, bit for bit).
//!
//! Measured on the 9 KB envelope of 30 essay results (`hule bench --only envelope`): see BENCHMARKS.md.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

/// Decodes `text` as a `T` on the strict path; `None` when the path refuses it (the caller goes on to the next).
pub(crate) fn value<T: de::DeserializeOwned>(text: &str) -> Option<T> {
    if has_surrogate_escape(text.as_bytes()) || has_long_digit_run(text.as_bytes()) {
        return None;
    }
    let mut de = sonic_rs::Deserializer::from_str(text);
    let v = T::deserialize(Strict(&mut de)).ok()?;
    de.end().ok()?;
    Some(v)
}

/// Whether `bytes` has a `\uD…` escape: the surrogates (`\uD800`–`\uDFFF`), alone or in pairs, are where JSON
/// parsers disagree; the other escapes, `\u00e5` as Python's `json.dumps` writes `å` among them, have one meaning.
/// (A `\\` followed by `ud` is refused too, needlessly but safely.)
fn has_surrogate_escape(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\\u")
        .any(|at| matches!(bytes.get(at + 2), Some(b'd' | b'D')))
}

/// The shortest run of digits the strict path leaves to the other paths. pydantic's parser refuses an integer of
/// more than 4,300 digits (Python's own limit) even in a field nobody reads, where sonic-rs skips it. And sonic-rs
/// stops reading an exponent once it reaches 1,000 (`1e10000` is read as `1e1000`), which a long mantissa can bring
/// back into range (`0.000…0001e10000`, 997 zeros, read as 10.0 where pydantic reads infinity): with every run of
/// digits shorter than 300, a mantissa of two runs moves an exponent of 1,000 or more by under 600 orders, and the
/// value stays infinite (or zero, which the guard refuses) as pydantic reads it.
const LONG_DIGIT_RUN: usize = 300;

/// Whether `bytes` has a run of at least [`LONG_DIGIT_RUN`] ASCII digits. Such a run covers a multiple of half that
/// length, so only those positions are looked at (62 of them in a 9 KB record), and the run measured around a
/// digit found there.
fn has_long_digit_run(bytes: &[u8]) -> bool {
    const STRIDE: usize = LONG_DIGIT_RUN / 2;
    (STRIDE..bytes.len()).step_by(STRIDE).any(|at| {
        bytes[at].is_ascii_digit() && {
            let before = bytes[..at]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let after = bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            before + after >= LONG_DIGIT_RUN
        }
    })
}

/// A deserializer that passes every request on to `D`, guarding what it hands to the visitors.
struct Strict<D>(D);

/// A visitor that passes every value on to `V`, refusing what pydantic would not read as `V` reads it.
struct Guard<V> {
    inner: V,
    /// A struct is being read: only a JSON object will do.
    object_only: bool,
}

fn guard<V>(inner: V) -> Guard<V> {
    Guard {
        inner,
        object_only: false,
    }
}

/// Calls `$forward` with the `Deserializer` methods that take only a visitor.
macro_rules! with_plain_methods {
    ($forward:ident) => {
        $forward!(
            deserialize_any,
            deserialize_bool,
            deserialize_i8,
            deserialize_i16,
            deserialize_i32,
            deserialize_i64,
            deserialize_u8,
            deserialize_u16,
            deserialize_u32,
            deserialize_u64,
            deserialize_f32,
            deserialize_f64,
            deserialize_char,
            deserialize_str,
            deserialize_string,
            deserialize_bytes,
            deserialize_byte_buf,
            deserialize_option,
            deserialize_unit,
            deserialize_seq,
            deserialize_map,
            deserialize_identifier,
            deserialize_ignored_any
        );
    };
}

macro_rules! forward_deserialize {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(guard(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    with_plain_methods!(forward_deserialize);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, guard(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, guard(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, guard(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, guard(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Guard {
            inner: visitor,
            object_only: true,
        };
        self.0.deserialize_struct(name, fields, visitor)
    }

    /// An enum only from a string (pydantic's enums are values; serde would also take `{"VARIANT": …}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_str(EnumFromStr(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The smallest integral float a big integer literal can become (2^53): beyond it the tree path's integer and a
/// float may differ.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

macro_rules! forward_visit {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Guard<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool: bool,
        visit_i8: i8,
        visit_i16: i16,
        visit_i32: i32,
        visit_i64: i64,
        visit_u8: u8,
        visit_u16: u16,
        visit_u32: u32,
        visit_u64: u64,
        visit_f32: f32,
        visit_char: char,
        visit_str: &str,
        visit_borrowed_str: &'de str,
        visit_string: String,
        visit_bytes: &[u8],
        visit_borrowed_bytes: &'de [u8],
        visit_byte_buf: Vec<u8>
    );

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // A zero's sign: sonic-rs reads `-0.0` as 0.0, where pydantic keeps the sign.
        if (v.fract() == 0.0 && v.abs() >= EXACT_INTEGERS) || v == 0.0 {
            return Err(E::custom(
                "left to the lax path: a float pydantic may read as an integer",
            ));
        }
        self.inner.visit_f64(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.object_only {
            return Err(de::Error::custom(
                "left to the lax path: a struct written as an array",
            ));
        }
        self.inner.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(StrictMap {
            inner: map,
            keys: [""; MAX_KEYS],
            len: 0,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(
            "left to the lax path: an enum written as an object",
        ))
    }
}

/// Reads a unit variant from a string.
struct EnumFromStr<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for EnumFromStr<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.0.visit_enum(v.into_deserializer())
    }
}

struct StrictSeq<A>(A);

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// The most keys of one object the strict path reads (each compared with those before it).
const MAX_KEYS: usize = 32;

/// An object's entries, its keys checked for repeats: the tree path keeps a repeated key's last value at a place
/// of its own, so an object with one is left to it.
struct StrictMap<'de, A> {
    inner: A,
    keys: [&'de str; MAX_KEYS],
    len: usize,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for StrictMap<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.inner.next_key_seed(KeySeed {
            seed,
            map: KeyList {
                keys: &mut self.keys,
                len: &mut self.len,
            },
        })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// The keys an object has had so far.
struct KeyList<'a, 'de> {
    keys: &'a mut [&'de str; MAX_KEYS],
    len: &'a mut usize,
}

impl<'de> KeyList<'_, 'de> {
    /// Records `key`; an error when it repeats one, or when the object has too many to compare.
    fn add<E: de::Error>(&mut self, key: &'de str) -> Result<(), E> {
        let seen = &self.keys[..*self.len];
        if seen.contains(&key) {
            return Err(E::custom("left to the lax path: a repeated key"));
        }
        if *self.len == MAX_KEYS {
            return Err(E::custom("left to the lax path: an object of many keys"));
        }
        self.keys[*self.len] = key;
        *self.len += 1;
        Ok(())
    }
}

/// A key's seed: the key is read by `seed` and recorded.
struct KeySeed<'a, 'de, S> {
    seed: S,
    map: KeyList<'a, 'de>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.seed.deserialize(KeyDeserializer {
            inner: d,
            map: self.map,
        })
    }
}

/// Reads a key as its seed asks, recording it.
struct KeyDeserializer<'a, 'de, D> {
    inner: D,
    map: KeyList<'a, 'de>,
}

macro_rules! forward_key {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.inner.$method(KeyVisitor { inner: visitor, map: self.map })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyDeserializer<'_, 'de, D> {
    type Error = D::Error;

    with_plain_methods!(forward_key);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_str(KeyVisitor {
            inner: EnumFromStr(visitor),
            map: self.map,
        })
    }
}

/// Passes a key on to `inner` once recorded: only a key borrowed from the record (one without escapes) is read.
struct KeyVisitor<'a, 'de, V> {
    inner: V,
    map: KeyList<'a, 'de>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<Self::Value, E> {
        self.map.add(v)?;
        self.inner.visit_borrowed_str(v)
    }
}

struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{decode_envelope_strict, Event};
    use crate::{EventEnvelope, Timestamp};

    fn example(event: Event) -> String {
        let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").expect("time");
        let env =
            crate::examples::example_envelope(event, uuid::Uuid::nil(), uuid::Uuid::nil(), at)
                .expect("example");
        String::from_utf8(env.to_json().expect("json")).expect("utf-8")
    }

    /// The path is used: it takes the registry's examples (those without a zero float or a `\u` escape) and reads
    /// them as the tree path does.
    #[test]
    fn the_examples_decode_as_on_the_tree_path() {
        let mut taken = 0;
        for event in Event::ALL.iter().copied() {
            let text = example(event);
            let tree = crate::decode::decode_tree(Some(event.topic()), text.as_bytes())
                .expect("the tree path takes the example");
            if let Some(strict) = decode_envelope_strict(event, &text) {
                assert_eq!(
                    format!("{strict:?}"),
                    format!("{tree:?}"),
                    "{}",
                    event.name()
                );
                taken += 1;
            } else {
                assert!(
                    has_zero_float(&text) || has_surrogate_escape(text.as_bytes()),
                    "{} refused without a reason the path names: {text}",
                    event.name()
                );
            }
        }
        assert!(
            taken >= 60,
            "only {taken} of {} examples taken",
            Event::ALL.len()
        );
    }

    /// What serde would accept and pydantic reads otherwise is left to the other paths.
    #[test]
    fn the_guard_refuses_what_pydantic_reads_otherwise() {
        type Env = EventEnvelope<crate::payloads::SpellcheckPhaseCompletedV1>;
        let text = example(Event::SpellcheckPhaseCompleted);
        assert!(value::<Env>(&text).is_some(), "the example itself: {text}");
        let status = text.find("\"status\":\"").expect("status");
        let value_end = text[status + 10..].find('"').expect("end") + status + 10;
        let enum_object = format!(
            "{}{{{}: null}}{}",
            &text[..status + 9],
            &text[status + 9..=value_end],
            &text[value_end + 1..]
        );
        let cases = [
            ("an enum as an object", enum_object),
            (
                "a surrogate escape",
                text.replacen("\"essay-", "\"\\ud83d\\ude00ssay-", 1),
            ),
            (
                "a repeated key",
                text.replacen("\"metadata\":{", "\"metadata\":{\"a\":1,\"a\":2,", 1),
            ),
            (
                "an escaped key",
                text.replacen("\"metadata\":{", "\"metadata\":{\"a\\n\":1,", 1),
            ),
            (
                "a long digit run",
                text.replacen(
                    "\"metadata\":{",
                    &format!("\"metadata\":{{\"n\":{},", "7".repeat(1200)),
                    1,
                ),
            ),
            (
                "a big integral float",
                text.replacen("\"metadata\":{", "\"metadata\":{\"n\":1e300,", 1),
            ),
            (
                "a zero float",
                text.replacen("\"metadata\":{", "\"metadata\":{\"n\":-0.0,", 1),
            ),
            ("a struct as an array", data_as_array(&text)),
        ];
        for (what, case) in &cases {
            assert_ne!(case, &text, "{what}: the case was not made");
            assert!(value::<Env>(case).is_none(), "{what} taken: {case}");
        }
        // And pydantic refuses an enum written as an object: so does every path.
        let topic = Event::SpellcheckPhaseCompleted.topic();
        let refused = crate::decode::decode(Some(topic), cases[0].1.as_bytes());
        assert!(refused.is_err(), "{:?}", refused.map(|e| e.data));
        let mut many = String::from("\"metadata\":{");
        for i in 0..MAX_KEYS {
            many.push_str(&format!("\"k{i}\":{i},"));
        }
        assert!(
            value::<Env>(&text.replacen("\"metadata\":{", &many, 1)).is_none(),
            "33 keys"
        );
    }

    /// The record with its payload written as the array of its fields' values, in order (serde's derive reads a
    /// struct so; pydantic refuses it).
    fn data_as_array(text: &str) -> String {
        let mut env: serde_json::Value = serde_json::from_str(text).expect("json");
        let fields: Vec<serde_json::Value> = env["data"]
            .as_object()
            .expect("object")
            .values()
            .cloned()
            .collect();
        env["data"] = serde_json::Value::Array(fields);
        env.to_string()
    }

    /// Whether `text` has a float literal that is zero (`0.0`, `-0.0`, `0.00`), the kind the guard refuses.
    fn has_zero_float(text: &str) -> bool {
        let b = text.as_bytes();
        (0..b.len()).any(|i| {
            matches!(b[i], b':' | b',' | b'[') && {
                let mut j = i + 1;
                j += usize::from(b.get(j) == Some(&b'-'));
                let start = j;
                while b.get(j).is_some_and(|c| *c == b'0' || *c == b'.') {
                    j += 1;
                }
                j > start + 2
                    && b[start..j].contains(&b'.')
                    && !b.get(j).is_some_and(|c| c.is_ascii_digit())
            }
        })
    }

    /// An escape that is no surrogate reads as on the tree path (as `json.dumps` writes Swedish text).
    #[test]
    fn other_unicode_escapes_are_read_as_on_the_tree_path() {
        type Env = EventEnvelope<crate::payloads::SpellcheckPhaseCompletedV1>;
        let text = example(Event::SpellcheckPhaseCompleted);
        let case = text.replacen("\"essay-", "\"\\u00c5sa \\u0000\\u00e5\\u20ac essay-", 1);
        assert_ne!(case, text);
        assert!(value::<Env>(&case).is_some(), "taken");
        let strict = decode_envelope_strict(Event::SpellcheckPhaseCompleted, &case).expect("taken");
        let topic = Event::SpellcheckPhaseCompleted.topic();
        let tree = crate::decode::decode_tree(Some(topic), case.as_bytes()).expect("decodes");
        assert_eq!(format!("{strict:?}"), format!("{tree:?}"));
        assert!(
            format!("{strict:?}").contains("Åsa \\0å€ essay-"),
            "{strict:?}"
        );
    }

    #[test]
    fn zero_floats_are_told_from_small_ones() {
        assert!(has_zero_float(r#"{"a":0.0}"#));
        assert!(has_zero_float(r#"{"a":[1,-0.00]}"#));
        assert!(!has_zero_float(r#"{"a":0.017,"b":0.0071}"#));
        assert!(!has_zero_float(r#"{"a":"x;0.0"}"#));
    }

    /// sonic-rs caps an exponent at 1,000; a mantissa long enough to make that matter is refused, and with one just
    /// short of it the record decodes as on the tree path (sonic-rs refusing the infinity, or the guard the zero).
    #[test]
    fn an_exponent_sonic_rs_caps_is_read_as_pydantic_reads_it() {
        type Env = EventEnvelope<crate::payloads::SpellcheckPhaseCompletedV1>;
        let text = example(Event::SpellcheckPhaseCompleted);
        let topic = Event::SpellcheckPhaseCompleted.topic();
        for (zeros, exponent) in [
            (997, "e10000"),
            (400, "e10000"),
            (298, "e10000"),
            (298, "e1000"),
        ] {
            let number = format!("0.{}1{exponent}", "0".repeat(zeros));
            let case = text.replacen(
                "\"metadata\":{",
                &format!("\"metadata\":{{\"n\":{number},"),
                1,
            );
            if zeros >= LONG_DIGIT_RUN {
                assert!(value::<Env>(&case).is_none(), "{zeros} zeros");
            }
            let ours = crate::decode::decode(Some(topic), case.as_bytes()).expect("decodes");
            let tree = crate::decode::decode_tree(Some(topic), case.as_bytes()).expect("decodes");
            assert_eq!(
                format!("{ours:?}"),
                format!("{tree:?}"),
                "{zeros} zeros, {exponent}"
            );
        }
        let big = format!("1{}e-10000", "0".repeat(998));
        let case = text.replacen("\"metadata\":{", &format!("\"metadata\":{{\"n\":{big},"), 1);
        assert!(value::<Env>(&case).is_none());
    }

    #[test]
    fn a_long_digit_run_is_found_wherever_it_lies() {
        for len in [299, 300, 301, 1000, 2500] {
            for start in [0, 1, 149, 150, 151, 3000] {
                let mut bytes = vec![b'"'; 6000];
                bytes[start..start + len].fill(b'7');
                assert_eq!(
                    has_long_digit_run(&bytes),
                    len >= LONG_DIGIT_RUN,
                    "{len} at {start}"
                );
            }
        }
    }
}
