//! JSON Schemas of the event payloads, generated from the typed models of [`hule_contracts::payloads`] (draft-07).
//!
//! The schemas describe what the decoder accepts (the deserialize contract): a field is `required` exactly when
//! decoding fails without it, constraints are those of [`hule_contracts::constrained`], enums list their wire values.
//! [`payload_schema`] gives one self-contained document per event; [`shared_generator`] and [`payload_subschema`]
//! put many into one document with shared definitions (AsyncAPI's `#/components/schemas/`).

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use hule_contracts::registry::{payload_root_schema, Event, EVENTS};

/// The draft-07 meta-schema URI every generated schema declares.
pub const DRAFT07: &str = "http://json-schema.org/draft-07/schema#";

/// The `$id` of an event's payload schema.
pub fn schema_id(event: Event) -> String {
    format!("urn:huleedu:schema:{}", event.topic())
}

/// The file name of an event's payload schema: payload model and version, e.g. `EssaySlotAssignedV1.v1.schema.json`.
pub fn schema_file_name(event: Event) -> String {
    let def = event.def();
    format!("{}.v{}.schema.json", def.payload_type, def.version())
}

/// The self-contained draft-07 JSON Schema of an event's payload, with its own `definitions` and `x-huleedu-*`
/// annotations naming the event, its topic and its version.
pub fn payload_schema(event: Event) -> Value {
    let def = event.def();
    let mut schema = payload_root_schema(event, SchemaSettings::draft07()).to_value();
    if let Value::Object(map) = &mut schema {
        let mut ordered = Map::new();
        ordered.insert("$schema".into(), json!(DRAFT07));
        ordered.insert("$id".into(), json!(schema_id(event)));
        ordered.insert("title".into(), json!(def.payload_type));
        ordered.insert("x-huleedu-event".into(), json!(def.name));
        ordered.insert("x-huleedu-topic".into(), json!(def.topic));
        ordered.insert("x-huleedu-version".into(), json!(def.version()));
        for (k, v) in std::mem::take(map) {
            ordered.entry(k).or_insert(v);
        }
        *map = ordered;
    }
    schema
}

/// A draft-07 generator that keeps shared definitions under `definitions_path` (AsyncAPI's
/// `/components/schemas`), for documents that hold many schemas; [`payload_subschema`] adds an event's payload.
pub fn shared_generator(definitions_path: &str) -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = definitions_path.to_owned().into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// An event's payload schema inside `generator`: a `$ref` to a definition the generator keeps.
pub fn payload_subschema(event: Event, generator: &mut SchemaGenerator) -> Value {
    hule_contracts::registry::payload_subschema(event, generator).to_value()
}

/// Pretty JSON with a final newline, the form every generated file is written in.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Every payload schema as `(file name, pretty JSON)`, in registry order.
pub fn schema_files() -> Vec<(String, String)> {
    EVENTS
        .iter()
        .map(|d| (schema_file_name(d.event), pretty(&payload_schema(d.event))))
        .collect()
}

/// Every payload schema in one JSON object keyed by file name (what `hule catalog --format json-schema` prints).
pub fn bundle_json() -> String {
    let map: Map<String, Value> = EVENTS
        .iter()
        .map(|d| (schema_file_name(d.event), payload_schema(d.event)))
        .collect();
    pretty(&Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_an_object_schema_with_its_annotations() {
        for def in EVENTS {
            let schema = payload_schema(def.event);
            assert_eq!(schema["type"], "object", "{}", def.name);
            assert_eq!(schema["x-huleedu-event"], def.name);
            assert_eq!(schema["$schema"], DRAFT07);
        }
    }
}

/// One field of an event's payload, as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDoc {
    /// The JSON name.
    pub name: String,
    /// Its type, readably (`string (date-time)`, `list of EssayProcessingInputRefV1`, `CourseCode | null`).
    pub ty: String,
    /// Whether a record must carry it.
    pub required: bool,
    /// Its constraints (`0 ≤ x ≤ 1`, `pattern ^…$`, `length ≤ 100`), if any.
    pub constraints: String,
    /// Its documentation (the Python model's field and default, from the reference).
    pub description: String,
}

/// The top-level fields of `event`'s payload, in declaration order, from its JSON Schema.
pub fn payload_fields(event: Event) -> Vec<FieldDoc> {
    let schema = payload_schema(event);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| FieldDoc {
            name: name.clone(),
            ty: type_of(p),
            required: required.contains(&name.as_str()),
            constraints: constraints_of(p),
            description: description_of(p),
        })
        .collect()
}

/// A property's description, also when schemars wrapped a documented `$ref` in `allOf`.
fn description_of(p: &Value) -> String {
    p["description"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A schema's type, readably.
fn type_of(p: &Value) -> String {
    if let Some(r) = p["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = p[key].as_array() {
            return options.iter().map(type_of).collect::<Vec<_>>().join(" | ");
        }
    }
    if let Some(all) = p["allOf"].as_array().and_then(|a| a.first()) {
        return type_of(all);
    }
    if let Some(values) = p["enum"].as_array() {
        return values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(c) = p.get("const") {
        return c.to_string();
    }
    let one = |t: &str| match t {
        "array" => format!("list of {}", type_of(&p["items"])),
        "object" => match p.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of {}", type_of(v)),
            _ => "object".to_owned(),
        },
        // The timestamp's own schema: ISO 8601, as pydantic reads it.
        "string"
            if p["pattern"]
                .as_str()
                .is_some_and(|x| x.starts_with("^\\s*[0-9]{4}-")) =>
        {
            "datetime (ISO 8601)".to_owned()
        }
        "string" => match p["format"].as_str() {
            Some(f) => format!("string ({f})"),
            None => "string".to_owned(),
        },
        "integer" => "integer".to_owned(),
        other => other.to_owned(),
    };
    match &p["type"] {
        Value::String(t) => one(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_owned(),
    }
}

/// A schema's constraints, readably.
fn constraints_of(p: &Value) -> String {
    let mut out = Vec::new();
    let num = |k: &str| p.get(k).filter(|v| v.is_number()).map(|v| v.to_string());
    match (num("minimum"), num("exclusiveMinimum")) {
        (Some(m), _) => out.push(format!("≥ {m}")),
        (_, Some(m)) => out.push(format!("> {m}")),
        _ => {}
    }
    match (num("maximum"), num("exclusiveMaximum")) {
        (Some(m), _) => out.push(format!("≤ {m}")),
        (_, Some(m)) => out.push(format!("< {m}")),
        _ => {}
    }
    if let Some(m) = num("minLength") {
        out.push(format!("length ≥ {m}"));
    }
    if let Some(m) = num("maxLength") {
        out.push(format!("length ≤ {m}"));
    }
    if let Some(pattern) = p["pattern"]
        .as_str()
        .filter(|x| !x.starts_with("^\\s*[0-9]{4}-"))
    {
        out.push(format!("pattern `{pattern}`"));
    }
    for key in ["anyOf", "allOf"] {
        if let Some(options) = p[key].as_array() {
            for o in options {
                let inner = constraints_of(o);
                if !inner.is_empty() {
                    out.push(inner);
                }
            }
        }
    }
    out.join(", ")
}
