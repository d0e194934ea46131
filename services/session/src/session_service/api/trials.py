"""Trial routes (reference §4.2) and trial tags."""

import ipaddress
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from session_service import processing, sessions, trials
from session_service.api.deps import (
    NO_PERMISSION,
    Reader,
    VerifiedUser,
    parse_id,
    settings,
    trial_view,
)
from session_service.models import Session, Trial, TrialTag, User
from shared.db import Tx, utcnow
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import TrialMetaUpdated, TrialRenamed
from shared.forms import boolean_field, json_field, read_fields
from shared.identity import client_address

router = APIRouter()
WORKER_FIELDS = ("hostname", "git_commit")
# Trial fields the API sets itself: a PATCH or PUT may repeat their values, not change them.
SYSTEM_FIELDS = {
    "session": lambda trial: str(trial.session_id),
    "processed_count": lambda trial: str(trial.processed_count or 0),
}


async def _writable(tx: Tx, trial_id: str, user: User) -> Trial:
    trial = await trials.get_trial(tx, parse_id(trial_id), user)
    session = await tx.get(Session, trial.session_id)
    if not sessions.can_write(session, user):
        raise NotFound()
    return trial


@router.get("/trials/")
async def list_trials(tx: Tx, request: Request, user: VerifiedUser) -> list[dict]:
    mine = select(Session.id).where(Session.user_id == user.id)
    stmt = select(Trial).where(Trial.session_id.in_(mine)).order_by(Trial.created_at).limit(5000)
    return [await trial_view(tx, request, t) for t in (await tx.scalars(stmt)).all()]


def _pipeline(user: User) -> None:
    if not user.in_group("admin", "backend"):
        raise Forbidden(NO_PERMISSION)


@router.get("/trials/dequeue/")
async def dequeue(tx: Tx, request: Request, user: VerifiedUser) -> dict:
    """The stock pipeline takes the next trial (an atomic claim); 404 when none waits."""
    _pipeline(user)
    query = request.query_params
    if query.get("workerType", "all") not in ("all", "calibration", "dynamic"):
        raise Invalid("Use all, calibration or dynamic.", field="workerType")
    trial = await processing.dequeue(tx, query, client_address(request), settings(request))
    if trial is None:
        raise NotFound()
    return await trial_view(tx, request, trial)


@router.get("/trials/get_trials_with_status/")
async def trials_with_status(tx: Tx, request: Request, user: VerifiedUser) -> dict | list:
    """Trials in a status and updated more than (or, `relativeTime=newer`, less than)
    `hoursSinceUpdate` hours ago; `justNumber=1` answers only their count."""
    _pipeline(user)
    query = request.query_params
    try:
        hours = float(query.get("hoursSinceUpdate", 0))
    except ValueError:
        hours = -1.0
    if not 0 <= hours <= 24 * 365 * 10:  # also NaN and infinities
        raise Invalid("A number of hours (0 to ten years) is required.", field="hoursSinceUpdate")
    cutoff = utcnow() - timedelta(hours=hours)
    recent = query.get("relativeTime") == "newer"
    when = Trial.updated_at >= cutoff if recent else Trial.updated_at <= cutoff
    stmt = select(Trial).where(Trial.status == query.get("status", ""), when)
    if query.get("justNumber") in ("1", "true", "True"):
        return {"nTrials": await tx.scalar(select(func.count()).select_from(stmt.subquery()))}
    found = (await tx.scalars(stmt.order_by(Trial.created_at.desc()).limit(1000))).all()
    return [await trial_view(tx, request, t) for t in found]


@router.get("/trials/{trial_id}/")
async def read_trial(trial_id: str, tx: Tx, request: Request, user: Reader) -> dict:
    trial = await trials.get_trial(tx, parse_id(trial_id), user)
    session = await tx.get(Session, trial.session_id)
    owner_view = sessions.can_write(session, user)
    return await trial_view(tx, request, trial, owner_view=owner_view)


@router.api_route("/trials/{trial_id}/", methods=["PATCH", "PUT"])
async def update_trial(trial_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    trial = await _writable(tx, trial_id, user)
    await apply_patch(tx, trial, await read_fields(request), user)
    return await trial_view(tx, request, trial)


async def apply_patch(tx: Tx, trial: Trial, fields: dict[str, Any], user: User) -> None:
    """What the pipeline and owners change on a trial; statuses go through its rules."""
    if "meta" in fields:
        meta = json_field(fields["meta"], "meta")
        if meta is not None and not isinstance(meta, dict):
            raise Invalid("Expected a JSON object.", field="meta")
        trial.meta = meta
        sessions.emit(
            tx, TrialMetaUpdated(trial_id=trial.id, session_id=trial.session_id, meta=meta)
        )
    for name, current in SYSTEM_FIELDS.items():
        if name in fields and str(fields[name]).lower() != current(trial):
            raise Invalid("This field is set by the system and cannot be changed.", field=name)
    for name in WORKER_FIELDS:
        if name in fields:
            value = fields[name]
            if value is not None and not isinstance(value, str | int | float):
                raise Invalid("Not a valid string.", field=name)
            if value is not None and len(str(value)) > 64:
                raise Invalid("Ensure this field has no more than 64 characters.", field=name)
            setattr(trial, name, str(value) if value is not None else None)
    if "server" in fields:
        trial.server = _ip_address(fields["server"])
    if fields.get("is_docker") is not None:
        trial.is_docker = boolean_field(fields["is_docker"], "is_docker")
    if "trashed" in fields:
        trashed = boolean_field(fields["trashed"], "trashed")
        if trashed != trial.trashed:
            sessions.trash(trial, utcnow(), trashed=trashed)
    if "processed_duration" in fields:
        trial.processed_duration = parse_duration(fields["processed_duration"])
    if "name" in fields and fields["name"] != trial.name:
        name = trials.validate_trial_name(fields["name"])
        if {name, trial.name} & {"calibration", "neutral"}:
            raise Conflict("Calibration and neutral trials keep their names.")
        trial.name = name
        sessions.emit(
            tx, TrialRenamed(trial_id=trial.id, session_id=trial.session_id, name=trial.name)
        )
    if "status" in fields:
        status = str(fields["status"])
        if status == "reprocess" and trial.status != "reprocess":
            trials.check_reprocess(trial)
            await processing.reprocess(tx, trial)
        else:
            sessions.emit(tx, trials.set_status(trial, status, user))
    trial.updated_at = utcnow()


def _ip_address(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise Invalid("Enter a valid IPv4 or IPv6 address.", field="server") from None


def parse_duration(value: Any) -> timedelta | None:
    """Django's duration text (`[D ]H:MM:SS[.ffffff]`), or Python's `str(timedelta)`
    (`[D day[s], ]H:MM:SS[.ffffff]`) as the pipeline sends it."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    days = 0
    if " " in text:
        head, text = text.split(" ", 1)
        days = int(head) if head.lstrip("-").isdigit() else 0
        text = text.removeprefix("days,").removeprefix("day,").strip()  # str(timedelta)
    try:
        hours, minutes, seconds = text.split(":")
        duration = timedelta(
            days=days, hours=int(hours), minutes=int(minutes), seconds=float(seconds)
        )
    except (ValueError, OverflowError):
        raise Invalid(
            "Duration has wrong format. Use [DD] [HH:[MM:]]ss[.uuuuuu].", field="processed_duration"
        ) from None
    if duration < timedelta(0):
        raise Invalid("A processing duration cannot be negative.", field="processed_duration")
    return duration


@router.delete("/trials/{trial_id}/", status_code=204)
async def delete_trial(trial_id: str, tx: Tx, user: VerifiedUser) -> Response:
    await trials.delete_trial(tx, await _writable(tx, trial_id, user))
    return Response(status_code=204)


@router.post("/trials/{trial_id}/rename/")
async def rename(trial_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    trial = await _writable(tx, trial_id, user)
    name = trials.validate_trial_name((await read_fields(request)).get("trialNewName"))
    if name in ("calibration", "neutral") or trial.name in ("calibration", "neutral"):
        raise Conflict("Calibration and neutral trials keep their names.")
    trial.name, trial.updated_at = name, utcnow()
    sessions.emit(tx, TrialRenamed(trial_id=trial.id, session_id=trial.session_id, name=name))
    return {"data": await trial_view(tx, request, trial)}


@router.post("/trials/{trial_id}/modifyTags/")
async def modify_tags(trial_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    trial = await _writable(tx, trial_id, user)
    await trials.set_tags(tx, trial, (await read_fields(request)).get("trialNewTags"))
    return {"data": await trial_view(tx, request, trial)}


@router.post("/trials/{trial_id}/trash/")
async def trash(trial_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    trial = await _writable(tx, trial_id, user)
    sessions.trash(trial, utcnow())
    return await trial_view(tx, request, trial)


@router.post("/trials/{trial_id}/restore/")
async def restore(trial_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    trial = await _writable(tx, trial_id, user)
    sessions.trash(trial, utcnow(), trashed=False)
    return await trial_view(tx, request, trial)


@router.post("/trials/{trial_id}/permanent_remove/")
async def permanent_remove(trial_id: str, tx: Tx, user: VerifiedUser) -> dict:
    await trials.delete_trial(tx, await _writable(tx, trial_id, user))
    return {}


def _tag_json(tag: TrialTag) -> dict:
    return {"id": tag.id, "tag": tag.tag, "trial_id": str(tag.trial_id)}


@router.get("/trial-tags/{trial_id}/get_tags_trial/")
async def tags_of_trial(trial_id: str, tx: Tx, user: VerifiedUser) -> list[dict]:
    trial = await trials.get_trial(tx, parse_id(trial_id), user)
    return [_tag_json(t) for t in await trials.trial_tags(tx, trial.id)]


@router.get("/trial-tags/")
async def list_trial_tags(tx: Tx, user: VerifiedUser) -> list[dict]:
    mine = (
        select(Trial.id)
        .join(Session, Session.id == Trial.session_id)
        .where(Session.user_id == user.id)
    )
    stmt = select(TrialTag).where(TrialTag.trial_id.in_(mine)).order_by(TrialTag.trial_id)
    return [{"tag": t.tag, "trial": str(t.trial_id)} for t in (await tx.scalars(stmt)).all()]


@router.post("/trial-tags/", status_code=201)
async def create_trial_tag(tx: Tx, request: Request, user: VerifiedUser) -> dict:
    fields = await read_fields(request)
    tag = fields.get("tag")
    if not isinstance(tag, str) or not tag.strip():
        raise Invalid("This field is required.", field="tag")
    trial = await _writable(tx, str(fields.get("trial", "")), user)
    row = TrialTag(trial_id=trial.id, tag=tag.strip()[:256])
    tx.add(row)
    await tx.flush()
    return {"tag": row.tag, "trial": str(row.trial_id)}
