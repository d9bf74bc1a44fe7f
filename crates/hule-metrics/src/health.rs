//! The health board: each part of a process (the relay's database, its leadership, the consumer's broker
//! connection) reports whether it is well and a short detail; `/healthz` answers 200 when every part is well,
//! 503 otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    ok: bool,
    detail: String,
    /// Whether it has been well at least once (a part starting up unwell is not an outage).
    was_well: bool,
}

#[derive(Debug, Default)]
struct Board {
    parts: BTreeMap<String, Check>,
    /// The outage in progress: since when, and every part it touched.
    outage: Option<(Instant, BTreeSet<String>)>,
}

/// Health of the parts of a process. Cheap to clone (shared); updating a part to the state it already has takes
/// only a read lock.
///
/// The board also logs outages for the whole process (target `hule::health`): one warning when a part that was
/// well turns unwell while everything else is well, one line when every part is well again, with the outage's
/// length and the parts it touched. A part that starts up unwell is not an outage; parts that flap during an
/// outage add nothing.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<RwLock<Board>>);

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
            .parts
            .get(part)
            .is_some_and(|c| c.ok == ok && c.detail == detail);
        if same {
            return;
        }
        let mut board = self.0.write().unwrap_or_else(|p| p.into_inner());
        let was_well = ok || board.parts.get(part).is_some_and(|c| c.was_well);
        let turned_unwell = !ok && board.parts.get(part).is_some_and(|c| c.ok);
        if turned_unwell {
            match &mut board.outage {
                Some((_, touched)) => {
                    touched.insert(part.to_owned());
                }
                None => {
                    tracing::warn!(target: "hule::health", part, %detail, "unwell; retrying");
                    board.outage = Some((Instant::now(), BTreeSet::from([part.to_owned()])));
                }
            }
        }
        board.parts.insert(
            part.to_owned(),
            Check {
                ok,
                detail,
                was_well,
            },
        );
        // Over when every part that has been well is well again.
        if board.outage.is_some() && board.parts.values().all(|c| c.ok || !c.was_well) {
            if let Some((since, touched)) = board.outage.take() {
                let parts = touched.into_iter().collect::<Vec<_>>().join(", ");
                tracing::info!(target: "hule::health", outage = ?since.elapsed(), %parts, "well again");
            }
        }
    }

    /// Forgets `part` (it stopped).
    pub fn remove(&self, part: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .parts
            .remove(part);
    }

    /// The current state.
    pub fn report(&self) -> HealthReport {
        let board = self.0.read().unwrap_or_else(|p| p.into_inner());
        HealthReport {
            ok: board.parts.values().all(|c| c.ok),
            parts: board
                .parts
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

    /// Collects the `hule::health` lines.
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _cx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
            let mut m = Message(event.metadata().level().to_string());
            event.record(&mut m);
            self.0.lock().expect("lock").push(m.0);
        }
    }

    #[test]
    fn an_outage_is_one_warning_and_one_recovery_line_and_starting_up_is_silent() {
        use tracing_subscriber::layer::SubscriberExt;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Lines(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let h = Health::default();
            h.set("kafka", false, "joining the group");
            h.set("kafka", true, "in the group");
            assert!(
                lines.lock().expect("lock").is_empty(),
                "starting up is not an outage"
            );
            h.set("kafka", false, "broker transport failure");
            h.set("kafka", false, "all brokers down");
            h.set("kafka", false, "broker transport failure");
            h.set("kafka", true, "receiving");
            h.set("kafka", true, "receiving");
        });
        let lines = lines.lock().expect("lock").clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("WARN") && lines[0].contains("broker transport failure"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("INFO")
                && lines[1].contains("well again")
                && lines[1].contains("outage"),
            "{lines:?}"
        );
    }
}
