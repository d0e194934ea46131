"""The envelope every event travels in, and the base of every event."""

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

EVENTS_EXCHANGE = "events"
DEAD_LETTER_EXCHANGE = "events.dlx"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: ClassVar[str]


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID = Field(default_factory=uuid4)
    type: str
    version: int = 1
    occurred_at: datetime
    producer: str
    correlation_id: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls, event: Event, *, producer: str, occurred_at: datetime, correlation_id: str | None
    ) -> "Envelope":
        return cls(
            type=event.type,
            occurred_at=occurred_at,
            producer=producer,
            correlation_id=correlation_id,
            data=event.model_dump(mode="json"),
        )
