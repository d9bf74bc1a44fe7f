//! Default values of payload fields, as the original's pydantic models declare them.

use crate::registry::Event;

/// Declares `fn name() -> String` returning a fixed discriminator.
macro_rules! string_defaults {
    ($($name:ident = $value:literal),* $(,)?) => {
        $(pub(crate) fn $name() -> String { $value.to_owned() })*
    };
}

/// Declares `fn name() -> Event` returning an event-name default.
macro_rules! event_defaults {
    ($($name:ident = $variant:ident),* $(,)?) => {
        $(pub(crate) fn $name() -> Event { Event::$variant })*
    };
}

string_defaults! {
    d_batch_essays_registered = "batch.essays.registered",
    d_batch_essays_ready = "batch.essays.ready",
    d_batch_pipeline_completed = "batch.pipeline.completed",
    d_batch_phase_skipped = "batch.phase.skipped",
    d_already_completed = "already_completed",
    d_batch_content_provisioning_completed = "batch.content.provisioning.completed",
    d_batch_validation_errors = "batch.validation.errors.v1",
    d_essay_slot_assigned = "essay.slot.assigned",
    d_essay_content_provisioned = "essay.content.provisioned",
    d_excess_content_provisioned = "excess.content.provisioned",
    d_essay_validation_failed = "essay.validation.failed",
    d_batch_file_added = "batch.file.added",
    d_batch_file_removed = "batch.file.removed",
    d_class_created = "class.created",
    d_class_updated = "class.updated",
    d_essay_student_association_updated = "essay.student.association.updated",
    d_student_created = "student.created",
    d_student_updated = "student.updated",
    d_processor_version = "pyspellchecker_1.0_L2_swedish",
    d_info = "info",
}

event_defaults! {
    e_pipeline_denied = PipelineDenied,
    e_batch_student_matching_requested = BatchStudentMatchingRequested,
    e_batch_author_matches_suggested = BatchAuthorMatchesSuggested,
    e_essay_nlp_completed = EssayNlpCompleted,
    e_batch_nlp_analysis_completed = BatchNlpAnalysisCompleted,
    e_els_cj_assessment_requested = ElsCjAssessmentRequested,
    e_cj_assessment_completed = CjAssessmentCompleted,
    e_cj_assessment_failed = CjAssessmentFailed,
    e_assessment_result_published = AssessmentResultPublished,
    e_student_associations_confirmed = StudentAssociationsConfirmed,
    e_validation_timeout_processed = ValidationTimeoutProcessed,
    e_batch_results_ready = BatchResultsReady,
    e_batch_assessment_completed = BatchAssessmentCompleted,
    e_resource_consumption_reported = ResourceConsumptionReported,
}
