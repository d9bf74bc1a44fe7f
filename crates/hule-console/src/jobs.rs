//! Replays running in the background: one at a time on a console (replays fence each other), with progress a page
//! shows and a cancel.
//!
//! A replay job opens the transactional [`Replayer`] (fencing any other replay, from the CLI or another console),
//! reads the ledger after that fence, plans the group's dead letters against it (what the ledger has is left out),
//! and sends the records in order, each batch and its ledger entries in one transaction; with a rate, one record per
//! transaction. A double click, a second operator or a restart therefore never sends a dead letter twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hule_contracts::Timestamp;
use hule_kafka::replay::{self, PlanOptions, Replayer};
use tokio_util::sync::CancellationToken;

use crate::data::Data;
use crate::index::Index;
use crate::store::Store;
use hule_kafka::dlq::DlqMessage;

/// Where a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Sending.
    Running,
    /// Every record sent.
    Done,
    /// Stopped by an operator.
    Cancelled,
    /// Stopped by an error (what was sent is in the ledger).
    Failed(String),
}

/// One replay job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id (the ledger's replay id too).
    pub id: String,
    /// Who started it.
    pub user: String,
    /// The fingerprint replayed.
    pub fingerprint: String,
    /// Records to send.
    pub total: usize,
    /// Records sent.
    pub sent: usize,
    /// Dead letters the ledger already had (left out).
    pub already: usize,
    /// Where it is.
    pub state: State,
    /// When it started.
    pub started: Instant,
}

/// The jobs of this console.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, (Job, CancellationToken)>>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Job, CancellationToken)>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job's state.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.lock().get(id).map(|(j, _)| j.clone())
    }

    /// Every job, newest first.
    pub fn all(&self) -> Vec<Job> {
        let mut v: Vec<Job> = self.lock().values().map(|(j, _)| j.clone()).collect();
        v.sort_by_key(|j| std::cmp::Reverse(j.started));
        v
    }

    /// Asks job `id` to stop after its current batch.
    pub fn cancel(&self, id: &str) -> bool {
        self.lock().get(id).map(|(_, c)| c.cancel()).is_some()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some((j, _)) = self.lock().get_mut(id) {
            f(j);
        }
    }

    /// Starts replaying fingerprint `fingerprint` (the running job, if there is one).
    pub fn start(
        self: &Arc<Self>,
        data: Arc<Data>,
        store: Arc<Store>,
        index: Arc<Index>,
        user: &str,
        fingerprint: &str,
        options: Options,
    ) -> String {
        // Replays fence each other (one transactional id): one at a time on this console. A request while one runs
        // gets that one; the check and the insert happen under one lock.
        let mut jobs = self.lock();
        if let Some((j, _)) = jobs.values().find(|(j, _)| j.state == State::Running) {
            return j.id.clone();
        }
        let id = uuid::Uuid::new_v4().to_string();
        let cancel = CancellationToken::new();
        let job = Job {
            id: id.clone(),
            user: user.to_owned(),
            fingerprint: fingerprint.to_owned(),
            total: 0,
            sent: 0,
            already: 0,
            state: State::Running,
            started: Instant::now(),
        };
        jobs.insert(id.clone(), (job, cancel.clone()));
        drop(jobs);
        let jobs = self.clone();
        let (job_id, user, fingerprint) = (id.clone(), user.to_owned(), fingerprint.to_owned());
        tokio::spawn(async move {
            let outcome = run(
                &jobs,
                &data,
                &index,
                &job_id,
                &user,
                &fingerprint,
                options,
                &cancel,
            )
            .await;
            let state = match outcome {
                Ok(()) if cancel.is_cancelled() => State::Cancelled,
                Ok(()) => State::Done,
                Err(e) => State::Failed(e),
            };
            let job = jobs.get(&job_id);
            let sent = job.as_ref().map_or(0, |j| j.sent);
            let result = match &state {
                State::Failed(e) => format!("failed: {e}"),
                other => format!("{other:?}").to_lowercase(),
            };
            store.audit(&user, "replay", &fingerprint, sent as i64, &result);
            jobs.update(&job_id, |j| j.state = state);
            data.invalidate().await;
        });
        id
    }
}

/// The dead letters of `fingerprint` the archive holds; an index that cannot be read is an error, never "none".
pub async fn archived(index: &Arc<Index>, fingerprint: &str) -> Result<HashSet<String>, String> {
    let (index, fp) = (index.clone(), fingerprint.to_owned());
    tokio::task::spawn_blocking(move || {
        let ids: Vec<String> = index
            .group_records(&fp, 0, i64::MAX)?
            .iter()
            .map(crate::index::Hit::id)
            .collect();
        Ok::<_, crate::index::IndexError>(
            index
                .dispositions(&ids)?
                .into_iter()
                .filter(|(_, d)| d.archived.is_some())
                .map(|(id, _)| id)
                .collect(),
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("the archive cannot be read: {e}"))
}

/// The keys whose earlier dead letters (same dead-letter partition, lower offset) a selection would leave behind:
/// neither selected, nor archived, nor already replayed. Replaying the selection would send a key's later record
/// before its earlier one.
pub fn held_back(
    group: &[&DlqMessage],
    selected: &HashSet<String>,
    archived: &HashSet<String>,
    replayed: impl Fn(&DlqMessage) -> bool,
) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for m in group.iter().filter(|m| selected.contains(&m.id())) {
        let earlier_left = group.iter().any(|o| {
            o.key == m.key
                && o.topic == m.topic
                && o.partition == m.partition
                && o.offset < m.offset
                && !selected.contains(&o.id())
                && !archived.contains(&o.id())
                && !replayed(o)
        });
        let key = m
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        if earlier_left && !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The dead letters a replay of `fingerprint` sends from `snapshot`: the group's, or the selection `only`, less the
/// archived ones; and how many archived ones were left out. A selection that would send a key's records out of
/// order is refused.
pub async fn choose(
    index: &Arc<Index>,
    snapshot: &crate::data::Snapshot,
    fingerprint: &str,
    only: Option<&HashSet<String>>,
) -> Result<(Vec<DlqMessage>, usize), String> {
    let archived = archived(index, fingerprint).await?;
    let group: Vec<&DlqMessage> = snapshot.of_group(fingerprint).collect();
    if let Some(selected) = only {
        let keys = held_back(&group, selected, &archived, |m| {
            snapshot.replayed(m).is_some()
        });
        if !keys.is_empty() {
            return Err(format!(
                "the selection would send records of key(s) {} before earlier dead letters of the same key(s); \
                 select those too, or archive them first",
                keys.join(", ")
            ));
        }
    }
    let left_out = group.iter().filter(|m| archived.contains(&m.id())).count();
    let letters = group
        .into_iter()
        .filter(|m| only.is_none_or(|o| o.contains(&m.id())) && !archived.contains(&m.id()))
        .cloned()
        .collect();
    Ok((letters, left_out))
}

impl Jobs {
    /// Whether a replay of `fingerprint` is running on this console.
    pub fn running(&self, fingerprint: &str) -> bool {
        self.lock()
            .values()
            .any(|(j, _)| j.state == State::Running && j.fingerprint == fingerprint)
    }
}

/// How a replay runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Records per second (one per transaction), or as fast as batches go.
    pub rate: Option<f64>,
    /// The ledger's note.
    pub note: Option<String>,
    /// Only these dead letters of the group (`topic:partition:offset`).
    pub only: Option<HashSet<String>>,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    jobs: &Jobs,
    data: &Data,
    index: &Arc<Index>,
    id: &str,
    user: &str,
    fingerprint: &str,
    options: Options,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let Options { rate, note, only } = options;
    let kafka = data.kafka().clone();
    let timeout = Duration::from_secs(10);
    replay::ensure_ledger(&kafka, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let replayer = Replayer::open(&kafka, timeout)
        .await
        .map_err(|e| e.to_string())?;
    // After the fence: the snapshot read now has everything any other replay committed.
    data.invalidate().await;
    let snapshot = data.snapshot().await?;
    // Archived dead letters are left out; so is what the selection does not name.
    let (letters, _) = choose(index, &snapshot, fingerprint, only.as_ref()).await?;
    let mut plan = replay::plan(
        &letters,
        &snapshot.letters,
        &snapshot.ledger,
        &PlanOptions {
            again: false,
            limit: None,
            replay_id: id.to_owned(),
            by: format!("{user} (console)"),
            note,
            now: Timestamp::from_datetime(chrono::Utc::now()),
            reencode: false,
        },
    );
    let total = plan.records.len();
    jobs.update(id, |j| {
        j.total = total;
        j.already = plan.already.len();
    });
    let started = Instant::now();
    let batch = if rate.is_some() { 1 } else { 100 };
    for (n, chunk) in plan.records.chunks_mut(batch).enumerate() {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if let Some(per_second) = rate {
            let due = Duration::try_from_secs_f64(n as f64 / per_second).unwrap_or(Duration::MAX);
            if let Some(at) = started.checked_add(due) {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = cancel.cancelled() => return Ok(()),
                }
            }
        }
        replayer.send(chunk).await.map_err(|e| e.to_string())?;
        let sent = chunk.len();
        jobs.update(id, |j| j.sent += sent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(offset: i64, key: &str) -> DlqMessage {
        DlqMessage {
            topic: "t.dlq.v1".into(),
            partition: 0,
            offset,
            key: Some(key.as_bytes().to_vec()),
            headers: Default::default(),
            record: Err("not needed".into()),
        }
    }

    #[test]
    fn a_selection_that_skips_an_earlier_record_of_its_key_is_held_back() {
        let (a0, b1, a2, a3) = (
            letter(0, "a"),
            letter(1, "b"),
            letter(2, "a"),
            letter(3, "a"),
        );
        let group = vec![&a0, &b1, &a2, &a3];
        let ids = |v: &[&DlqMessage]| v.iter().map(|m| m.id()).collect::<HashSet<_>>();
        let none = HashSet::new();
        // a2 without a0: held back; with a0, or a0 archived, or a0 replayed: fine; b alone: fine.
        assert_eq!(
            held_back(&group, &ids(&[&a2]), &none, |_| false),
            vec!["a".to_owned()]
        );
        assert!(held_back(&group, &ids(&[&a0, &a2]), &none, |_| false).is_empty());
        assert!(held_back(&group, &ids(&[&a2]), &ids(&[&a0]), |_| false).is_empty());
        assert!(held_back(&group, &ids(&[&a2]), &none, |m| m.offset == 0).is_empty());
        assert!(held_back(&group, &ids(&[&b1]), &none, |_| false).is_empty());
        // The last of a key selected alone leaves two behind.
        assert_eq!(
            held_back(&group, &ids(&[&a3]), &none, |_| false),
            vec!["a".to_owned()]
        );
    }
}
