"""Use cases about results: a job's whole output, the stock pipeline's one-by-one posts and
deletes, and who may read them. Each takes the open transaction `tx` and never commits.

Only the processing pipeline (the `backend` group) and admins create or delete results
(known-failures 22); the owner of a session reads its results, as in the original, once past
the e-mail code step.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.models import KnownSession, KnownTrial, Outbox, Result
from shared.db import utcnow
from shared.errors import Forbidden, Invalid, NotAuthenticated, NotFound
from shared.events import (
    Event,
    ProcessingCompleted,
    RecordedResult,
    ResultFile,
    ResultsRecorded,
    ResultsRemoved,
)
from shared.identity import Caller
from shared.outbox import record

log = structlog.get_logger()
PRODUCER = "results"
NO_CREDENTIALS = "Authentication credentials were not provided."
NO_PERMISSION = "You do not have permission to perform this action."


def emit(tx: AsyncSession, event: Event) -> None:
    record(tx, Outbox, event, producer=PRODUCER)


def recorded(rows: list[Result]) -> list[RecordedResult]:
    return [
        RecordedResult(
            result_id=r.id, tag=r.tag or "", device_id=r.device_id, key=r.key, meta=r.meta
        )
        for r in rows
    ]


async def lock_trial(tx: AsyncSession, trial_id: UUID) -> None:
    """Serialize changes to one trial's results (until the transaction ends)."""
    await tx.execute(select(func.pg_advisory_xact_lock(func.hashtext(str(trial_id)))))


# ── a job's output (processing.completed) ───────────────────────────────────────────


async def accepts(tx: AsyncSession, event: ProcessingCompleted) -> bool:
    """Is the job the trial's current one (or is no current one known)? Locks the trial's
    results until the transaction ends."""
    await lock_trial(tx, event.trial_id)
    trial = await tx.get(KnownTrial, event.trial_id)
    if trial is not None and trial.current_job_id not in (None, event.job_id):
        log.info("stale_completion_ignored", trial_id=str(event.trial_id), job_id=str(event.job_id))
        return False
    return True


async def record_completion(tx: AsyncSession, event: ProcessingCompleted) -> None:
    """The job's results replace the trial's (after `accepts`). Delivered twice, it leaves
    the same rows (same ids)."""
    rows = await replace_results(tx, event.trial_id, event.results)
    emit(
        tx,
        ResultsRecorded(
            trial_id=event.trial_id,
            results=recorded(rows),
            complete=True,
            job_id=event.job_id,
            replace=True,
        ),
    )


@dataclass(frozen=True)
class NewResult:
    trial_id: UUID
    key: str
    tag: str | None = None
    device_id: str | None = None
    meta: Any = None

    @classmethod
    def reported(cls, trial_id: UUID, item: ResultFile) -> "NewResult":
        """A file of a job's manifest (over-long tags and camera names are cut to fit)."""
        device_id = item.device_id[:36] if item.device_id else item.device_id
        return cls(trial_id, item.key, item.tag[:32], device_id, item.meta)

    def same_as(self, row: Result) -> bool:
        return (row.trial_id, row.tag, row.device_id) == (self.trial_id, self.tag, self.device_id)


async def replace_results(
    tx: AsyncSession, trial_id: UUID, files: list[ResultFile]
) -> list[Result]:
    """Make `files` the trial's only results: rows of the same keys are kept (updated),
    the others deleted, new ones inserted. Returns the rows in the files' order."""
    wanted = {f.key: NewResult.reported(trial_id, f) for f in files}  # one row per object
    existing = {r.key: r for r in await trial_results(tx, trial_id)}
    stale = [r.id for key, r in existing.items() if key not in wanted]
    if stale:
        await tx.execute(delete(Result).where(Result.id.in_(stale)))
    now, rows = utcnow(), []
    for key, item in wanted.items():
        row = existing.get(key) or await _insert(tx, item, now)
        if row is None:
            log.warning("result_key_taken", trial_id=str(trial_id), key=key)
            continue
        if not item.same_as(row) or row.meta != item.meta:
            row.tag, row.device_id = item.tag, item.device_id
            row.meta, row.updated_at = item.meta, now
        rows.append(row)
    await tx.flush()
    return rows


async def _insert(tx: AsyncSession, item: NewResult, now: datetime) -> Result | None:
    """The new row, or None if a row already has this key."""
    stmt = (
        insert(Result)
        .values(trial_id=item.trial_id, tag=item.tag, device_id=item.device_id, key=item.key)
        .values(meta=item.meta, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=[Result.key])
        .returning(Result)
    )
    return await tx.scalar(stmt)


async def trial_results(tx: AsyncSession, trial_id: UUID) -> list[Result]:
    stmt = select(Result).where(Result.trial_id == trial_id).order_by(Result.id)
    return list((await tx.scalars(stmt)).all())


# ── the stock pipeline over HTTP ────────────────────────────────────────────────────


def require_writer(caller: Caller | None) -> Caller:
    """Results are written by the pipeline (backend group) and admins only."""
    if caller is None:
        raise NotAuthenticated(NO_CREDENTIALS)
    if not caller.privileged:
        raise Forbidden(NO_PERMISSION)
    return caller


async def require_trial(tx: AsyncSession, trial_id: UUID) -> KnownTrial:
    trial = await tx.get(KnownTrial, trial_id)
    if trial is None:
        raise Invalid(f'Invalid pk "{trial_id}" - object does not exist.', field="trial")
    return trial


async def post_result(tx: AsyncSession, item: NewResult) -> tuple[Result, bool]:
    """One result the pipeline posted (its object is stored); (row, created). The same post
    again returns the first row; a key that another result holds is refused."""
    await lock_trial(tx, item.trial_id)
    row = await tx.scalar(select(Result).where(Result.key == item.key))
    if row is None:
        row = await _insert(tx, item, utcnow())
        if row is not None:
            event = ResultsRecorded(trial_id=item.trial_id, results=recorded([row]), complete=False)
            emit(tx, event)
            return row, True
        row = await tx.scalar(select(Result).where(Result.key == item.key))
    if row is None or not item.same_as(row):
        raise Invalid("This media is already attached to another result.", field="media_url")
    return row, False


async def delete_result(tx: AsyncSession, caller: Caller | None, result_id: int) -> None:
    require_writer(caller)
    row = await tx.get(Result, result_id)
    if row is None:
        raise NotFound()
    await tx.delete(row)
    emit(tx, ResultsRemoved(trial_id=row.trial_id, result_ids=[row.id]))


# ── reads ───────────────────────────────────────────────────────────────────────────


def owned_trials(user_id: int):
    """The ids of the trials of the sessions `user_id` owns (a subquery)."""
    return (
        select(KnownTrial.id)
        .join(KnownSession, KnownSession.id == KnownTrial.session_id)
        .where(KnownSession.user_id == user_id)
    )


def require_reader(caller: Caller | None) -> Caller:
    """Results are read by signed-in callers past the e-mail code step (their own), the
    pipeline and admins (any)."""
    if caller is None:
        raise NotAuthenticated(NO_CREDENTIALS)
    if not caller.may_act:
        raise Forbidden(NO_PERMISSION)
    return caller


async def readable_result(tx: AsyncSession, caller: Caller | None, result_id: int) -> Result:
    caller = require_reader(caller)
    stmt = select(Result).where(Result.id == result_id)
    if not caller.privileged:
        stmt = stmt.where(Result.trial_id.in_(owned_trials(caller.user_id)))
    row = await tx.scalar(stmt)
    if row is None:
        raise NotFound()
    return row


async def readable_results(
    tx: AsyncSession, caller: Caller | None, trial_id: UUID | None, tag: str | None
) -> list[Result]:
    """Every result the caller may read (admins and the backend: all), optionally of one
    trial or with one tag."""
    caller = require_reader(caller)
    stmt = select(Result).order_by(Result.id)
    if not caller.privileged:
        stmt = stmt.where(Result.trial_id.in_(owned_trials(caller.user_id)))
    if trial_id is not None:
        stmt = stmt.where(Result.trial_id == trial_id)
    if tag is not None:
        stmt = stmt.where(Result.tag == tag)
    return list((await tx.scalars(stmt)).all())
