"""Who may download what: the archive tasks the web app asks for and polls (the worker
builds them, `archives.py`).

`GET /sessions/{id}/async-download/` answers a task of the session's archive: its owner's
(past the e-mail code step), an admin's or the pipeline's, or anyone's if the session is
public. An anonymous caller asking again gets the task already asked for (still to build,
being built, or built in the last `archive_reuse_seconds`) rather than a new build; so does
a user whose own request is still waiting to be built. `GET /subjects/{id}/async-download/`
answers a task of the archive of a subject's sessions, for their owner (and admins and the
pipeline).

`GET /logs/{task_id}/on-ready/` answers 202 (empty) while a task is unfinished, 200
`{"url"}` when ready, and 410 `{"detail"}` once it failed: the web app's poll stops on any
error status (axios rejects), where the original answered 202 forever.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import UUID, uuid4

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.config import Settings
from results_service.models import Archive, KnownSession
from shared.db import utcnow
from shared.errors import Forbidden, Gone, NotAuthenticated, NotFound, Unauthorized
from shared.identity import Caller
from shared.storage import Storage

FAILED = "The archive could not be built. Please try again later."
LOG_IN = "Sorry, you have to log in to access to this session."
NO_CREDENTIALS = "Authentication credentials were not provided."
NO_PERMISSION = "You do not have permission to perform this action."
MAX_SUBJECT_ID = 2**31 - 1


async def downloadable_session(tx: AsyncSession, caller: Caller | None, session_id: UUID):
    """The session, if the caller may download it: its owner, admins and the backend, or
    anyone if it is public. 404 if unknown or another user's, 401 for anonymous callers,
    403 for its owner before the e-mail code step."""
    session = await tx.get(KnownSession, session_id)
    if session is None or session.user_id is None:
        raise NotFound()
    if session.public:
        return session
    if caller is None:
        raise Unauthorized(LOG_IN)
    if not (caller.privileged or caller.user_id == session.user_id):
        raise NotFound()
    if not caller.may_act:
        raise Forbidden(NO_PERMISSION)
    return session


async def request_archive(
    tx: AsyncSession, caller: Caller | None, session_id: UUID, settings: Settings
) -> UUID:
    """The task of the session's archive: one already asked for (see the module), or a new
    one the worker builds. A caller not past the e-mail code step asks as anyone would."""
    await downloadable_session(tx, caller, session_id)
    user_id = caller.user_id if caller and caller.may_act else None
    await tx.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"archive:{session_id}"))))
    reused = await _reusable(tx, session_id, user_id, settings.archive_reuse_seconds)
    if reused is not None:
        return reused
    return _new_task(tx, session_id=session_id, user_id=user_id)


async def _reusable(
    tx: AsyncSession, session_id: UUID, user_id: int | None, reuse_seconds: int
) -> UUID | None:
    """The task of the same session asked for by the same kind of caller that can answer
    this request too: for anyone, any unfinished or recent one; for a user, one of theirs
    not yet being built (which will hold everything there is now)."""
    stmt = select(Archive.task_id).where(Archive.session_id == session_id)
    if user_id is None:
        recent = (Archive.status == "ready") & (
            Archive.finished_at > utcnow() - timedelta(seconds=reuse_seconds)
        )
        stmt = stmt.where(Archive.user_id.is_(None))
        stmt = stmt.where(or_(Archive.status.in_(("pending", "building")), recent))
    else:
        stmt = stmt.where(Archive.user_id == user_id, Archive.status == "pending")
    return await tx.scalar(stmt.order_by(Archive.created_at.desc()).limit(1))


def _new_task(tx: AsyncSession, **target) -> UUID:
    task = Archive(task_id=uuid4(), status="pending", attempts=0, created_at=utcnow(), **target)
    tx.add(task)
    return task.task_id


async def request_subject_archive(tx: AsyncSession, caller: Caller | None, subject_id: int) -> UUID:
    """A new task of the archive of the subject's sessions, for their owner (admins and the
    backend: all of the subject's sessions). 404 if the caller owns none of them."""
    if caller is None:
        raise NotAuthenticated(NO_CREDENTIALS)
    if not caller.may_act:
        raise Forbidden(NO_PERMISSION)
    owner_id = None if caller.privileged else caller.user_id
    stmt = select(KnownSession.id).where(KnownSession.subject_id == subject_id)
    if owner_id is not None:
        stmt = stmt.where(KnownSession.user_id == owner_id)
    if subject_id > MAX_SUBJECT_ID or await tx.scalar(stmt.limit(1)) is None:
        raise NotFound()
    return _new_task(tx, subject_id=subject_id, owner_id=owner_id, user_id=caller.user_id)


async def archive_url(
    tx: AsyncSession,
    task_id: UUID,
    storage: Storage,
    caller: Callable[[], Awaitable[Caller | None]],
) -> str | None:
    """The ready archive's download URL; None while it is being built. A user's archive is
    polled by that user only (past the e-mail code step), or by an admin; one asked for
    anonymously, by anyone. Either way, a session's archive only while the poller may
    still download the session (it may have turned private since). The task id alone
    opens nothing else."""
    task = await tx.get(Archive, task_id)
    if task is None:
        raise NotFound()
    polling = await caller()
    if task.user_id is not None:
        if polling is None or not (polling.privileged or polling.user_id == task.user_id):
            raise NotFound()
        if not polling.may_act:
            raise Forbidden(NO_PERMISSION)
    if task.session_id is not None:
        await downloadable_session(tx, polling, task.session_id)
    if task.status == "failed":
        raise Gone(FAILED)
    if task.status != "ready" or task.key is None:
        return None
    return storage.presigned_get(task.key)
