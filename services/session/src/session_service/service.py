"""Use cases of the session service. Each takes the open transaction `tx` and never commits."""

import asyncio
import io
import re
from uuid import UUID, uuid4

import qrcode
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.models import Outbox, Result, Session, Trial, User, Video
from shared.db import utcnow
from shared.errors import Conflict, Invalid, NotFound, Unauthorized
from shared.events import Event, SessionCreated
from shared.outbox import record
from shared.storage import Storage

PRODUCER = "session"
NAME_MAX = 64
NAME_PATTERN = re.compile(r"^[\w\-]+$")
PRIVILEGED = ("admin", "backend")


def emit(tx: AsyncSession, event: Event | None) -> None:
    if event is not None:
        record(tx, Outbox, event, producer=PRODUCER)


def qr_png(text: str) -> bytes:
    buffer = io.BytesIO()
    qrcode.make(text).save(buffer, format="PNG")
    return buffer.getvalue()


async def create_session(
    tx: AsyncSession, user: User, storage: Storage, public_base: str
) -> Session:
    """A new session owned by `user`, with its QR code (the phones' status URL) stored."""
    now = utcnow()
    session = Session(
        id=uuid4(),
        user_id=user.id,
        meta=None,
        public=False,
        is_mono=False,
        status="init",
        trashed=False,
        created_at=now,
        updated_at=now,
    )
    session.qrcode_key = f"{session.id}.png"
    tx.add(session)
    emit(tx, SessionCreated(session_id=session.id, user_id=user.id, framerate=session.framerate()))
    png = qr_png(f"{public_base}/sessions/{session.id}/status/")
    await asyncio.to_thread(storage.put_bytes, session.qrcode_key, png, "image/png")
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


async def latest_trial(tx: AsyncSession, session_id: UUID, *, lock: bool = False) -> Trial | None:
    stmt = (
        select(Trial)
        .where(Trial.session_id == session_id)
        .order_by(Trial.created_at.desc())
        .limit(1)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await tx.scalars(stmt)).first()


def validate_trial_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid("A trial name is required.", field="name")
    if len(name) > NAME_MAX:
        raise Invalid(f"Ensure this field has no more than {NAME_MAX} characters.", field="name")
    if not NAME_PATTERN.fullmatch(name):
        raise Invalid("Use only letters, digits, '-' and '_' in trial names.", field="name")
    return name


async def record_trial(tx: AsyncSession, session: Session, name: str | None) -> Trial:
    """Start a trial; a trial still `recording` is ended first (it was never stopped)."""
    name = validate_trial_name(name)
    now = utcnow()
    trials = await session_trials(tx, session.id)
    for forgotten in (t for t in trials if t.status == "recording"):
        emit(tx, forgotten.fail("A newer trial was started before this one was stopped.", now))
    trial = session.start_trial(name, [t.name or "" for t in trials], now)
    if len(trial.name or "") > NAME_MAX:
        raise Invalid(f"The trial would be named {trial.name!r}: too long.", field="name")
    tx.add(trial)
    emit(tx, trial.started())
    return trial


async def stop_trial(tx: AsyncSession, session: Session) -> Trial:
    """Stop the session's latest trial; stopping it again returns it unchanged."""
    trial = await latest_trial(tx, session.id, lock=True)
    if trial is None:
        raise Conflict("This session has no trial to stop.")
    emit(tx, trial.stop(utcnow()))
    return trial


async def get_trial(tx: AsyncSession, trial_id: UUID, user: User | None) -> Trial:
    trial = await tx.get(Trial, trial_id)
    if trial is None:
        raise NotFound()
    session = await tx.get(Session, trial.session_id)
    if session is None or not can_read(session, user):
        raise NotFound()
    return trial


async def trial_media(tx: AsyncSession, trial_id: UUID) -> tuple[list[Video], list[Result]]:
    videos = await tx.scalars(
        select(Video).where(Video.trial_id == trial_id).order_by(Video.created_at)
    )
    results = await tx.scalars(
        select(Result).where(Result.trial_id == trial_id).order_by(Result.id)
    )
    return list(videos.all()), list(results.all())
