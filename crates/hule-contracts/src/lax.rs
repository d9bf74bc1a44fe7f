//! JSON judged as pydantic v2's `model_validate_json` judges it: parsed by `jiter` (the parser pydantic-core itself
//! uses, with the same options: `NaN`/`Infinity` allowed, 200 levels of nesting, no number longer than 4,300
//! digits, no bytes after the document, every escape checked, even in fields nobody reads), then deserialized into
//! the typed payloads by [`LaxDeserializer`], a serde `Deserializer` over the parsed tree that applies pydantic's
//! lax-mode coercions:
//!
//! | target | accepted besides its own JSON type |
//! |---|---|
//! | integers | a float with no fractional part (`2.0`), a string holding an integer (`"3"`), `true`/`false` |
//! | floats | an integer, a string holding a number (`"1.5"`, `"nan"`, `"inf"`), `true`/`false` |
//! | booleans | `0`/`1`, and the strings `true/false/yes/no/on/off/t/f/y/n/1/0` in any case |
//!
//! and, in objects, **the last of duplicate keys wins**. Strings are never coerced from numbers (pydantic v2 does
//! not either). What still differs from pydantic is listed in `docs/pydantic-parity.md` and checked by
//! `crates/hule-contracts/tests/pydantic_parity.rs`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use jiter::{JsonValue, PartialMode};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

/// Parses `bytes` exactly as pydantic's JSON parser does.
pub fn parse(bytes: &[u8]) -> Result<JsonValue<'_>, String> {
    JsonValue::parse_with_config(bytes, true, PartialMode::Off)
        .map_err(|e| format!("invalid JSON: {}", e.description(bytes)))
}

/// The value of the last `key` entry of an object (pydantic keeps the last of duplicate keys).
pub fn last_entry<'a, 'j>(value: &'a JsonValue<'j>, key: &str) -> Option<&'a JsonValue<'j>> {
    match value {
        JsonValue::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

/// A deserialization error (message only; the path is added by `serde_path_to_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaxError(pub String);

impl fmt::Display for LaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LaxError {}

impl de::Error for LaxError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        LaxError(msg.to_string())
    }
}

/// A serde `Deserializer` over a parsed value with pydantic's lax coercions.
#[derive(Clone, Copy)]
pub struct LaxDeserializer<'a, 'j>(pub &'a JsonValue<'j>);

fn unexpected<'a>(v: &'a JsonValue<'_>) -> Unexpected<'a> {
    match v {
        JsonValue::Null => Unexpected::Unit,
        JsonValue::Bool(b) => Unexpected::Bool(*b),
        JsonValue::Int(i) => Unexpected::Signed(*i),
        JsonValue::BigInt(_) => Unexpected::Other("integer"),
        JsonValue::Float(f) => Unexpected::Float(*f),
        JsonValue::Str(s) => Unexpected::Str(s),
        JsonValue::Array(_) => Unexpected::Seq,
        JsonValue::Object(_) => Unexpected::Map,
    }
}

/// An integer as pydantic's lax mode reads one.
pub(crate) enum LaxInt {
    Signed(i64),
    Unsigned(u64),
}

/// An integer written as a string, as pydantic reads one: surrounding whitespace, a sign, digits, and optionally a
/// fraction of zeros (`" 842 "`, `"842.0"`).
fn int_of_str(s: &str) -> Option<LaxInt> {
    let t = s.trim();
    let t = match t.split_once('.') {
        Some((whole, zeros)) if zeros.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => t,
    };
    t.parse::<i64>()
        .map(LaxInt::Signed)
        .or_else(|_| t.parse::<u64>().map(LaxInt::Unsigned))
        .ok()
}

/// [`int_of_str`] for callers outside this module (the envelope's `schema_version`).
pub fn int_from_str(s: &str) -> Option<i128> {
    match int_of_str(s)? {
        LaxInt::Signed(i) => Some(i128::from(i)),
        LaxInt::Unsigned(u) => Some(i128::from(u)),
    }
}

/// One JSON scalar as the lax coercions see it, whichever parser produced it (the parsed tree here, the streaming
/// fast path in [`crate::fast`]); objects, arrays and null are `Other`.
pub(crate) enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    BigInt(&'a num_bigint::BigInt),
    Float(f64),
    Str(&'a str),
    Other(Unexpected<'a>),
}

impl<'a> Scalar<'a> {
    fn of(v: &'a JsonValue<'_>) -> Scalar<'a> {
        match v {
            JsonValue::Bool(b) => Scalar::Bool(*b),
            JsonValue::Int(i) => Scalar::Int(*i),
            JsonValue::BigInt(b) => Scalar::BigInt(b),
            JsonValue::Float(f) => Scalar::Float(*f),
            JsonValue::Str(s) => Scalar::Str(s),
            other => Scalar::Other(unexpected(other)),
        }
    }

    fn unexpected(&self) -> Unexpected<'a> {
        match *self {
            Scalar::Bool(b) => Unexpected::Bool(b),
            Scalar::Int(i) => Unexpected::Signed(i),
            Scalar::BigInt(_) => Unexpected::Other("integer"),
            Scalar::Float(f) => Unexpected::Float(f),
            Scalar::Str(s) => Unexpected::Str(s),
            Scalar::Other(u) => u,
        }
    }

    /// An integer as pydantic's lax mode reads one.
    pub(crate) fn int(&self, exp: &dyn de::Expected) -> Result<LaxInt, LaxError> {
        match *self {
            Scalar::Int(i) => Ok(LaxInt::Signed(i)),
            Scalar::BigInt(b) => u64::try_from(b)
                .map(LaxInt::Unsigned)
                .map_err(|_| LaxError(format!("integer {b} out of range, expected {exp}"))),
            Scalar::Bool(b) => Ok(LaxInt::Signed(i64::from(b))),
            Scalar::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => {
                Ok(LaxInt::Signed(f as i64))
            }
            Scalar::Float(f) if f.is_finite() => Err(LaxError(format!(
                "a number with a fractional part ({f}), expected {exp}"
            ))),
            Scalar::Str(s) => {
                int_of_str(s).ok_or_else(|| de::Error::invalid_type(Unexpected::Str(s), exp))
            }
            _ => Err(de::Error::invalid_type(self.unexpected(), exp)),
        }
    }

    /// A float as pydantic's lax mode reads one.
    pub(crate) fn float(&self, exp: &dyn de::Expected) -> Result<f64, LaxError> {
        match *self {
            Scalar::Float(f) => Ok(f),
            Scalar::Int(i) => Ok(i as f64),
            Scalar::BigInt(b) => b
                .to_string()
                .parse::<f64>()
                .map_err(|e| LaxError(e.to_string())),
            Scalar::Bool(b) => Ok(f64::from(u8::from(b))),
            Scalar::Str(s) => {
                let t = s.trim();
                match t.to_ascii_lowercase().as_str() {
                    "nan" => Ok(f64::NAN),
                    "inf" | "+inf" | "infinity" | "+infinity" => Ok(f64::INFINITY),
                    "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
                    _ => t
                        .parse::<f64>()
                        .map_err(|_| de::Error::invalid_type(Unexpected::Str(s), exp)),
                }
            }
            Scalar::Other(u) => Err(de::Error::invalid_type(u, exp)),
        }
    }

    /// A boolean as pydantic's lax mode reads one.
    pub(crate) fn boolean(&self, exp: &dyn de::Expected) -> Result<bool, LaxError> {
        match *self {
            Scalar::Bool(b) => Ok(b),
            Scalar::Int(0) => Ok(false),
            Scalar::Int(1) => Ok(true),
            Scalar::Float(0.0) => Ok(false),
            Scalar::Float(1.0) => Ok(true),
            Scalar::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "t" | "y" | "1" => Ok(true),
                "false" | "no" | "off" | "f" | "n" | "0" => Ok(false),
                _ => Err(de::Error::invalid_type(Unexpected::Str(s), exp)),
            },
            _ => Err(de::Error::invalid_type(self.unexpected(), exp)),
        }
    }
}

impl<'a, 'j> LaxDeserializer<'a, 'j> {
    fn int(&self, exp: &dyn de::Expected) -> Result<LaxInt, LaxError> {
        Scalar::of(self.0).int(exp)
    }

    fn float(&self, exp: &dyn de::Expected) -> Result<f64, LaxError> {
        Scalar::of(self.0).float(exp)
    }

    fn boolean(&self, exp: &dyn de::Expected) -> Result<bool, LaxError> {
        Scalar::of(self.0).boolean(exp)
    }
}

macro_rules! lax_ints {
    ($($method:ident => $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
            match self.int(&visitor)? {
                LaxInt::Signed(i) => visitor.visit_i64(i),
                LaxInt::Unsigned(u) => visitor.visit_u64(u),
            }
        }
    )*};
}

impl<'de, 'j: 'de> de::Deserializer<'de> for LaxDeserializer<'de, 'j> {
    type Error = LaxError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.0 {
            JsonValue::Null => visitor.visit_unit(),
            JsonValue::Bool(b) => visitor.visit_bool(*b),
            JsonValue::Int(i) => visitor.visit_i64(*i),
            JsonValue::BigInt(b) => match u64::try_from(b) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_f64(b.to_string().parse::<f64>().unwrap_or(f64::NAN)),
            },
            JsonValue::Float(f) => visitor.visit_f64(*f),
            JsonValue::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            JsonValue::Str(Cow::Owned(s)) => visitor.visit_str(s),
            JsonValue::Array(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            JsonValue::Object(entries) => visitor.visit_map(Map::new(entries)),
        }
    }

    lax_ints!(
        deserialize_i8 => i8, deserialize_i16 => i16, deserialize_i32 => i32, deserialize_i64 => i64,
        deserialize_u8 => u8, deserialize_u16 => u16, deserialize_u32 => u32, deserialize_u64 => u64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let f = self.float(&visitor)?;
        visitor.visit_f64(f)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let f = self.float(&visitor)?;
        visitor.visit_f64(f)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let b = self.boolean(&visitor)?;
        visitor.visit_bool(b)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.0 {
            JsonValue::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            JsonValue::Str(Cow::Owned(s)) => visitor.visit_str(s),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.0 {
            JsonValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.0 {
            JsonValue::Null => visitor.visit_unit(),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.0 {
            JsonValue::Array(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.0 {
            JsonValue::Object(entries) => visitor.visit_map(Map::new(entries)),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        // Only the value: pydantic's enums are values, and every enum of the registry is one (serde would also read
        // an externally tagged `{"VARIANT": …}`, which pydantic refuses).
        match self.0 {
            JsonValue::Str(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! { i128 u128 char bytes byte_buf }
}

struct Seq<'a, 'j> {
    items: std::slice::Iter<'a, JsonValue<'j>>,
}

impl<'de, 'j: 'de> de::SeqAccess<'de> for Seq<'de, 'j> {
    type Error = LaxError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, LaxError> {
        self.items
            .next()
            .map(|v| seed.deserialize(LaxDeserializer(v)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// An object's entries, each key once: the last of duplicates wins, in the position of its last occurrence.
struct Map<'a, 'j> {
    entries: &'a [(Cow<'j, str>, JsonValue<'j>)],
    /// For objects with duplicates: the index of each key's last entry.
    last: Option<HashMap<&'a str, usize>>,
    at: usize,
    value: Option<&'a JsonValue<'j>>,
}

impl<'a, 'j> Map<'a, 'j> {
    fn new(entries: &'a [(Cow<'j, str>, JsonValue<'j>)]) -> Self {
        // Small objects are checked pairwise; larger ones through a map, so a hostile object of many keys stays
        // linear.
        let has_duplicates = if entries.len() <= 16 {
            entries
                .iter()
                .enumerate()
                .any(|(i, (k, _))| entries[i + 1..].iter().any(|(k2, _)| k2 == k))
        } else {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            !entries.iter().all(|(k, _)| seen.insert(k.as_ref()))
        };
        let last = has_duplicates.then(|| {
            entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.as_ref(), i))
                .collect()
        });
        Map {
            entries,
            last,
            at: 0,
            value: None,
        }
    }
}

impl<'de, 'j: 'de> de::MapAccess<'de> for Map<'de, 'j> {
    type Error = LaxError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, LaxError> {
        while let Some((k, v)) = self.entries.get(self.at) {
            let i = self.at;
            self.at += 1;
            if let Some(last) = &self.last {
                if last.get(k.as_ref()) != Some(&i) {
                    continue;
                }
            }
            self.value = Some(v);
            let key: de::value::BorrowedStrDeserializer<'de, LaxError> = match k {
                Cow::Borrowed(s) => de::value::BorrowedStrDeserializer::new(s),
                Cow::Owned(s) => de::value::BorrowedStrDeserializer::new(s.as_str()),
            };
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, LaxError> {
        match self.value.take() {
            Some(v) => seed.deserialize(LaxDeserializer(v)),
            None => Err(LaxError("a value was asked for before its key".into())),
        }
    }
}
