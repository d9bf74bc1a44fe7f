//! Constrained value types: each checks its pydantic constraint while deserializing, so a violation is reported
//! with the field path of the value that broke it.

use std::fmt;

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::json;

/// Declares a float newtype limited to a closed range.
macro_rules! ranged_f64 {
    ($(#[$meta:meta])* $name:ident, $lo:expr, $hi:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $name(f64);

        impl $name {
            /// Lower bound, inclusive.
            pub const MIN: f64 = $lo;
            /// Upper bound, inclusive.
            pub const MAX: f64 = $hi;

            /// Checks the range.
            pub fn new(value: f64) -> Result<Self, String> {
                if value.is_finite() && ($lo..=$hi).contains(&value) {
                    Ok($name(value))
                } else {
                    Err(format!("{value} is outside [{}, {}]", $lo, $hi))
                }
            }

            /// The value.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::new(f64::deserialize(d)?).map_err(de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                let mut schema = json_schema!({"type": "number", "minimum": $lo});
                if $hi < f64::MAX {
                    schema.insert("maximum".into(), json!($hi));
                }
                schema
            }
        }
    };
}

ranged_f64!(
    /// A float in [0, 1] (`Field(ge=0.0, le=1.0)`).
    UnitInterval, 0.0, 1.0
);
ranged_f64!(
    /// A comparison confidence in [1, 5].
    Confidence5, 1.0, 5.0
);
ranged_f64!(
    /// An LLM temperature in [0, 2].
    Temperature, 0.0, 2.0
);
ranged_f64!(
    /// A non-negative float (`ge=0.0`).
    NonNegativeF64, 0.0, f64::MAX
);

/// A strictly positive integer (`gt=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PositiveInt(i64);

impl PositiveInt {
    /// Checks `value > 0`.
    pub fn new(value: i64) -> Result<Self, String> {
        if value > 0 {
            Ok(PositiveInt(value))
        } else {
            Err(format!("{value} is not greater than 0"))
        }
    }
    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for PositiveInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PositiveInt::new(i64::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl JsonSchema for PositiveInt {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "PositiveInt".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "exclusiveMinimum": 0})
    }
}

/// A non-negative integer (`ge=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(transparent)]
pub struct NonNegativeInt(i64);

impl NonNegativeInt {
    /// Checks `value >= 0`.
    pub fn new(value: i64) -> Result<Self, String> {
        if value >= 0 {
            Ok(NonNegativeInt(value))
        } else {
            Err(format!("{value} is negative"))
        }
    }
    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for NonNegativeInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NonNegativeInt::new(i64::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl JsonSchema for NonNegativeInt {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "NonNegativeInt".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 0})
    }
}

/// A string whose length in characters lies in `[MIN, MAX]` (`min_length`, `max_length`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BoundedString<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> BoundedString<MIN, MAX> {
    /// Checks the length.
    pub fn new(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        let len = value.chars().count();
        if len < MIN {
            Err(format!(
                "string of {len} characters is shorter than the minimum of {MIN}"
            ))
        } else if len > MAX {
            Err(format!(
                "string of {len} characters is longer than the maximum of {MAX}"
            ))
        } else {
            Ok(BoundedString(value))
        }
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for BoundedString<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BoundedString::new(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl<const MIN: usize, const MAX: usize> JsonSchema for BoundedString<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("BoundedString_{MIN}_{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut schema = json_schema!({"type": "string", "maxLength": MAX});
        if MIN > 0 {
            schema.insert("minLength".into(), json!(MIN));
        }
        schema
    }
}

/// A letter grade matching `^([A-F][+-]?|U)$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LetterGrade(String);

impl LetterGrade {
    /// Checks the pattern.
    pub fn new(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        let b = value.as_bytes();
        let ok = match b {
            [b'U'] => true,
            [g] => (b'A'..=b'F').contains(g),
            [g, s] => (b'A'..=b'F').contains(g) && (*s == b'+' || *s == b'-'),
            _ => false,
        };
        if ok {
            Ok(LetterGrade(value))
        } else {
            Err(format!("`{value}` does not match ^([A-F][+-]?|U)$"))
        }
    }
    /// The grade.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LetterGrade {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LetterGrade::new(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl JsonSchema for LetterGrade {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "LetterGrade".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^([A-F][+-]?|U)$"})
    }
}

/// An e-mail address (`EmailStr`): one `@`, a non-empty local part, a domain with a dot, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Checks the shape of the address.
    pub fn new(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !value.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if valid {
            Ok(Email(value))
        } else {
            Err(format!("`{value}` is not a valid e-mail address"))
        }
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Email::new(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl JsonSchema for Email {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Email".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "email"})
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_hold() {
        assert!(UnitInterval::new(1.0).is_ok());
        assert!(UnitInterval::new(1.01).is_err());
        assert!(UnitInterval::new(f64::NAN).is_err());
        assert!(PositiveInt::new(0).is_err());
        for g in ["A", "B+", "F-", "U"] {
            assert!(LetterGrade::new(g).is_ok(), "{g}");
        }
        for g in ["G", "A*", "U+", "", "AB"] {
            assert!(LetterGrade::new(g).is_err(), "{g}");
        }
        assert!(BoundedString::<1, 3>::new("").is_err());
        assert!(BoundedString::<1, 3>::new("åäö").is_ok());
        assert!(BoundedString::<1, 3>::new("abcd").is_err());
        assert!(Email::new("a@b.se").is_ok());
        assert!(Email::new("a@b").is_err());
    }
}
