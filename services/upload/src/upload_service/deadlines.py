"""Upload deadlines: no trial waits forever for a phone that never uploads.

A trial whose camera set is final waits for its missing videos for a while (short for
calibration and neutral captures, longer for movement trials), counted from the moment
the set became final or from the latest presign or upload progress in its session,
whichever is later. The deadline is derived from those facts when it is checked, so a
changed setting applies to every waiting trial at once; `janitor.py` announces the
trials whose deadline passed.
"""

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import ColumnElement, DateTime, and_, case, func, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from upload_service.config import Settings
from upload_service.models import UploadTrial


def waiting_trials() -> ColumnElement[bool]:
    """Trials still accepting uploads (their camera set may or may not be final yet)."""
    return and_(
        UploadTrial.videos_received_at.is_(None),
        UploadTrial.timed_out_at.is_(None),
        UploadTrial.closed_at.is_(None),
    )


def overdue_trials(now: datetime, settings: Settings) -> ColumnElement[bool]:
    """Waiting trials with a final camera set whose deadline is at or before `now`."""
    short = timedelta(seconds=settings.upload_deadline_short_seconds)
    long = timedelta(seconds=settings.upload_deadline_seconds)
    patience = case((UploadTrial.name.in_(settings.short_deadline_trials), short), else_=long)
    since = func.greatest(UploadTrial.final_at, UploadTrial.active_at)
    deadline_passed = since + patience <= literal(now, DateTime(timezone=True))
    return and_(waiting_trials(), UploadTrial.final_at.is_not(None), deadline_passed)


async def extend_deadlines(tx: AsyncSession, session_ids: list[UUID], now: datetime) -> None:
    """A presign or upload progress in these sessions: their waiting trials wait longer."""
    await tx.execute(
        update(UploadTrial)
        .where(UploadTrial.session_id.in_(session_ids), waiting_trials())
        .values(active_at=now)
    )
