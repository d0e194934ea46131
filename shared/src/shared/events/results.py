"""Events produced by the results service."""

from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.events.base import Event


class RecordedResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    result_id: int
    tag: str
    device_id: str | None = None
    key: str
    meta: dict[str, Any] | None = None


class ResultsRecorded(Event):
    """Results of a trial were stored; `complete` means processing of the trial finished."""

    type: ClassVar[str] = "results.recorded"
    trial_id: UUID
    results: list[RecordedResult]
    complete: bool = True
    job_id: UUID | None = None
    # The results replace every earlier result of the trial (a job's whole output).
    replace: bool = False


class ResultsRemoved(Event):
    type: ClassVar[str] = "results.removed"
    trial_id: UUID
    result_ids: list[int]
