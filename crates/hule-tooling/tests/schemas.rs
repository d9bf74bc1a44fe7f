//! The generated payload schemas agree with the decoder: for every event, removing a top-level field from its
//! example makes decoding fail exactly when the schema lists the field as required, and setting a field to `null`
//! decodes exactly when the schema allows `null` there.

use hule_contracts::decode::decode_payload;
use hule_contracts::examples::example_json;
use hule_contracts::EVENTS;
use hule_tooling::schema::payload_schema;
use serde_json::{value::RawValue, Map, Value};

fn decodes(event: hule_contracts::Event, payload: &Map<String, Value>) -> bool {
    let text = serde_json::to_string(payload).expect("encode");
    let raw = RawValue::from_string(text).expect("raw");
    decode_payload(event, &raw).is_ok()
}

/// Whether a property schema admits `null`, following one `$ref` into the root's definitions.
fn admits_null(root: &Value, prop: &Value) -> bool {
    let prop = match prop.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().expect("ref name");
            &root["definitions"][name]
        }
        None => prop,
    };
    match &prop["type"] {
        Value::String(t) => t == "null",
        Value::Array(ts) => ts.iter().any(|t| t == "null"),
        _ => ["anyOf", "oneOf"].iter().any(|k| {
            prop[*k]
                .as_array()
                .is_some_and(|alts| alts.iter().any(|a| admits_null(root, a)))
        }),
    }
}

#[test]
fn required_and_nullable_match_the_decoder() {
    let mut checked = 0;
    for def in EVENTS {
        let schema = payload_schema(def.event);
        let example: Map<String, Value> =
            serde_json::from_str(&example_json(def.event).expect("every event has an example"))
                .expect("example is an object");
        assert!(
            decodes(def.event, &example),
            "{}: example decodes",
            def.name
        );
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Fields named by a top-level `oneOf` branch are required together with others (a cross-field rule);
        // removing one alone must fail, whatever `required` says.
        let in_branch: Vec<&str> = schema["oneOf"]
            .as_array()
            .map(|bs| {
                bs.iter()
                    .flat_map(|b| b["required"].as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                    .collect()
            })
            .unwrap_or_default();
        let props = schema["properties"].as_object().expect("properties");
        for name in example.keys() {
            assert!(
                props.contains_key(name),
                "{}: example field `{name}` is in the schema",
                def.name
            );
        }
        for (name, prop) in props {
            let mut without = example.clone();
            without.remove(name);
            let expected = !(required.contains(&name.as_str())
                || (in_branch.contains(&name.as_str())
                    && example.get(name).is_some_and(|v| !v.is_null())));
            assert_eq!(
                decodes(def.event, &without),
                expected,
                "{}: decoding without `{name}` vs required = {required:?}",
                def.name
            );
            let mut nulled = example.clone();
            nulled.insert(name.clone(), Value::Null);
            // A null in a field that also has a cross-field rule (exactly one of two set) may fail for that rule;
            // only the direction "schema forbids null ⇒ decoder refuses it" is exact for every field.
            if !admits_null(&schema, prop) {
                assert!(
                    !decodes(def.event, &nulled),
                    "{}: `{name}` = null decodes but the schema forbids null",
                    def.name
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "checked {checked} fields");
}

#[test]
fn the_committed_schemas_in_docs_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas");
    let regenerate = "regenerate with `hule catalog --format json-schema --out docs/schemas`";
    let files = hule_tooling::schema::schema_files();
    for (name, text) in &files {
        let committed = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("docs/schemas/{name}: {e}; {regenerate}"));
        assert!(
            committed == *text,
            "docs/schemas/{name} is stale; {regenerate}"
        );
    }
    let on_disk = std::fs::read_dir(&dir)
        .expect("docs/schemas")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".schema.json"))
        })
        .count();
    assert_eq!(
        on_disk,
        files.len(),
        "docs/schemas has stale files; {regenerate}"
    );
}

/// Every property name at any depth of `schema` (its `$defs` included).
fn property_names(schema: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| property_names(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| property_names(v, out)),
        _ => {}
    }
}

#[test]
fn every_field_named_like_personal_data_is_declared_sensitive_or_cleared() {
    use hule_contracts::sensitive::{NOT_PERSONAL, SENSITIVE_FIELDS};
    let mut names = std::collections::BTreeSet::new();
    for def in hule_contracts::EVENTS {
        property_names(&hule_tooling::schema::payload_schema(def.event), &mut names);
    }
    let looks_personal = |n: &str| {
        [
            "name",
            "email",
            "phone",
            "address",
            "birth",
            "ssn",
            "personnummer",
        ]
        .iter()
        .any(|p| n.contains(p))
    };
    let undeclared: Vec<&String> = names
        .iter()
        .filter(|n| looks_personal(n))
        .filter(|n| !SENSITIVE_FIELDS.contains(&n.as_str()) && !NOT_PERSONAL.contains(&n.as_str()))
        .collect();
    assert!(
        undeclared.is_empty(),
        "payload fields named like personal data, neither in SENSITIVE_FIELDS nor NOT_PERSONAL: {undeclared:?}"
    );
    let unused: Vec<&&str> = SENSITIVE_FIELDS
        .iter()
        .chain(NOT_PERSONAL)
        .filter(|f| !names.contains(**f))
        .collect();
    assert!(unused.is_empty(), "declared but in no payload: {unused:?}");
}
