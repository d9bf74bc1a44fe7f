//! The building blocks shared by many payloads: metadata models, storage references, error details, summaries.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::enums::{ContentType, ErrorCode, ProcessingStage};
use crate::time::Timestamp;

/// A free-form JSON object (`dict[str, Any]` in the original), kept as given: a `serde_json` map, which it derefs
/// to.
///
/// Not the map's own `Deserialize`: `serde_json::Value`'s reads an object whose first key is its private raw-value
/// token (`$serde_json::private::RawValue`) as the JSON text of that key's string, where pydantic keeps the dict
/// as given. This one reads every value inside with [`PlainValue`], which has no raw-value case, and takes only an
/// object (`null` refused, as pydantic refuses it: "Input should be an object").
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JsonMap(pub serde_json::Map<String, serde_json::Value>);

/// As the map shows itself (a payload's Debug text unchanged by the wrapper).
impl std::fmt::Debug for JsonMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Extend<(String, serde_json::Value)> for JsonMap {
    fn extend<I: IntoIterator<Item = (String, serde_json::Value)>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// The map's own schema, inline as the map's is (the catalog and the contract schemas unchanged).
impl JsonSchema for JsonMap {
    fn inline_schema() -> bool {
        <serde_json::Map<String, serde_json::Value>>::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        <serde_json::Map<String, serde_json::Value>>::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        <serde_json::Map<String, serde_json::Value>>::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <serde_json::Map<String, serde_json::Value>>::json_schema(generator)
    }
}

impl JsonMap {
    /// An empty map.
    pub fn new() -> Self {
        JsonMap::default()
    }
}

impl std::ops::Deref for JsonMap {
    type Target = serde_json::Map<String, serde_json::Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for JsonMap {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for JsonMap {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        JsonMap(map)
    }
}

impl From<JsonMap> for serde_json::Map<String, serde_json::Value> {
    fn from(map: JsonMap) -> Self {
        map.0
    }
}

impl FromIterator<(String, serde_json::Value)> for JsonMap {
    fn from_iter<I: IntoIterator<Item = (String, serde_json::Value)>>(iter: I) -> Self {
        JsonMap(iter.into_iter().collect())
    }
}

impl IntoIterator for JsonMap {
    type Item = (String, serde_json::Value);
    type IntoIter = serde_json::map::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a JsonMap {
    type Item = (&'a String, &'a serde_json::Value);
    type IntoIter = serde_json::map::Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for JsonMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = JsonMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<JsonMap, A::Error> {
                members(map).map(JsonMap)
            }
        }
        d.deserialize_map(Object)
    }
}

/// An object's members, each value read with [`PlainValue`]; a repeated key's last value wins, in its first place.
fn members<'de, A: serde::de::MapAccess<'de>>(
    mut map: A,
) -> Result<serde_json::Map<String, serde_json::Value>, A::Error> {
    let mut members = serde_json::Map::new();
    while let Some(key) = map.next_key::<String>()? {
        let value = map.next_value_seed(PlainValue)?;
        members.insert(key, value);
    }
    Ok(members)
}

/// Parses JSON text into a `serde_json::Value` as [`PlainValue`] reads it (`serde_json::from_str` without its
/// raw-value case): for code that must keep a document as written.
pub fn plain_value_from_str(text: &str) -> serde_json::Result<serde_json::Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde::de::DeserializeSeed::deserialize(PlainValue, &mut de)?;
    de.end()?;
    Ok(value)
}

/// Reads any JSON value as `serde_json::Value`'s own `Deserialize` does, with one difference: an object is always a
/// map of its members (that one reads an object whose first key is its private raw-value token as raw JSON).
/// Numbers as that one reads them too: `serde_json`'s `arbitrary_precision` feature, which would hand numbers over
/// as objects of another private key, is off in this build (a unit test holds it).
#[derive(Clone, Copy, Debug)]
pub struct PlainValue;

impl<'de> serde::de::DeserializeSeed<'de> for PlainValue {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PlainValue {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Number(v.into()))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<serde_json::Value, E> {
        serde_json::Number::deserialize(serde::de::value::I128Deserializer::<E>::new(v))
            .map(serde_json::Value::Number)
    }

    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Number(v.into()))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<serde_json::Value, E> {
        serde_json::Number::deserialize(serde::de::value::U128Deserializer::<E>::new(v))
            .map(serde_json::Value::Number)
    }

    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map_or(serde_json::Value::Null, serde_json::Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v))
    }

    fn visit_none<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(PlainValue)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        map: A,
    ) -> Result<serde_json::Value, A::Error> {
        members(map).map(serde_json::Value::Object)
    }
}

/// Deserializes a field that is required but may be `null` (`x: str | None` with no default).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// The schema of a [`nullable`] field: `T` or `null` (the field itself is marked required where it is used).
pub(crate) fn nullable_schema<T: JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<Option<T>>()
}

/// `SystemProcessingMetadata`: the processing context of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemProcessingMetadata {
    /// The entity's id.
    pub entity_id: String,
    /// The entity's kind (`essay`, `batch`, ...).
    pub entity_type: String,
    /// The parent entity.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// When this metadata was made.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// The stage reached.
    #[serde(default)]
    pub processing_stage: Option<ProcessingStage>,
    /// When processing started.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When processing completed.
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    /// The enum value of the event.
    #[serde(default)]
    pub event: Option<String>,
    /// Error details, by convention `error_code`, `error_message`, `error_type`, `context`.
    #[serde(default)]
    pub error_info: ErrorInfo,
}

/// `SystemProcessingMetadata.error_info`: the documented keys, and any others kept as given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// Machine-readable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Exception class or category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Extra context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonMap>,
    /// Keys the reference does not document.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `StorageReferenceMetadata`: Content Service references by content type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StorageReferenceMetadata {
    /// `{content_type: {"storage_id": ..., "path": ...}}`.
    #[serde(default)]
    pub references: BTreeMap<ContentType, BTreeMap<String, String>>,
}

/// `SpellcheckMetricsV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpellcheckMetricsV1 {
    /// All corrections.
    pub total_corrections: i64,
    /// Corrections from the L2 dictionary.
    pub l2_dictionary_corrections: i64,
    /// Corrections from the spellchecker.
    pub spellchecker_corrections: i64,
    /// Words in the essay.
    pub word_count: i64,
    /// Corrections per word.
    pub correction_density: f64,
}

/// `EssayProcessingInputRefV1`: an essay and where its text is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayProcessingInputRefV1 {
    /// The essay.
    pub essay_id: String,
    /// Where its text is.
    pub text_storage_id: String,
    /// Spellcheck metrics when known (typed `Any` at run time in the original because of a forward reference;
    /// its intended type is `SpellcheckMetricsV1`).
    #[serde(default)]
    pub spellcheck_metrics: Option<SpellcheckMetricsV1>,
}

/// `ErrorDetail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// A code of `ErrorCode` or one of the service error enums.
    pub error_code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// The correlation id of the request.
    pub correlation_id: Uuid,
    /// When.
    pub timestamp: Timestamp,
    /// Which service.
    pub service: String,
    /// Which operation.
    pub operation: String,
    /// More detail.
    #[serde(default)]
    pub details: JsonMap,
    /// Stack trace.
    #[serde(default)]
    pub stack_trace: Option<String>,
    /// Trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Span id.
    #[serde(default)]
    pub span_id: Option<String>,
}

/// The `processing_summary` of CJ and NLP completion events: the documented keys, and any others kept as given.
///
/// Absent keys stay absent when re-encoded; [`ProcessingSummary::default`] is the original's default dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessingSummary {
    /// Essays in the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_essays: Option<i64>,
    /// Essays that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<i64>,
    /// Essays that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
    /// Ids of the successful essays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_essay_ids: Option<Vec<String>>,
    /// Ids of the failed essays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_essay_ids: Option<Vec<String>>,
    /// Wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_time_seconds: Option<f64>,
    /// Keys the reference does not document (the CJ producer adds `single_essay_batch`).
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Default for ProcessingSummary {
    fn default() -> Self {
        ProcessingSummary {
            total_essays: Some(0),
            successful: Some(0),
            failed: Some(0),
            successful_essay_ids: Some(Vec::new()),
            failed_essay_ids: Some(Vec::new()),
            processing_time_seconds: Some(0.0),
            extra: JsonMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "$serde_json::private::RawValue";

    #[test]
    fn plain_values_are_serde_jsons_but_for_the_raw_value_token() {
        // Numbers stay numbers (not objects of `arbitrary_precision`'s private key), nested as given.
        let text = r#"{"a":{"b":1,"c":1.5,"d":-2,"e":[true,null,"s",{"f":18446744073709551615}]}}"#;
        let plain = plain_value_from_str(text).expect("plain");
        assert_eq!(
            plain,
            serde_json::from_str::<serde_json::Value>(text).expect("serde_json")
        );
        let map: JsonMap = serde_json::from_str(text).expect("map");
        assert_eq!(serde_json::Value::Object(map.0), plain);
        // The token: serde_json reads its string as JSON; these keep the object.
        let text = format!(r#"{{"{TOKEN}":"[1]","x":2}}"#);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&format!(r#"{{"{TOKEN}":"[1]"}}"#))
                .expect("serde_json"),
            serde_json::json!([1]),
            "serde_json's own reading, which the type exists to avoid"
        );
        let plain = plain_value_from_str(&text).expect("plain");
        assert_eq!(plain[TOKEN], "[1]");
        assert_eq!(plain["x"], 2);
        let nested: JsonMap = serde_json::from_str(&format!(r#"{{"k":[{text}]}}"#)).expect("map");
        assert_eq!(nested["k"][0][TOKEN], "[1]");
        assert!(plain_value_from_str("{} x").is_err(), "trailing text");
    }

    #[test]
    fn a_json_map_takes_an_object_only_as_pydantic_does() {
        for text in ["null", "[]", "1", "\"{}\""] {
            let err = serde_json::from_str::<JsonMap>(text).expect_err(text);
            assert!(err.to_string().contains("expected a map"), "{text}: {err}");
        }
        let repeated: JsonMap = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).expect("map");
        assert_eq!(
            serde_json::to_string(&repeated).expect("json"),
            r#"{"a":3,"b":2}"#
        );
        assert_eq!(
            format!("{repeated:?}"),
            format!("{:?}", repeated.0),
            "Debug as the map's"
        );
    }
}
