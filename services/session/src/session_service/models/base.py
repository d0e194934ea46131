"""The service's own declarative base, and its outbox and processed-event tables."""

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped

from shared.db import NAMING_CONVENTION
from shared.messaging import ProcessedEventMixin
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox"
    # Processing jobs go out with a message priority (see shared.outbox.record).
    priority: Mapped[int | None]


class ProcessedEvent(ProcessedEventMixin, Base):
    __tablename__ = "processed_events"
