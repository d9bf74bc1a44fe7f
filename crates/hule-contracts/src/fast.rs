//! The decoder's fast path: the same parser (`jiter`, pydantic-core's, with the same options) driven as a stream
//! straight into the typed payloads, with the same lax coercions as [`crate::lax`], but without building the
//! parsed tree first.
//!
//! It may only say yes. Anything it does not handle exactly as the tree path would — a duplicate key (pydantic keeps
//! the last; the tree path implements that), an enum written as an object, any parse or validation failure — is an
//! error here, and the caller then decodes the record again on the tree path, whose verdict and error message are
//! the record's. So a record the fast path accepts is one the tree path accepts with the same value:
//!
//! - every byte is parsed by the same `jiter` routines (strings by its `StringDecoder`, numbers by its
//!   `NumberAny` decoder with `NaN`/`Infinity` allowed), and the document must end where the tree path requires;
//! - values no field reads are parsed whole into a tree and dropped, so an escape or a number nobody reads is still
//!   checked (jiter's `skip` does not check them);
//! - scalars go through the same coercion functions ([`crate::lax::Scalar`]).
//!
//! Measured on a 9 KB envelope of 30 essay results (`hule bench --only envelope`): with glibc's allocator this path
//! decodes 39k envelopes/s against 33k for the tree path; with mimalloc (the `hule` binary's) both run at about
//! 41k/s, the tree's cost having been its allocations. It is kept for services that link the library with the
//! system allocator.

use jiter::{Jiter, NumberAny, NumberInt, Peek};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use crate::lax::{LaxError, LaxInt, Scalar};
use crate::registry::{Event, TypedEvent};

/// The name under which [`DataSlot`] asks the fast path's deserializer for the payload.
const DATA_SLOT: &str = "$hule::fast::data";

/// The envelope's `data` on the fast path: the payload itself is decoded by the deserializer for the event it was
/// given, and left in [`Stream::payload`].
pub(crate) struct DataSlot;

impl<'de> serde::Deserialize<'de> for DataSlot {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Slot;
        impl<'de> Visitor<'de> for Slot {
            type Value = DataSlot;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event payload")
            }
            fn visit_unit<E: de::Error>(self) -> Result<DataSlot, E> {
                Ok(DataSlot)
            }
        }
        d.deserialize_newtype_struct(DATA_SLOT, Slot)
    }
}

/// A streaming deserializer over one JSON document.
pub(crate) struct Stream<'j> {
    jiter: Jiter<'j>,
    /// A value's first byte already read by an array step.
    peeked: Option<Peek>,
    /// The event whose payload [`DataSlot`] decodes.
    event: Option<Event>,
    /// The payload [`DataSlot`] decoded.
    pub(crate) payload: Option<TypedEvent>,
    /// The first key of the object being entered (jiter reads it with the opening brace).
    first_key: String,
}

/// Errors here are never shown (a failure on the fast path sends the record to the tree path, which words the
/// error); they say why only for this module's tests.
fn failed(e: jiter::JiterError) -> LaxError {
    LaxError(e.to_string())
}

fn refused(why: &str) -> LaxError {
    LaxError(why.to_owned())
}

impl<'j> Stream<'j> {
    pub(crate) fn new(bytes: &'j [u8], event: Option<Event>) -> Self {
        Stream {
            jiter: Jiter::new(bytes).with_allow_inf_nan(),
            peeked: None,
            event,
            payload: None,
            first_key: String::new(),
        }
    }

    /// Requires the document to end here (whitespace aside), as the tree path does.
    pub(crate) fn finish(&mut self) -> Result<(), LaxError> {
        self.jiter.finish().map_err(failed)
    }

    fn peek(&mut self) -> Result<Peek, LaxError> {
        match self.peeked.take() {
            Some(p) => Ok(p),
            None => self.jiter.peek().map_err(failed),
        }
    }

    /// Reads the next value, which is not an array or object, as a scalar and hands it to `f`.
    fn scalar<T>(
        &mut self,
        f: impl FnOnce(Scalar<'_>) -> Result<T, LaxError>,
    ) -> Result<T, LaxError> {
        let peek = self.peek()?;
        match peek {
            Peek::Null => {
                self.jiter.known_null().map_err(failed)?;
                f(Scalar::Other(Unexpected::Unit))
            }
            Peek::True | Peek::False => {
                f(Scalar::Bool(self.jiter.known_bool(peek).map_err(failed)?))
            }
            Peek::String => f(Scalar::Str(self.jiter.known_str().map_err(failed)?)),
            p if p.is_num() => match self.jiter.known_number(peek).map_err(failed)? {
                NumberAny::Int(NumberInt::Int(i)) => f(Scalar::Int(i)),
                NumberAny::Int(NumberInt::BigInt(b)) => f(Scalar::BigInt(&b)),
                NumberAny::Float(x) => f(Scalar::Float(x)),
            },
            _ => Err(refused("an array or object where a scalar was expected")),
        }
    }

    /// Parses the next value whole (every check the tree path makes) and drops it.
    fn skip_checked(&mut self) -> Result<(), LaxError> {
        let peek = self.peek()?;
        self.jiter.known_value(peek).map(drop).map_err(failed)
    }

    fn visit_object<'de, V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, LaxError> {
        let first = self.jiter.known_object().map_err(failed)?;
        let pending = match first {
            Some(k) => {
                self.first_key.clear();
                self.first_key.push_str(k);
                true
            }
            None => false,
        };
        let mut entries = Entries {
            de: self,
            pending,
            closed: !pending,
            seen: Seen::new(),
        };
        let value = visitor.visit_map(&mut entries)?;
        // A visitor that stopped before the closing brace leaves it to the tree path (the parent would otherwise
        // read this object's remaining keys as its own).
        if !entries.closed {
            return Err(refused("entries left after the visitor stopped"));
        }
        Ok(value)
    }

    fn visit_array<'de, V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, LaxError> {
        let first = self.jiter.known_array().map_err(failed)?;
        let mut items = Items {
            de: self,
            next: first,
            started: false,
        };
        let value = visitor.visit_seq(&mut items)?;
        // A visitor that stopped before the closing bracket (a tuple of fixed size) leaves it to the tree path.
        if items.next.is_some() {
            return Err(refused("elements left after the visitor stopped"));
        }
        Ok(value)
    }
}

/// Decodes `bytes` as an envelope of `event`'s payload on the fast path.
pub(crate) fn envelope(
    bytes: &[u8],
    event: Event,
) -> Result<crate::envelope::EventEnvelope<TypedEvent>, LaxError> {
    let mut stream = Stream::new(bytes, Some(event));
    let env: crate::envelope::EventEnvelope<DataSlot> =
        serde::Deserialize::deserialize(&mut stream)?;
    stream.finish()?;
    let payload = stream
        .payload
        .take()
        .ok_or_else(|| LaxError(String::new()))?;
    Ok(env.map_data(|_| payload))
}

/// Decodes `bytes` as a `T` on the fast path (a statically known payload type).
pub(crate) fn value<'de, T: serde::Deserialize<'de>>(bytes: &[u8]) -> Result<T, LaxError> {
    let mut stream = Stream::new(bytes, None);
    let v = T::deserialize(&mut stream)?;
    stream.finish()?;
    Ok(v)
}

macro_rules! fast_ints {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
            match self.scalar(|s| s.int(&visitor))? {
                LaxInt::Signed(i) => visitor.visit_i64(i),
                LaxInt::Unsigned(u) => visitor.visit_u64(u),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Stream<'_> {
    type Error = LaxError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let peek = self.peek()?;
        match peek {
            Peek::Null => {
                self.jiter.known_null().map_err(failed)?;
                visitor.visit_unit()
            }
            Peek::True | Peek::False => {
                visitor.visit_bool(self.jiter.known_bool(peek).map_err(failed)?)
            }
            Peek::String => visitor.visit_str(self.jiter.known_str().map_err(failed)?),
            Peek::Array => self.visit_array(visitor),
            Peek::Object => self.visit_object(visitor),
            p if p.is_num() => match self.jiter.known_number(peek).map_err(failed)? {
                NumberAny::Int(NumberInt::Int(i)) => visitor.visit_i64(i),
                NumberAny::Int(NumberInt::BigInt(b)) => match u64::try_from(&b) {
                    Ok(u) => visitor.visit_u64(u),
                    Err(_) => visitor.visit_f64(b.to_string().parse::<f64>().unwrap_or(f64::NAN)),
                },
                NumberAny::Float(x) => visitor.visit_f64(x),
            },
            _ => Err(refused("another JSON type")),
        }
    }

    fast_ints!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let f = self.scalar(|s| s.float(&visitor))?;
        visitor.visit_f64(f)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let f = self.scalar(|s| s.float(&visitor))?;
        visitor.visit_f64(f)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let b = self.scalar(|s| s.boolean(&visitor))?;
        visitor.visit_bool(b)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.peek()? {
            Peek::String => visitor.visit_str(self.jiter.known_str().map_err(failed)?),
            _ => Err(refused("another JSON type")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        let peek = self.peek()?;
        if peek == Peek::Null {
            self.jiter.known_null().map_err(failed)?;
            visitor.visit_none()
        } else {
            self.peeked = Some(peek);
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.peek()? {
            Peek::Null => {
                self.jiter.known_null().map_err(failed)?;
                visitor.visit_unit()
            }
            _ => Err(refused("another JSON type")),
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
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, LaxError> {
        if name == DATA_SLOT {
            let event = self
                .event
                .ok_or_else(|| refused("no event for the payload"))?;
            let payload = crate::registry::decode_payload_fast(event, &mut *self)?;
            self.payload = Some(payload);
            return visitor.visit_unit();
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        match self.peek()? {
            Peek::Array => self.visit_array(visitor),
            _ => Err(refused("another JSON type")),
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
        match self.peek()? {
            Peek::Object => self.visit_object(visitor),
            _ => Err(refused("another JSON type")),
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
        match self.peek()? {
            Peek::String => {
                let s = self.jiter.known_str().map_err(failed)?;
                visitor.visit_enum(s.into_deserializer())
            }
            // Anything else is refused on the tree path too (pydantic's enums are values).
            _ => Err(refused("an enum not written as a string")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LaxError> {
        self.skip_checked()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! { i128 u128 char bytes byte_buf }
}

struct Items<'s, 'j> {
    de: &'s mut Stream<'j>,
    /// The next element's first byte; `None` once the array is closed.
    next: Option<Peek>,
    started: bool,
}

impl<'de> de::SeqAccess<'de> for &mut Items<'_, '_> {
    type Error = LaxError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, LaxError> {
        if self.started && self.next.is_some() {
            self.next = self.de.jiter.array_step().map_err(failed)?;
        }
        self.started = true;
        match self.next {
            None => Ok(None),
            Some(peek) => {
                self.de.peeked = Some(peek);
                seed.deserialize(&mut *self.de).map(Some)
            }
        }
    }
}

/// An object's entries in order. A key seen twice is an error (the tree path keeps the last, as pydantic does).
struct Entries<'s, 'j> {
    de: &'s mut Stream<'j>,
    /// The first key, read with the brace, not yet handed out.
    pending: bool,
    /// The closing brace has been read (jiter reads an empty object's with its opening one).
    closed: bool,
    /// Hashes of the keys handed out so far (a collision only sends the record to the tree path).
    seen: Seen,
}

/// Key hashes of one object: the first 16 inline (payload objects are small), the rest on the heap.
struct Seen {
    inline: [u64; 16],
    len: usize,
    more: Vec<u64>,
}

impl Seen {
    fn new() -> Self {
        Seen {
            inline: [0; 16],
            len: 0,
            more: Vec::new(),
        }
    }

    /// Records `h`; false when it was already there.
    fn insert(&mut self, h: u64) -> bool {
        let n = self.len.min(16);
        if self.inline[..n].contains(&h) || self.more.contains(&h) {
            return false;
        }
        if self.len < 16 {
            self.inline[self.len] = h;
        } else {
            self.more.push(h);
        }
        self.len += 1;
        true
    }
}

/// FNV-1a: keys are short, and a false match only costs the tree path.
fn key_hash(k: &str) -> u64 {
    k.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = LaxError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, LaxError> {
        if self.pending {
            self.pending = false;
            let key = std::mem::take(&mut self.de.first_key);
            self.seen.insert(key_hash(&key));
            let out = seed.deserialize(de::value::StrDeserializer::<LaxError>::new(&key));
            self.de.first_key = key;
            return out.map(Some);
        }
        if self.closed {
            return Ok(None);
        }
        let Some(key) = self.de.jiter.next_key().map_err(failed)? else {
            self.closed = true;
            return Ok(None);
        };
        let h = key_hash(key);
        let out = seed.deserialize(de::value::StrDeserializer::<LaxError>::new(key));
        if !self.seen.insert(h) {
            return Err(refused("a duplicate key"));
        }
        out.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, LaxError> {
        seed.deserialize(&mut *self.de)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::example_envelope;
    use crate::{Timestamp, EVENTS};

    /// Every event's example envelope takes the fast path (a record that silently always fell back would cost the
    /// tree path and this path both).
    #[test]
    fn every_example_takes_the_fast_path() {
        let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").expect("ts");
        for def in EVENTS {
            let env = example_envelope(
                def.event,
                uuid::Uuid::from_u128(1),
                uuid::Uuid::from_u128(2),
                at,
            )
            .expect("example");
            let bytes = env.to_json().expect("json");
            let fast = envelope(&bytes, def.event).unwrap_or_else(|e| {
                panic!("{:?}: the fast path refused its example: {e:?}", def.event)
            });
            assert_eq!(format!("{fast:?}"), format!("{env:?}"));
        }
    }
}
