//! The schema-evolution gate, as pure logic: compares the payload schemas of a committed baseline with the current
//! ones and reports every breaking change in an event whose version did not change.
//!
//! A change is breaking when a consumer or a producer written against one side can meet data of the other side
//! that it refuses: a **removed field** (old consumers read it), a **changed type** (any change of the set of JSON
//! types, `null` included), a **new required field** (old producers do not write it; also an optional field that
//! became required), a **narrowed constraint** (a higher minimum, a lower maximum, a new or changed pattern,
//! format or `const`, closed `additionalProperties`, an enum where there was none) and a **removed enum value**.
//! Added optional fields, added enum values and widened constraints pass. An event missing from the current
//! registry is reported as a **removed event**; an event whose version changed is skipped (its new version is a
//! new contract), and a new event has nothing to compare.
//!
//! `$ref`s are followed into each document's `definitions`, and `anyOf [T, null]` is read as `T` that admits
//! `null`, so a change deep inside a shared definition is reported at every field path that reaches it
//! (`essay_results[].letter_grade`: `[]` steps into array items, `{}` into map values).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{json, Map, Value};

use crate::schema::payload_schema;
use hule_contracts::registry::EVENTS;

/// The first line of a baseline's `format` field.
pub const BASELINE_FORMAT: &str = "hule-schema-baseline/1";

/// A kind of breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A field present in the baseline is gone.
    RemovedField,
    /// A field's set of JSON types changed.
    ChangedType,
    /// A field is required now that was absent or optional.
    NewRequiredField,
    /// A constraint admits fewer values than before.
    NarrowedConstraint,
    /// An enum lost a value.
    RemovedEnumValue,
    /// An event of the baseline is no longer registered.
    RemovedEvent,
}

impl Rule {
    /// The rule's name as printed.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::RemovedField => "removed field",
            Rule::ChangedType => "changed type",
            Rule::NewRequiredField => "new required field",
            Rule::NarrowedConstraint => "narrowed constraint",
            Rule::RemovedEnumValue => "removed enum value",
            Rule::RemovedEvent => "removed event",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One breaking change: the event, the field path, the rule and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    /// The event's name.
    pub event: String,
    /// The field path (`(payload)` for the payload itself).
    pub field: String,
    /// The rule broken.
    pub rule: Rule,
    /// What changed, baseline → current.
    pub detail: String,
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} field `{}`: {} ({})",
            self.event, self.field, self.rule, self.detail
        )
    }
}

/// One event's entry in a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineEntry {
    /// Its version (from its topic).
    pub version: u32,
    /// Its payload model's name.
    pub payload: String,
    /// Its self-contained payload schema.
    pub schema: Value,
}

/// The payload schemas of every event, by event name: what a baseline file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baseline {
    /// Entries by event name.
    pub events: BTreeMap<String, BaselineEntry>,
}

/// A baseline file that cannot be read; says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("baseline {place}: {reason}")]
pub struct BaselineError {
    /// Where in the file (line and column, or the entry).
    pub place: String,
    /// What is wrong.
    pub reason: String,
}

impl Baseline {
    /// The baseline of the current registry.
    pub fn current() -> Self {
        let events = EVENTS
            .iter()
            .map(|d| {
                let entry = BaselineEntry {
                    version: d.version(),
                    payload: d.payload_type.to_owned(),
                    schema: payload_schema(d.event),
                };
                (d.name.to_owned(), entry)
            })
            .collect();
        Baseline { events }
    }

    /// Writes the baseline as pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let events: Map<String, Value> = self
            .events
            .iter()
            .map(|(name, e)| {
                let v = json!({"version": e.version, "payload": e.payload, "schema": e.schema});
                (name.clone(), v)
            })
            .collect();
        crate::schema::pretty(&json!({"format": BASELINE_FORMAT, "events": events}))
    }

    /// Reads a baseline file's text; errors name the line and column, or the entry and key.
    pub fn from_json(text: &str) -> Result<Self, BaselineError> {
        let value: Value = serde_json::from_str(text).map_err(|e| BaselineError {
            place: format!("line {} column {}", e.line(), e.column()),
            reason: format!("not JSON: {e}"),
        })?;
        let bad = |place: &str, reason: &str| BaselineError {
            place: place.to_owned(),
            reason: reason.to_owned(),
        };
        match value.get("format").and_then(Value::as_str) {
            Some(BASELINE_FORMAT) => {}
            Some(other) => {
                return Err(bad(
                    "`format`",
                    &format!("is `{other}`, expected `{BASELINE_FORMAT}`"),
                ))
            }
            None => {
                return Err(bad(
                    "`format`",
                    &format!("missing; expected `{BASELINE_FORMAT}`"),
                ))
            }
        }
        let events = value
            .get("events")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("`events`", "missing or not an object"))?;
        let mut out = BTreeMap::new();
        for (name, entry) in events {
            let place = format!("`events.{name}`");
            let version = entry
                .get("version")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    bad(
                        &place,
                        "`version` missing or not a small non-negative integer",
                    )
                })?;
            let payload = entry
                .get("payload")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&place, "`payload` missing or not a string"))?
                .to_owned();
            let schema = entry
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| bad(&place, "`schema` missing or not an object"))?
                .clone();
            out.insert(
                name.clone(),
                BaselineEntry {
                    version,
                    payload,
                    schema,
                },
            );
        }
        Ok(Baseline { events: out })
    }
}

/// The outcome of comparing a baseline with the current schemas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Events compared field by field.
    pub compared: usize,
    /// Events skipped because their version changed: (event, baseline version, current version).
    pub version_changed: Vec<(String, u32, u32)>,
    /// Events new since the baseline.
    pub added: Vec<String>,
    /// Every breaking change found.
    pub breaking: Vec<Breaking>,
}

/// Compares `current` against `baseline`.
pub fn compare(baseline: &Baseline, current: &Baseline) -> Report {
    let mut report = Report::default();
    for (name, old) in &baseline.events {
        let Some(new) = current.events.get(name) else {
            report.breaking.push(Breaking {
                event: name.clone(),
                field: "(payload)".into(),
                rule: Rule::RemovedEvent,
                detail: format!("{} v{} is no longer registered", old.payload, old.version),
            });
            continue;
        };
        if old.version != new.version {
            report
                .version_changed
                .push((name.clone(), old.version, new.version));
            continue;
        }
        report.compared += 1;
        for (field, rule, detail) in compare_schemas(&old.schema, &new.schema) {
            report.breaking.push(Breaking {
                event: name.clone(),
                field,
                rule,
                detail,
            });
        }
    }
    report.added = current
        .events
        .keys()
        .filter(|n| !baseline.events.contains_key(*n))
        .cloned()
        .collect();
    report
}

/// Compares two self-contained schemas; returns (field path, rule, detail) for each breaking change.
pub fn compare_schemas(old: &Value, new: &Value) -> Vec<(String, Rule, String)> {
    let mut walk = Walk {
        old_root: old,
        new_root: new,
        stack: Vec::new(),
        out: Vec::new(),
    };
    walk.node(old, new, "");
    walk.out
}

/// A schema node with `$ref`, single `allOf` and `anyOf [T, null]` resolved.
struct Node<'a> {
    /// The keywords of the resolved schema and of the wrappers around it (outer ones win).
    keys: Map<String, Value>,
    /// The referenced definitions passed through, for cycle detection.
    refs: Vec<&'a str>,
    /// Whether `null` is admitted by an `anyOf` wrapper.
    null_alt: bool,
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> Node<'a> {
    let mut node = Node {
        keys: Map::new(),
        refs: Vec::new(),
        null_alt: false,
    };
    let mut current = schema;
    for _ in 0..16 {
        let Some(obj) = current.as_object() else {
            break;
        };
        for (k, v) in obj {
            if !matches!(k.as_str(), "$ref" | "allOf" | "anyOf") {
                node.keys.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            node.refs.push(name);
            match root.get("definitions").and_then(|d| d.get(name)) {
                Some(target) => current = target,
                None => break,
            }
        } else if let Some([only]) = obj
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            current = only;
        } else if let Some(alts) = obj.get("anyOf").and_then(Value::as_array) {
            let (nulls, others): (Vec<&Value>, Vec<&Value>) = alts
                .iter()
                .partition(|a| a.get("type") == Some(&json!("null")));
            match others.as_slice() {
                [only] if !nulls.is_empty() => {
                    node.null_alt = true;
                    current = only;
                }
                _ => {
                    node.keys.insert("anyOf".into(), Value::Array(alts.clone()));
                    break;
                }
            }
        } else {
            break;
        }
    }
    node
}

/// The set of JSON types a resolved node admits.
fn types(node: &Node<'_>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match node.keys.get("type") {
        Some(Value::String(t)) => {
            out.insert(t.clone());
        }
        Some(Value::Array(ts)) => {
            out.extend(ts.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        _ => {
            if node.keys.contains_key("properties") {
                out.insert("object".into());
            }
        }
    }
    if node.null_alt {
        out.insert("null".into());
    }
    out
}

fn show_types(t: &BTreeSet<String>) -> String {
    if t.is_empty() {
        "any".into()
    } else {
        t.iter().cloned().collect::<Vec<_>>().join("|")
    }
}

/// Lower bounds: a higher value is narrower. Upper bounds: a lower value is narrower.
const LOWER_BOUNDS: [&str; 5] = [
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
const UPPER_BOUNDS: [&str; 5] = [
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];
/// Keywords that can only be compared for equality: adding or changing one narrows.
const EXACT: [&str; 4] = ["pattern", "format", "const", "multipleOf"];

struct Walk<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    stack: Vec<(String, String)>,
    out: Vec<(String, Rule, String)>,
}

impl<'a> Walk<'a> {
    fn report(&mut self, path: &str, rule: Rule, detail: String) {
        let field = if path.is_empty() { "(payload)" } else { path };
        self.out.push((field.to_owned(), rule, detail));
    }

    fn node(&mut self, old: &Value, new: &Value, path: &str) {
        let (o, n) = (resolve(self.old_root, old), resolve(self.new_root, new));
        let key = (o.refs.join("/"), n.refs.join("/"));
        if !key.0.is_empty() && self.stack.contains(&key) {
            return;
        }
        let (ot, nt) = (types(&o), types(&n));
        if ot != nt {
            let detail = format!("{} → {}", show_types(&ot), show_types(&nt));
            self.report(path, Rule::ChangedType, detail);
            return;
        }
        self.stack.push(key);
        self.constraints(&o, &n, path);
        self.enums(&o, &n, path);
        self.object(&o, &n, path);
        self.children(&o, &n, path);
        self.stack.pop();
    }

    fn constraints(&mut self, o: &Node<'_>, n: &Node<'_>, path: &str) {
        let num = |node: &Node<'_>, k: &str| node.keys.get(k).and_then(Value::as_f64);
        for (keys, narrower) in [
            (
                &LOWER_BOUNDS,
                (|old: f64, new: f64| new > old) as fn(f64, f64) -> bool,
            ),
            (&UPPER_BOUNDS, |old: f64, new: f64| new < old),
        ] {
            for k in keys.iter() {
                match (num(o, k), num(n, k)) {
                    (None, Some(new)) => {
                        self.report(path, Rule::NarrowedConstraint, format!("{k} {new} added"))
                    }
                    (Some(old), Some(new)) if narrower(old, new) => {
                        self.report(path, Rule::NarrowedConstraint, format!("{k} {old} → {new}"))
                    }
                    _ => {}
                }
            }
        }
        for k in EXACT {
            match (o.keys.get(k), n.keys.get(k)) {
                (None, Some(new)) => {
                    self.report(path, Rule::NarrowedConstraint, format!("{k} {new} added"))
                }
                (Some(old), Some(new)) if old != new => {
                    self.report(path, Rule::NarrowedConstraint, format!("{k} {old} → {new}"))
                }
                _ => {}
            }
        }
        let closed = |node: &Node<'_>| node.keys.get("additionalProperties") == Some(&json!(false));
        if !closed(o) && closed(n) {
            self.report(
                path,
                Rule::NarrowedConstraint,
                "additionalProperties closed".into(),
            );
        }
        for k in ["oneOf", "anyOf"] {
            if o.keys.get(k) != n.keys.get(k) && n.keys.contains_key(k) {
                let detail = format!("cross-field rule `{k}` added or changed");
                self.report(path, Rule::NarrowedConstraint, detail);
            }
        }
    }

    fn enums(&mut self, o: &Node<'_>, n: &Node<'_>, path: &str) {
        match (
            o.keys.get("enum").and_then(Value::as_array),
            n.keys.get("enum").and_then(Value::as_array),
        ) {
            (Some(old), Some(new)) => {
                for v in old.iter().filter(|v| !new.contains(v)) {
                    self.report(path, Rule::RemovedEnumValue, format!("{v} removed"));
                }
            }
            (None, Some(new)) => self.report(
                path,
                Rule::NarrowedConstraint,
                format!("enum of {} values added", new.len()),
            ),
            _ => {}
        }
    }

    fn object(&mut self, o: &Node<'_>, n: &Node<'_>, path: &str) {
        let empty = Map::new();
        let required = |node: &Node<'_>| -> BTreeSet<String> {
            node.keys
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let op = o
            .keys
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let np = n
            .keys
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let (or, nr) = (required(o), required(n));
        let child = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        for name in op.keys().filter(|k| !np.contains_key(*k)) {
            let was = show_types(&types(&resolve(self.old_root, &op[name])));
            self.report(&child(name), Rule::RemovedField, format!("was {was}"));
        }
        for name in nr.iter().filter(|r| !or.contains(*r)) {
            let detail = if op.contains_key(name) {
                "optional → required"
            } else {
                "added as required"
            };
            self.report(&child(name), Rule::NewRequiredField, detail.into());
        }
        for (name, old_prop) in op {
            if let Some(new_prop) = np.get(name) {
                self.node(old_prop, new_prop, &child(name));
            }
        }
    }

    fn children(&mut self, o: &Node<'_>, n: &Node<'_>, path: &str) {
        for (k, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
            if let (Some(old), Some(new)) = (o.keys.get(k), n.keys.get(k)) {
                if old.is_object() && new.is_object() {
                    self.node(old, new, &format!("{path}{suffix}"));
                }
            }
        }
    }
}
