"""Use cases about subjects (the people measured) and their tags."""

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.models import Session, Subject, SubjectTag, User
from session_service.models.subjects import GENDERS, SEXES
from session_service.sessions import emit
from shared.db import utcnow
from shared.errors import Invalid, NotFound

SORTABLE = {
    "name",
    "weight",
    "height",
    "age",
    "birth_year",
    "gender",
    "sex_at_birth",
    "created_at",
    "updated_at",
    "characteristics",
    "trashed",
    "id",
}
SORT_ALIASES = {"sex_display": "sex_at_birth", "gender_display": "gender"}


def _number(fields: Mapping[str, Any], name: str, kind: type) -> float | int | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    number = _finite(value)
    if number is None or kind is int and not number.is_integer():
        raise Invalid(f"A valid {'integer' if kind is int else 'number'} is required.", field=name)
    if number < 0:
        raise Invalid("Ensure this value is greater than or equal to 0.", field=name)
    return kind(number)


def _finite(value: Any) -> float | None:
    """`value` as a finite float, or None (text that is no number, NaN, 1e400, 10**400)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _choice(fields: Mapping[str, Any], name: str, choices: dict[str, str]) -> str | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    if value not in choices:
        raise Invalid(f'"{value}" is not a valid choice.', field=name)
    return value


def apply_fields(subject: Subject, fields: Mapping[str, Any]) -> None:
    """Validate and set the writable fields (the original's NewSubjectSerializer)."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Invalid("This field is required.", field="name")
    if len(name) > 128:
        raise Invalid("Ensure this field has no more than 128 characters.", field="name")
    year = utcnow().year
    birth_year = _number(fields, "birth_year", int)
    if birth_year is not None and not 1900 <= birth_year <= year:
        raise Invalid("Ensure this value is between 1900 and today's year.", field="birth_year")
    subject.name = name.strip()
    # The original's model defaults: a measure not given is 0.0 (the pipeline copies them
    # into the trial's metadata); a birth year not given is kept, or else is this year
    # minus the age.
    for measure in ("weight", "height"):
        given = measure in fields
        value = _number(fields, measure, float) if given else getattr(subject, measure)
        setattr(subject, measure, 0.0 if value is None and not given else value)
    if birth_year or "birth_year" in fields or subject.birth_year is None:
        subject.birth_year = birth_year or year - (subject.age or 0)
    subject.age = year - subject.birth_year
    subject.gender = _choice(fields, "gender", GENDERS)
    subject.sex_at_birth = _choice(fields, "sex_at_birth", SEXES)
    subject.characteristics = str(fields.get("characteristics") or "")[:10_000]
    subject.updated_at = utcnow()


async def set_tags(tx: AsyncSession, subject: Subject, tags: Any) -> None:
    if tags is None:
        return
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise Invalid("Expected a list of strings.", field="subject_tags")
    await tx.execute(delete(SubjectTag).where(SubjectTag.subject_id == subject.id))
    for tag in dict.fromkeys(t.strip() for t in tags if t.strip()):
        tx.add(SubjectTag(subject_id=subject.id, tag=tag[:256]))


async def create_subject(tx: AsyncSession, user: User, fields: Mapping[str, Any]) -> Subject:
    now = utcnow()
    subject = Subject(user_id=user.id, created_at=now, updated_at=now, trashed=False)
    apply_fields(subject, fields)
    tx.add(subject)
    await tx.flush()
    await set_tags(tx, subject, fields.get("subject_tags"))
    return subject


async def get_subject(tx: AsyncSession, subject_id: str | int, user: User) -> Subject:
    """The user's subject (admins and the pipeline may read anyone's); 404 otherwise."""
    try:
        number = int(subject_id)
    except (TypeError, ValueError):
        number = 0
    subject = await tx.get(Subject, number) if 0 < number < 2**31 else None  # int4 ids
    if subject is None or (subject.user_id != user.id and not user.in_group("admin", "backend")):
        raise NotFound()
    return subject


async def subject_tags(tx: AsyncSession, subject_ids: list[int]) -> dict[int, list[SubjectTag]]:
    rows = await tx.scalars(
        select(SubjectTag).where(SubjectTag.subject_id.in_(subject_ids)).order_by(SubjectTag.tag)
    )
    tags: dict[int, list[SubjectTag]] = {i: [] for i in subject_ids}
    for row in rows:
        tags[row.subject_id].append(row)
    return tags


async def list_subjects(
    tx: AsyncSession, user: User, query: Mapping[str, str]
) -> tuple[list[Subject], int]:
    """The web app's subject list: search, trash filter, one sort key, paging; plus the
    count of all the user's subjects (unfiltered, as the original answers)."""
    mine = Subject.user_id == user.id
    stmt = select(Subject).where(mine)
    if query.get("include_trashed") != "true":
        stmt = stmt.where(Subject.trashed.is_(False))
    if query.get("search"):
        stmt = stmt.where(Subject.name.ilike(f"%{query['search']}%"))
    stmt = stmt.order_by(*_order(query))
    start, quantity = _int(query, "start", 0), _int(query, "quantity", -1)
    stmt = stmt.offset(max(start, 0))
    if quantity >= 0:
        stmt = stmt.limit(quantity)
    total = await tx.scalar(select(func.count()).select_from(Subject).where(mine))
    return list((await tx.scalars(stmt)).all()), total or 0


def _order(query: Mapping[str, str]) -> list:
    key = query.get("sort[]") or query.get("sort") or "name"
    column = (
        getattr(Subject, SORT_ALIASES.get(key, key))
        if (SORT_ALIASES.get(key, key) in SORTABLE)
        else Subject.name
    )
    descending = (query.get("sort_desc[]") or query.get("sort_desc")) == "true"
    return [column.desc() if descending else column.asc(), Subject.id]


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        number = int(query.get(name, default))
    except (ValueError, OverflowError):
        raise Invalid("A valid integer is required.", field=name) from None
    if not -1 <= number <= 10**6:
        raise Invalid("Ensure this value is between -1 and 1000000.", field=name)
    return number


async def remove_subject(tx: AsyncSession, subject: Subject) -> None:
    """Delete the subject for good; its sessions stay, without a subject (and say so)."""
    for session in await tx.scalars(select(Session).where(Session.subject_id == subject.id)):
        session.subject_id = None
        emit(tx, session.announced())
    await tx.delete(subject)
