"""The web app's session list (`POST /sessions/valid/`): filters, sorting and paging.

The caller sees only their own sessions that hold at least one trial (reference §5.8,
known-failures 24): never another user's public sessions, and no session is hidden for
lacking a neutral trial.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.models import Session, Subject, Trial, User
from shared.errors import Invalid, NotFound

MAX_ROWS = 10**6
COUNTED = and_(
    Trial.name.is_distinct_from("calibration"),
    or_(Trial.name.is_distinct_from("neutral"), Trial.status == "done"),
)


def _flag(body: Mapping[str, Any], name: str) -> bool:
    return body.get(name) in (True, "true", "True", 1, "1")


def _int(body: Mapping[str, Any], name: str, bounded: bool = True) -> int | None:
    """An integer field; paging fields must lie in -1..MAX_ROWS (ids may be any)."""
    value = body.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise Invalid("A valid integer is required.", field=name) from None
    if bounded and not -1 <= number <= MAX_ROWS:
        raise Invalid(f"Ensure this value is between -1 and {MAX_ROWS}.", field=name)
    return number


def _sort_columns(body: Mapping[str, Any]) -> list:
    keys = body.get("sort") or []
    descending = body.get("sort_desc") or []
    if not isinstance(keys, list) or not isinstance(descending, list):
        raise Invalid("Expected a list.", field="sort")
    trials_count = (
        select(func.count()).where(Trial.session_id == Session.id, COUNTED).scalar_subquery()
    )
    columns = {
        "name": Subject.name,
        "trials_count": trials_count,
        "created_at": Session.created_at,
        "sessionName": Session.meta["sessionName"].astext,
    }
    order = []
    for i, key in enumerate(keys):
        if not isinstance(key, str) or key not in columns:
            raise Invalid(f'"{key}" is not a sort key.', field="sort")
        desc = i < len(descending) and descending[i] in (True, "true")
        order.append(columns[key].desc().nulls_last() if desc else columns[key].asc().nulls_last())
    return order or [Session.created_at.desc()]


async def _filtered(tx: AsyncSession, user: User, body: Mapping[str, Any]) -> Select:
    stmt = (
        select(Session)
        .outerjoin(Subject, Subject.id == Session.subject_id)
        .where(Session.user_id == user.id, exists().where(Trial.session_id == Session.id))
    )
    if _flag(body, "only_trashed"):
        trashed_trial = exists().where(Trial.session_id == Session.id, Trial.trashed.is_(True))
        stmt = stmt.where(or_(Session.trashed.is_(True), trashed_trial))
    elif not _flag(body, "include_trashed"):
        stmt = stmt.where(Session.trashed.is_(False))
    subject_id = _int(body, "subject_id", bounded=False)
    if subject_id is not None:
        subject = await tx.get(Subject, subject_id) if 0 < subject_id < 2**31 else None
        if subject is None or subject.user_id != user.id:
            raise NotFound("Subject not found.")
        stmt = stmt.where(Session.subject_id == subject_id)
    return stmt


async def own_sessions(tx: AsyncSession, user: User) -> list[Session]:
    """`GET /sessions/`: every session of the caller, trashed or empty ones too, newest first
    (the original added every public session; here lists hold only the caller's own)."""
    stmt = select(Session).where(Session.user_id == user.id)
    stmt = stmt.order_by(Session.created_at.desc(), Session.id.desc())
    return list((await tx.scalars(stmt)).all())


async def valid_sessions(
    tx: AsyncSession, user: User, body: Mapping[str, Any]
) -> tuple[list[Session], int | None]:
    """The page of sessions and, when `quantity` is given, the total count (else None)."""
    stmt = await _filtered(tx, user, body)
    quantity, start = _int(body, "quantity"), _int(body, "start") or 0
    total = None
    if quantity is not None:
        total = await tx.scalar(select(func.count()).select_from(stmt.subquery()))
    stmt = stmt.order_by(*_sort_columns(body), Session.id.desc()).offset(max(start, 0))
    if quantity is not None and quantity >= 0:
        stmt = stmt.limit(quantity)
    return list((await tx.scalars(stmt)).all()), total
