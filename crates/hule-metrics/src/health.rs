//! The health board: each part of a process (the relay's database, its leadership, the consumer's broker
//! connection) reports whether it is well and a short detail; `/healthz` answers 200 when every part is well,
//! 503 otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    ok: bool,
    detail: String,
}

/// Health of the parts of a process. Cheap to clone (shared); updating a part to the state it already has takes
/// only a read lock.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<RwLock<BTreeMap<String, Check>>>);

/// A snapshot of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Every part is well (true when no part has reported).
    pub ok: bool,
    /// Each part: name, well or not, detail.
    pub parts: Vec<(String, bool, String)>,
}

impl Health {
    /// Sets `part`'s state.
    pub fn set(&self, part: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let same = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(part)
            .is_some_and(|c| c.ok == ok && c.detail == detail);
        if !same {
            self.0
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(part.to_owned(), Check { ok, detail });
        }
    }

    /// Forgets `part` (it stopped).
    pub fn remove(&self, part: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(part);
    }

    /// The current state.
    pub fn report(&self) -> HealthReport {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        HealthReport {
            ok: map.values().all(|c| c.ok),
            parts: map
                .iter()
                .map(|(k, c)| (k.clone(), c.ok, c.detail.clone()))
                .collect(),
        }
    }
}

impl HealthReport {
    /// `{"status":"ok"|"unavailable","parts":{"relay":{"ok":true,"detail":"leading"},…}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let parts: serde_json::Map<String, serde_json::Value> = self
            .parts
            .iter()
            .map(|(k, ok, detail)| (k.clone(), serde_json::json!({"ok": ok, "detail": detail})))
            .collect();
        serde_json::json!({
            "status": if self.ok { "ok" } else { "unavailable" },
            "parts": parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unwell_part_makes_the_process_unwell() {
        let h = Health::default();
        assert!(h.report().ok);
        h.set("database", true, "connected");
        h.set("leadership", false, "standby: another relay leads");
        let r = h.report();
        assert!(!r.ok);
        assert_eq!(r.to_json()["status"], "unavailable");
        assert_eq!(r.to_json()["parts"]["database"]["detail"], "connected");
        h.set("leadership", true, "leading");
        assert!(h.report().ok);
        h.remove("leadership");
        assert_eq!(h.report().parts.len(), 1);
    }
}
