//! The five reference services. Each handler reads its typed payload, decides what to publish, commits those
//! events to its own outbox in one transaction, then updates its in-memory state. State lives in memory for the
//! demo; what crosses service boundaries travels only as events (and essay texts through the shared
//! [`ContentStore`], which stands in for the Content Service).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hule_consumer::{Context, HandlerError, Router, TopicChoice};
use hule_contracts::examples::example_json;
use hule_contracts::payloads::*;
use hule_contracts::{Payload, Timestamp};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cj;
use crate::outbox::{rows, Writer};
use crate::spell::SpellChecker;

/// Essay texts by storage id, and the hidden qualities the judge may see.
#[derive(Debug, Default)]
pub struct ContentStore {
    texts: Mutex<HashMap<String, String>>,
    qualities: Mutex<HashMap<String, f64>>,
}

impl ContentStore {
    /// Stores a text.
    pub fn put(&self, id: &str, text: String) {
        lock(&self.texts).insert(id.to_owned(), text);
    }
    /// A stored text.
    pub fn get(&self, id: &str) -> Option<String> {
        lock(&self.texts).get(id).cloned()
    }
    /// Records an essay's hidden quality.
    pub fn set_quality(&self, essay: &str, q: f64) {
        lock(&self.qualities).insert(essay.to_owned(), q);
    }
    /// An essay's hidden quality.
    pub fn quality(&self, essay: &str) -> Option<f64> {
        lock(&self.qualities).get(essay).copied()
    }
}

/// Locks a mutex, recovering from poisoning (state updates are single assignments).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> Value {
    json!(Timestamp::from_datetime(chrono::Utc::now()))
}

/// Builds a payload from the registry's example with top-level fields replaced; validates like a consumer would.
pub fn build<P: Payload>(overrides: Value) -> Result<P, HandlerError> {
    let text = example_json(P::EVENT).ok_or_else(|| HandlerError::permanent("no example"))?;
    let mut base: Value = serde_json::from_str(&text).map_err(HandlerError::permanent)?;
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), overrides) {
        for (k, v) in o {
            b.insert(k, v);
        }
    }
    serde_json::from_value(base)
        .map_err(|e| HandlerError::permanent(format!("building {:?}: {e}", P::EVENT)))
}

/// A payload as JSON, for reading fields by name.
fn view<P: Payload>(p: &P) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

fn text(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn processed(essays: &[(String, String)]) -> Value {
    Value::Array(
        essays
            .iter()
            .map(|(id, storage)| json!({"essay_id": id, "text_storage_id": storage, "spellcheck_metrics": null}))
            .collect(),
    )
}

/// Counters the progress display and the report read.
#[derive(Debug, Default)]
pub struct Progress {
    /// Batches registered by the orchestrator.
    pub registered: AtomicU64,
    /// Essays spellchecked.
    pub spellchecked: AtomicU64,
    /// Batches assessed by CJ.
    pub assessed: AtomicU64,
    /// Batches whose results are ready (seen by the observer).
    pub ready: AtomicU64,
}

/// Shared by all services.
pub struct Shared {
    /// Essay texts.
    pub content: ContentStore,
    /// Progress counters.
    pub progress: Progress,
}

// ---------------------------------------------------------------------------------------------------------------
// Batch orchestrator
// ---------------------------------------------------------------------------------------------------------------

/// Registers one batch: `BATCH_ESSAYS_REGISTERED` and the spellcheck pipeline command, in one transaction.
pub async fn register_batch(
    writer: &Writer,
    shared: &Shared,
    batch_id: &str,
    essays: &[crate::essays::Essay],
) -> Result<Uuid, HandlerError> {
    let correlation = Uuid::new_v4();
    let mut listed = Vec::new();
    for e in essays {
        let storage = format!("text-{}", e.id);
        shared.content.put(&storage, e.text.clone());
        shared.content.set_quality(&e.id, e.quality);
        listed.push((e.id.clone(), storage));
    }
    let ids: Vec<&str> = essays.iter().map(|e| e.id.as_str()).collect();
    let registered: BatchEssaysRegistered = build(json!({
        "entity_id": batch_id,
        "expected_essay_count": essays.len(),
        "essay_ids": ids,
        "metadata": {"entity_id": batch_id, "entity_type": "batch", "parent_id": null, "timestamp": now(),
                      "processing_stage": "pending", "started_at": now(), "completed_at": null,
                      "event": "batch.essays.registered", "error_info": {}},
        "user_id": format!("teacher-{}", &batch_id[6..]),
        "class_id": null,
    }))?;
    let command: BatchServiceSpellcheckInitiateCommandDataV1 = build(json!({
        "entity_id": batch_id,
        "timestamp": now(),
        "essays_to_process": processed(&listed),
    }))?;
    let mut all = rows(BOS, correlation, registered)?;
    all.extend(rows(BOS, correlation, command)?);
    writer.write(all).await?;
    shared.progress.registered.fetch_add(1, Ordering::SeqCst);
    Ok(correlation)
}

/// Service names (as `source_service` and consumer groups).
pub const BOS: &str = "batch_orchestrator_service";
/// Essay lifecycle.
pub const ELS: &str = "essay_lifecycle_service";
/// Spellchecker.
pub const SPELL: &str = "spellchecker_service";
/// CJ assessment.
pub const CJ: &str = "cj_assessment_service";
/// Result aggregator.
pub const RAS: &str = "result_aggregator_service";

// ---------------------------------------------------------------------------------------------------------------
// Essay lifecycle
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ElsBatch {
    essays: Vec<String>,
    spellchecked: HashMap<String, String>,
    spell_failed: HashSet<String>,
    registration: Option<(String, String)>,
    cj_requested: bool,
    cj_done: bool,
}

/// The essay lifecycle service's router.
pub fn els(writer: Arc<Writer>) -> Router {
    let state: Arc<Mutex<HashMap<String, ElsBatch>>> = Arc::default();
    let (s1, s2, s3, s4) = (state.clone(), state.clone(), state.clone(), state);
    let (w1, w2, w3, w4) = (writer.clone(), writer.clone(), writer.clone(), writer);
    Router::new()
        .on(TopicChoice::Standard, move |ctx: Context, p: BatchEssaysRegistered| {
            let (state, writer) = (s1.clone(), w1.clone());
            async move {
                let v = view(&p);
                let course = text(&v, "/course_code");
                lock(&state).entry(p.entity_id.clone()).or_default().registration = Some((p.user_id.clone(), course));
                // Spellchecking may have finished before the registration arrived (they travel on different topics).
                request_cj_when_ready(&state, &writer, &p.entity_id, ctx.correlation_id).await
            }
        })
        .on(TopicChoice::Standard, move |ctx: Context, p: BatchServiceSpellcheckInitiateCommandDataV1| {
            let (state, writer) = (s2.clone(), w2.clone());
            async move {
                let v = view(&p);
                let batch = text(&v, "/entity_id");
                let mut out = Vec::new();
                let mut essays = Vec::new();
                for e in v["essays_to_process"].as_array().cloned().unwrap_or_default() {
                    let id = text(&e, "/essay_id");
                    let req: EssayLifecycleSpellcheckRequestV1 = build(json!({
                        "entity_id": id, "parent_id": batch, "timestamp": now(),
                        "text_storage_id": text(&e, "/text_storage_id"),
                        "system_metadata": {"entity_id": id, "entity_type": "essay", "parent_id": batch,
                            "timestamp": now(), "processing_stage": "pending", "started_at": now(),
                            "completed_at": null, "event": "essay.spellcheck.requested", "error_info": {}},
                    }))?;
                    out.extend(rows(ELS, ctx.correlation_id, req)?);
                    essays.push(id);
                }
                writer.write(out).await?;
                lock(&state).entry(batch).or_default().essays = essays;
                Ok(())
            }
        })
        .on(TopicChoice::Standard, move |ctx: Context, p: SpellcheckPhaseCompletedV1| {
            let (state, writer) = (s3.clone(), w3.clone());
            async move {
                {
                    let mut st = lock(&state);
                    let b = st.entry(p.batch_id.clone()).or_default();
                    if p.status == hule_contracts::enums::ProcessingStatus::Completed {
                        b.spellchecked.insert(p.entity_id.clone(), p.corrected_text_storage_id.clone().unwrap_or_default());
                    } else {
                        b.spell_failed.insert(p.entity_id.clone());
                    }
                }
                request_cj_when_ready(&state, &writer, &p.batch_id, ctx.correlation_id).await
            }
        })
        .on(TopicChoice::Standard, move |ctx: Context, p: CjAssessmentCompletedV1| {
            let (state, writer) = (s4.clone(), w4.clone());
            async move {
                let v = view(&p);
                let batch = text(&v, "/entity_id");
                if lock(&state).get(&batch).is_some_and(|b| b.cj_done) {
                    return Ok(());
                }
                let ids = v.pointer("/processing_summary/successful_essay_ids").cloned().unwrap_or(json!([]));
                let essays: Vec<(String, String)> = ids.as_array().into_iter().flatten()
                    .filter_map(|i| i.as_str()).map(|i| (i.to_owned(), format!("corr-{i}"))).collect();
                let outcome: ElsBatchPhaseOutcomeV1 = build(json!({
                    "batch_id": batch, "phase_name": "cj_assessment", "phase_status": "completed_successfully",
                    "processed_essays": processed(&essays), "failed_essay_ids": [],
                    "correlation_id": ctx.correlation_id.to_string(),
                }))?;
                writer.write(rows(ELS, ctx.correlation_id, outcome)?).await?;
                lock(&state).entry(batch).or_default().cj_done = true;
                Ok(())
            }
        })
}

/// Publishes the spellcheck phase outcome and the CJ request once every essay of the batch is spellchecked and
/// the registration is known, whichever arrives last. The batch is marked before the write (so two handlers racing
/// here publish once) and unmarked if the write fails (so the retry publishes).
async fn request_cj_when_ready(
    state: &Mutex<HashMap<String, ElsBatch>>,
    writer: &Writer,
    batch: &str,
    correlation: Uuid,
) -> Result<(), HandlerError> {
    let (ready, user, course, failed) = {
        let mut st = lock(state);
        let b = st.entry(batch.to_owned()).or_default();
        let complete = !b.essays.is_empty()
            && b.essays
                .iter()
                .all(|e| b.spellchecked.contains_key(e) || b.spell_failed.contains(e));
        let Some((user, course)) = b.registration.clone() else {
            return Ok(());
        };
        if !complete || b.cj_requested {
            return Ok(());
        }
        b.cj_requested = true;
        let done: Vec<(String, String)> = b
            .essays
            .iter()
            .filter_map(|e| b.spellchecked.get(e).map(|s| (e.clone(), s.clone())))
            .collect();
        let failed: Vec<String> = b.spell_failed.iter().cloned().collect();
        (done, user, course, failed)
    };
    let result = async {
        let outcome: ElsBatchPhaseOutcomeV1 = build(json!({
            "batch_id": batch, "phase_name": "spellcheck",
            "phase_status": if failed.is_empty() { "completed_successfully" } else { "completed_with_failures" },
            "processed_essays": processed(&ready), "failed_essay_ids": failed,
            "correlation_id": correlation.to_string(),
        }))?;
        let request: ElsCjAssessmentRequestV1 = build(json!({
            "entity_id": batch, "timestamp": now(),
            "system_metadata": {"entity_id": batch, "entity_type": "batch", "parent_id": null,
                "timestamp": now(), "processing_stage": "processing", "started_at": now(),
                "completed_at": null, "event": null, "error_info": {}},
            "essays_for_cj": processed(&ready), "course_code": course, "user_id": user,
        }))?;
        let mut all = rows(ELS, correlation, outcome)?;
        all.extend(rows(ELS, correlation, request)?);
        writer.write(all).await
    }
    .await;
    if result.is_err() {
        lock(state)
            .entry(batch.to_owned())
            .or_default()
            .cj_requested = false;
    }
    result
}

// ---------------------------------------------------------------------------------------------------------------
// Spellchecker
// ---------------------------------------------------------------------------------------------------------------

/// The spellchecker's router: publishes the thin phase event and the rich results together.
pub fn spellchecker(writer: Arc<Writer>, shared: Arc<Shared>) -> Router {
    let checker = Arc::new(SpellChecker::default());
    Router::new().on(TopicChoice::Standard, move |ctx: Context, p: EssayLifecycleSpellcheckRequestV1| {
        let (writer, shared, checker) = (writer.clone(), shared.clone(), checker.clone());
        async move {
            let started = std::time::Instant::now();
            let v = view(&p);
            let essay = text(&v, "/entity_id");
            let batch = text(&v, "/parent_id");
            let storage = text(&v, "/text_storage_id");
            let original = shared
                .content
                .get(&storage)
                .ok_or_else(|| HandlerError::permanent(format!("text {storage} of {essay} not found")))?;
            let checked = checker.check(&original);
            let corrected_id = format!("corr-{essay}");
            shared.content.put(&corrected_id, checked.corrected.clone());
            let ms = started.elapsed().as_millis() as i64;
            let thin: SpellcheckPhaseCompletedV1 = build(json!({
                "entity_id": essay, "batch_id": batch, "correlation_id": ctx.correlation_id.to_string(),
                "status": "completed", "corrected_text_storage_id": corrected_id, "error_code": null,
                "processing_duration_ms": ms, "timestamp": now(),
            }))?;
            let words = checked.words.max(1);
            let rich: SpellcheckResultV1 = build(json!({
                "entity_id": essay, "parent_id": batch, "timestamp": now(), "batch_id": batch,
                "correlation_id": ctx.correlation_id.to_string(),
                "system_metadata": {"entity_id": essay, "entity_type": "essay", "parent_id": batch,
                    "timestamp": now(), "processing_stage": "completed", "started_at": now(),
                    "completed_at": now(), "event": "spellcheck.results", "error_info": {}},
                "corrections_made": checked.corrections,
                "correction_metrics": {"total_corrections": checked.corrections, "l2_dictionary_corrections": 0,
                    "spellchecker_corrections": checked.corrections, "word_count": checked.words,
                    "correction_density": checked.corrections as f64 / words as f64},
                "original_text_storage_id": storage, "corrected_text_storage_id": corrected_id,
                "processing_duration_ms": ms, "processor_version": "hule_demo_norvig_1",
            }))?;
            let mut all = rows(SPELL, ctx.correlation_id, thin)?;
            all.extend(rows(SPELL, ctx.correlation_id, rich)?);
            writer.write(all).await?;
            shared.progress.spellchecked.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// CJ assessment
// ---------------------------------------------------------------------------------------------------------------

/// Comparisons per essay when a batch is too large for every pair.
pub const CJ_FULL_UP_TO: usize = 30;
/// Comparisons per essay beyond [`CJ_FULL_UP_TO`].
pub const CJ_PER_ESSAY: usize = 16;

/// The CJ service's router: thin completed + rich results + resource consumption, or only the thin failure.
pub fn cj_assessment(writer: Arc<Writer>, shared: Arc<Shared>, seed: u64) -> Router {
    Router::new().on(TopicChoice::Standard, move |ctx: Context, p: ElsCjAssessmentRequestV1| {
        let (writer, shared) = (writer.clone(), shared.clone());
        async move {
            let started = std::time::Instant::now();
            let v = view(&p);
            let batch = text(&v, "/entity_id");
            let essays: Vec<String> = v["essays_for_cj"].as_array().into_iter().flatten().map(|e| text(e, "/essay_id")).collect();
            let qualities: Vec<f64> = essays.iter().map(|e| shared.content.quality(e).unwrap_or(0.0)).collect();
            let pairs = cj::pairs(essays.len(), CJ_FULL_UP_TO, CJ_PER_ESSAY);
            let comps: Vec<cj::Comparison> = pairs.iter().map(|(a, b)| cj::judge(seed, &qualities, *a, *b, 1.7)).collect();
            let job = format!("cj-{batch}");
            let meta = |event: &str, status: Value| json!({"entity_id": batch, "entity_type": "batch", "parent_id": null,
                "timestamp": now(), "processing_stage": "completed", "started_at": now(), "completed_at": now(),
                "event": event, "error_info": status});
            let Some(fitted) = cj::fit(essays.len(), &comps) else {
                let failed: CjAssessmentFailedV1 = build(json!({
                    "entity_id": batch, "timestamp": now(), "cj_assessment_job_id": job,
                    "system_metadata": meta("cj_assessment.failed", json!({"error_code": "CJ_INSUFFICIENT_ESSAYS",
                        "error_message": format!("{} essays; at least 2 are needed", essays.len()),
                        "error_type": "InsufficientEssays", "context": {}})),
                }))?;
                writer.write(rows(CJ, ctx.correlation_id, failed)?).await?;
                return Ok(());
            };
            let scores: Vec<f64> = fitted.iter().map(|f| f.bt_score).collect();
            let norm = cj::normalize(&scores);
            let ranks = cj::ranks(&scores);
            let results: Vec<Value> = essays.iter().enumerate().map(|(i, id)| {
                let (conf, label) = cj::confidence(fitted[i].std_error);
                json!({"essay_id": id, "normalized_score": norm[i], "letter_grade": cj::grade(norm[i]),
                    "confidence_score": conf, "confidence_label": label, "bt_score": scores[i], "rank": ranks[i],
                    "is_anchor": false, "feedback_uri": null, "metrics_uri": null, "display_name": null})
            }).collect();
            let secs = started.elapsed().as_secs_f64();
            let completed: CjAssessmentCompletedV1 = build(json!({
                "entity_id": batch, "timestamp": now(), "cj_assessment_job_id": job,
                "system_metadata": meta("cj_assessment.completed", json!({})),
                "processing_summary": {"total_essays": essays.len(), "successful": essays.len(), "failed": 0,
                    "successful_essay_ids": essays, "failed_essay_ids": [], "processing_time_seconds": secs,
                    "single_essay_batch": false},
            }))?;
            let rich: AssessmentResultV1 = build(json!({
                "entity_id": batch, "timestamp": now(), "batch_id": batch, "cj_assessment_job_id": job,
                "model_used": "hule-demo-judge", "model_provider": "hule", "essay_results": results,
                "assessment_metadata": {"anchor_essays_used": 0, "calibration_method": "default",
                    "comparison_count": comps.len(), "processing_duration_seconds": secs,
                    "llm_temperature": 0.0, "assignment_id": null, "course_code": text(&v, "/course_code")},
                "assessed_at": now(),
            }))?;
            let usage: ResourceConsumptionV1 = build(json!({
                "entity_id": batch, "timestamp": now(), "user_id": text(&v, "/user_id"), "org_id": null,
                "resource_type": "cj_comparison", "quantity": comps.len(), "service_name": CJ,
                "processing_id": job, "consumed_at": now(),
            }))?;
            let mut all = rows(CJ, ctx.correlation_id, completed)?;
            all.extend(rows(CJ, ctx.correlation_id, rich)?);
            all.extend(rows(CJ, ctx.correlation_id, usage)?);
            writer.write(all).await?;
            shared.progress.assessed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Result aggregator
// ---------------------------------------------------------------------------------------------------------------

/// One essay's stored result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EssayResult {
    /// Rank in its batch (1 = best).
    pub rank: u64,
    /// The essay.
    pub essay_id: String,
    /// Bradley-Terry score.
    pub bt_score: f64,
    /// Normalised score.
    pub normalized_score: f64,
    /// Grade.
    pub grade: String,
    /// Confidence.
    pub confidence: f64,
    /// Confidence label.
    pub confidence_label: String,
    /// Spelling corrections made.
    pub corrections: Option<u64>,
}

/// What the aggregator holds, read by the report.
#[derive(Debug, Default, Clone)]
pub struct RasState {
    /// Expected essays per batch.
    pub expected: HashMap<String, usize>,
    /// Spelling corrections per essay.
    pub corrections: HashMap<String, u64>,
    /// Results per batch.
    pub results: HashMap<String, Vec<EssayResult>>,
    /// How often each essay's result was applied (must be 1).
    pub applied: HashMap<String, u32>,
    /// Batches whose CJ phase outcome was seen.
    pub cj_phase_done: HashSet<String>,
    /// Batches announced as ready.
    pub ready: HashSet<String>,
}

/// The result aggregator's router.
pub fn result_aggregator(writer: Arc<Writer>, state: Arc<Mutex<RasState>>) -> Router {
    let (s1, s2, s3, s4) = (state.clone(), state.clone(), state.clone(), state);
    let (w2, w3, w4) = (writer.clone(), writer.clone(), writer);
    Router::new()
        .on(
            TopicChoice::Standard,
            move |ctx: Context, p: BatchEssaysRegistered| {
                let state = s1.clone();
                async move {
                    lock(&state)
                        .expected
                        .insert(p.entity_id.clone(), p.essay_ids.len());
                    let _ = ctx;
                    Ok(())
                }
            },
        )
        .on(
            TopicChoice::Standard,
            move |ctx: Context, p: SpellcheckResultV1| {
                let (state, writer) = (s2.clone(), w2.clone());
                async move {
                    let v = view(&p);
                    let n = v["corrections_made"].as_u64().unwrap_or(0);
                    lock(&state).corrections.insert(text(&v, "/entity_id"), n);
                    // The last spellcheck result may arrive after the assessment results.
                    maybe_ready(&state, &writer, &text(&v, "/batch_id"), ctx.correlation_id).await
                }
            },
        )
        .on(
            TopicChoice::Standard,
            move |ctx: Context, p: AssessmentResultV1| {
                let (state, writer) = (s3.clone(), w3.clone());
                async move {
                    let v = view(&p);
                    let batch = text(&v, "/batch_id");
                    let results: Vec<EssayResult> = v["essay_results"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| EssayResult {
                            rank: r["rank"].as_u64().unwrap_or(0),
                            essay_id: text(r, "/essay_id"),
                            bt_score: r["bt_score"].as_f64().unwrap_or(0.0),
                            normalized_score: r["normalized_score"].as_f64().unwrap_or(0.0),
                            grade: text(r, "/letter_grade"),
                            confidence: r["confidence_score"].as_f64().unwrap_or(0.0),
                            confidence_label: text(r, "/confidence_label"),
                            corrections: None,
                        })
                        .collect();
                    {
                        let mut st = lock(&state);
                        for r in &results {
                            *st.applied.entry(r.essay_id.clone()).or_default() += 1;
                        }
                        st.results.insert(batch.clone(), results);
                    }
                    maybe_ready(&state, &writer, &batch, ctx.correlation_id).await
                }
            },
        )
        .on(
            TopicChoice::Standard,
            move |ctx: Context, p: ElsBatchPhaseOutcomeV1| {
                let (state, writer) = (s4.clone(), w4.clone());
                async move {
                    let v = view(&p);
                    if text(&v, "/phase_name") != "cj_assessment" {
                        return Ok(());
                    }
                    let batch = text(&v, "/batch_id");
                    lock(&state).cj_phase_done.insert(batch.clone());
                    maybe_ready(&state, &writer, &batch, ctx.correlation_id).await
                }
            },
        )
}

/// Publishes `BATCH_RESULTS_READY` once the batch's results, spellcheck results and CJ phase outcome are all in.
async fn maybe_ready(
    state: &Mutex<RasState>,
    writer: &Writer,
    batch: &str,
    correlation: Uuid,
) -> Result<(), HandlerError> {
    let (total, completed) = {
        let mut st = lock(state);
        let Some(results) = st.results.get(batch) else {
            return Ok(());
        };
        if st.ready.contains(batch) || !st.cj_phase_done.contains(batch) {
            return Ok(());
        }
        let expected = st.expected.get(batch).copied().unwrap_or(results.len());
        let spelled = results
            .iter()
            .filter(|r| st.corrections.contains_key(&r.essay_id))
            .count();
        if spelled < results.len() {
            // The rich spellcheck results travel on another topic; the last one to arrive calls this again.
            return Ok(());
        }
        let n = results.len();
        // Marked before the write, so that handlers racing here publish once; unmarked if the write fails.
        st.ready.insert(batch.to_owned());
        (expected, n)
    };
    let status = if completed == total {
        "completed_successfully"
    } else {
        "completed_with_failures"
    };
    let published = async {
        let ready: BatchResultsReadyV1 = build(json!({
            "entity_id": batch, "timestamp": now(), "batch_id": batch, "status": status,
            "system_metadata": {"entity_id": batch, "entity_type": "batch", "parent_id": null, "timestamp": now(),
                "processing_stage": "completed", "started_at": now(), "completed_at": now(),
                "event": "batch.results.ready", "error_info": {}},
            "total_essays": total, "completed_essays": completed, "overall_status": status,
        }))?;
        writer.write(rows(RAS, correlation, ready)?).await
    }
    .await;
    if let Err(e) = published {
        lock(state).ready.remove(batch);
        return Err(e);
    }
    let mut st = lock(state);
    if let Some(results) = st.results.get(batch).cloned() {
        let with: Vec<EssayResult> = results
            .into_iter()
            .map(|mut r| {
                r.corrections = st.corrections.get(&r.essay_id).copied();
                r
            })
            .collect();
        st.results.insert(batch.to_owned(), with);
    }
    Ok(())
}
