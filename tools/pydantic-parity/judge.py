"""Judges JSON records as HuleEdu's Python services do: pydantic v2 `model_validate_json` on an envelope whose
`data` is the event's payload model.

The models below mirror Appendix A of `shared/contracts/huleedu-reference.md` (field names, types, defaults and
constraints), written for this test; they are not the services' code. Reads JSON lines
`{"model": NAME, "doc": TEXT}` on stdin and writes one verdict per line: `ok` or `err <location>: <message>`.
Used by `crates/hule-contracts/tests/pydantic_parity.rs`.
"""

import json
import sys
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Generic, Literal, Optional, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ProcessingStatus(str, Enum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class ProcessingEvent(str, Enum):
    # A few of the 73 members; the generated cases use these and strings that are no member at all.
    ASSESSMENT_RESULT_PUBLISHED = "assessment.result.published"
    BATCH_ESSAYS_REGISTERED = "batch.essays.registered"
    SPELLCHECK_PHASE_COMPLETED = "spellcheck.phase.completed"


class SpellcheckPhaseCompletedV1(BaseModel):
    entity_id: str
    batch_id: str
    correlation_id: str
    status: ProcessingStatus
    corrected_text_storage_id: Optional[str] = None
    error_code: Optional[str] = None
    processing_duration_ms: int
    timestamp: datetime


class BaseEventData(BaseModel):
    event_name: ProcessingEvent
    entity_id: Optional[str] = None
    entity_type: Optional[str] = None
    parent_id: Optional[str] = None
    timestamp: datetime = Field(default_factory=_now)


class EssayResultV1(BaseModel):
    essay_id: str
    normalized_score: float = Field(ge=0.0, le=1.0)
    letter_grade: str = Field(pattern=r"^([A-F][+-]?|U)$")
    confidence_score: float = Field(ge=0.0, le=1.0)
    confidence_label: Literal["HIGH", "MID", "LOW"]
    bt_score: float
    rank: int = Field(gt=0)
    is_anchor: bool = False
    feedback_uri: Optional[str] = None
    metrics_uri: Optional[str] = None
    display_name: Optional[str] = None


class AssessmentResultV1(BaseEventData):
    event_name: ProcessingEvent = ProcessingEvent.ASSESSMENT_RESULT_PUBLISHED
    batch_id: str
    cj_assessment_job_id: str
    assignment_id: Optional[str] = Field(default=None, max_length=100)
    assessment_method: str
    model_used: str
    model_provider: str
    model_version: Optional[str] = None
    essay_results: list[EssayResultV1]
    assessment_metadata: dict[str, Any] = Field(default_factory=dict)
    assessed_at: datetime = Field(default_factory=_now)


T = TypeVar("T")


class EventEnvelope(BaseModel, Generic[T]):
    model_config = ConfigDict(populate_by_name=True)
    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    event_timestamp: datetime = Field(default_factory=_now)
    source_service: str
    schema_version: int = 1
    correlation_id: UUID = Field(default_factory=uuid4)
    data_schema_uri: Optional[str] = None
    data: T
    metadata: Optional[dict[str, Any]] = None


MODELS = {
    "SpellcheckPhaseCompletedV1": EventEnvelope[SpellcheckPhaseCompletedV1],
    "AssessmentResultV1": EventEnvelope[AssessmentResultV1],
}


def judge(model: str, doc: str) -> str:
    try:
        MODELS[model].model_validate_json(doc)
        return "ok"
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "."
        return f"err {loc}: {first['msg']}"


def main() -> None:
    for line in sys.stdin:
        case = json.loads(line)
        print(judge(case["model"], case["doc"]), flush=False)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
