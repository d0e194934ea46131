"""Use cases about sessions: create, find (with access rules), chain, configure, trash.

Each use case takes the open transaction `tx` and never commits.
"""

import asyncio
import contextlib
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import qrcode
import structlog
from sqlalchemy import String, cast, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from session_service.models import Outbox, Session, Subject, Trial, User, Video
from shared.db import utcnow
from shared.errors import Invalid, NotFound, Unauthorized
from shared.events import Event, SessionCreated, SessionDeleted, TrialDeleted
from shared.outbox import record
from shared.storage import Storage

PRODUCER = "session"
PRIVILEGED = ("admin", "backend")


def emit(tx: AsyncSession, event: Event | None) -> None:
    if event is not None:
        record(tx, Outbox, event, producer=PRODUCER)


def as_trial(trial: Trial) -> contextlib.AbstractContextManager:
    """For the trial's steps no user request causes (the capture's end, its processing
    job, the janitors): their events and log lines carry the trial's correlation id."""
    if trial.correlation_id is None:
        return contextlib.nullcontext()
    return structlog.contextvars.bound_contextvars(correlation_id=trial.correlation_id)


def qr_png(text: str) -> bytes:
    buffer = io.BytesIO()
    qrcode.make(text).save(buffer, format="PNG")
    return buffer.getvalue()


async def create_session(
    tx: AsyncSession,
    user: User,
    storage: Storage | None,
    public_base: str,
    meta: dict | None = None,
) -> Session:
    """A new session owned by `user`; with `storage`, its QR code (the phones' status URL),
    stored first so that the session and its event are written at the end of the request."""
    session_id, qrcode_key = uuid4(), None
    if storage is not None:
        qrcode_key = f"{session_id}.png"
        png = qr_png(f"{public_base}/sessions/{session_id}/status/")
        await asyncio.to_thread(storage.put_bytes, qrcode_key, png, "image/png")
    now = utcnow()
    session = Session(
        id=session_id,
        user_id=user.id,
        meta=meta,
        public=False,
        qrcode_key=qrcode_key,
        is_mono=False,
        status="init",
        trashed=False,
        created_at=now,
        updated_at=now,
    )
    tx.add(session)
    emit(tx, SessionCreated(session_id=session.id, user_id=user.id, framerate=session.framerate()))
    return session


def can_read(session: Session, user: User | None) -> bool:
    return session.public or can_write(session, user)


def can_write(session: Session, user: User | None) -> bool:
    return user is not None and (user.id == session.user_id or user.in_group(*PRIVILEGED))


async def get_session(
    tx: AsyncSession, session_id: UUID, user: User | None, *, write: bool = False
) -> Session:
    """The session if `user` may see it (or change it, with `write`); 404 otherwise.

    An anonymous caller asking for a private session gets 401, as in the original,
    which the web app answers by showing its login page.
    """
    session = await tx.get(Session, session_id)
    if session is None:
        raise NotFound()
    allowed = can_write(session, user) if write else can_read(session, user)
    if not allowed:
        if user is None:
            raise Unauthorized("Sorry, you have to log in to access to this session.")
        raise NotFound()
    return session


async def session_trials(tx: AsyncSession, session_id: UUID) -> list[Trial]:
    stmt = select(Trial).where(Trial.session_id == session_id).order_by(Trial.created_at)
    return list((await tx.scalars(stmt)).all())


async def latest_trial(
    tx: AsyncSession, session_id: UUID, *, name: str | None = None, lock: bool = False
) -> Trial | None:
    """The session's latest trial (of that name). `lock=True`, for record, stop and cancel,
    locks the session's row first, so that these run one at a time per session (two
    `record`s at once would otherwise both start a trial), then the trial's row. (FOR NO
    KEY UPDATE: rows that merely refer to them, a video's, are not held up.)"""
    if lock:
        this_session = select(Session.id).where(Session.id == session_id)
        if (await tx.execute(this_session.with_for_update(key_share=True))).first() is None:
            raise NotFound()  # removed while we waited for it (the unused sessions' cleanup)
    stmt = select(Trial).where(Trial.session_id == session_id)
    if name is not None:
        stmt = stmt.where(Trial.name == name)
    stmt = stmt.order_by(Trial.created_at.desc()).limit(1)
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    return (await tx.scalars(stmt)).first()


async def new_subject(tx: AsyncSession, session: Session, user: User, public_base: str) -> Session:
    """ "New subject, same setup": a session chained to the calibrated one, with the same
    settings and capture flags; phones polling the old session are told to move over
    (`startNewSession`, published to devices)."""
    root = session.linked("sessionWithCalibration") or session.id
    meta: dict = {"sessionWithCalibration": {"id": str(root)}}
    if (session.meta or {}).get("settings"):
        meta["settings"] = dict(session.meta["settings"])
    child = await create_session(tx, user, None, public_base, meta)
    child.save_local, child.use_lidar = session.save_local, session.use_lidar
    emit(tx, child.announced())
    old_meta = {**(session.meta or {}), "startNewSession": {"id": str(child.id)}}
    emit(tx, session.set_meta(old_meta, utcnow()))
    return child


async def set_subject(tx: AsyncSession, session: Session, subject_id: str) -> None:
    """The session's subject: one of the session owner's (an admin may set it too)."""
    try:
        number = int(subject_id)
    except (TypeError, ValueError):
        number = 0
    subject = await tx.get(Subject, number) if 0 < number < 2**31 else None
    if subject is None or subject.user_id != session.user_id:
        raise NotFound("Subject not found.")
    changed = session.subject_id != subject.id
    session.subject_id, session.updated_at = subject.id, utcnow()
    if changed:
        emit(tx, session.announced())


async def _calibrated_in(tx: AsyncSession, session: Session) -> Session | None:
    """The session `sessionWithCalibration` names, if it is the same owner's (the meta is
    writable by the owner: a link into someone else's session is not followed)."""
    root_id = session.linked("sessionWithCalibration")
    root = await tx.get(Session, root_id) if root_id else None
    return root if root is not None and root.user_id == session.user_id else None


async def calibration_session(tx: AsyncSession, session: Session) -> Session:
    """The session holding the calibration: the one `sessionWithCalibration` names, if any."""
    return await _calibrated_in(tx, session) or session


async def calibration_trial(tx: AsyncSession, session: Session, depth: int = 10) -> Trial | None:
    """The latest calibration of the session, else of the chain it was calibrated in."""
    trial = await latest_trial(tx, session.id, name="calibration")
    if trial is None and depth > 0:
        parent = await _calibrated_in(tx, session)
        return await calibration_trial(tx, parent, depth - 1) if parent else None
    return trial


async def n_calibrated_cameras(tx: AsyncSession, session: Session) -> int:
    if session.is_mono:
        return 1
    trial = await latest_trial(tx, (await calibration_session(tx, session)).id, name="calibration")
    if trial is None:
        return 0
    count = select(func.count()).select_from(Video).where(Video.trial_id == trial.id)
    return await tx.scalar(count) or 0


async def session_framerates(tx: AsyncSession, session: Session) -> list[int]:
    """Frame rates every phone of the latest trial supports (reference §4.1)."""
    trial = await latest_trial(tx, (await calibration_session(tx, session)).id)
    if trial is None:
        return []
    videos = (await tx.scalars(select(Video).where(Video.trial_id == trial.id))).all()
    limits = [(v.parameters or {}).get("max_framerate") for v in videos]
    if not limits:
        return []
    if any(not isinstance(limit, int | float) for limit in limits):
        return [60]
    return [rate for rate in (60, 120, 240) if rate <= min(limits)]


async def owned_sessions(tx: AsyncSession, user: User, text: str) -> list[Session]:
    """The user's sessions whose id or name contains `text` (the web app's search box)."""
    pattern = f"%{text.lower()}%"
    matches = or_(
        cast(Session.id, String).ilike(pattern), Session.meta["sessionName"].astext.ilike(pattern)
    )
    stmt = (
        select(Session)
        .where(Session.user_id == user.id, matches)
        .order_by(Session.created_at.desc())
        .limit(200)
    )
    return list((await tx.scalars(stmt)).all())


async def sessions_with_status(
    tx: AsyncSession, user: User, body: Mapping[str, object]
) -> list[Session]:
    """Sessions whose free-form `status` is the one asked (admins and the pipeline see all)."""
    stmt = select(Session).where(Session.status == str(body["status"]))
    if not user.in_group(*PRIVILEGED):
        stmt = stmt.where(Session.user_id == user.id)
    elif body.get("username"):
        owner = select(User.id).where(User.username == str(body["username"]))
        stmt = stmt.where(Session.user_id.in_(owner))
    dates = body.get("date_range")
    if isinstance(dates, list) and len(dates) == 2:
        try:
            low, high = (datetime.fromisoformat(str(d)).replace(tzinfo=UTC) for d in dates)
            high += timedelta(days=1)
        except (ValueError, OverflowError):
            raise Invalid("Dates are YYYY-MM-DD.", field="date_range") from None
        stmt = stmt.where(Session.created_at.between(low, high))
    return list((await tx.scalars(stmt.order_by(Session.created_at.desc()).limit(10_000))).all())


def trash(item, now: datetime, trashed: bool = True) -> None:
    """Trash or restore a session, trial or subject (the recycle bin keeps it 30 days)."""
    item.trashed, item.trashed_at = trashed, (now if trashed else None)
    item.updated_at = now


async def remove_recordings(tx: AsyncSession, session: Session) -> None:
    """`permanent_remove`: the session's trials go, except calibration; the session stays
    (a chained session may still need its calibration)."""
    doomed = select(Trial.id).where(
        Trial.session_id == session.id, Trial.name.is_distinct_from("calibration")
    )
    for trial_id in (await tx.scalars(doomed)).all():
        emit(tx, TrialDeleted(trial_id=trial_id, session_id=session.id))
    await tx.execute(delete(Trial).where(Trial.id.in_(doomed)))


async def delete_sessions(tx: AsyncSession, session_ids: list[UUID]) -> None:
    """The sessions go with their trials; the other services are told to forget them."""
    for session_id in session_ids:
        emit(tx, SessionDeleted(session_id=session_id))
    if session_ids:
        await tx.execute(delete(Session).where(Session.id.in_(session_ids)))


async def remove_unused_sessions(tx: AsyncSession, older_than: timedelta, batch: int = 500) -> int:
    """Delete one batch of old sessions that never held a trial and that no other session
    was chained to; returns how many (the caller repeats until none is left)."""
    child = aliased(Session)
    chained_to = exists().where(
        child.meta["sessionWithCalibration"]["id"].astext == cast(Session.id, String)
    )
    has_trial = exists().where(Trial.session_id == Session.id)
    stmt = (
        select(Session.id)
        .where(Session.created_at < utcnow() - older_than, ~has_trial, ~chained_to)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    ids = list((await tx.scalars(stmt)).all())
    await delete_sessions(tx, ids)
    return len(ids)
