"""Session routes (reference §4.1). Static paths come before `/sessions/{id}/…`."""

import re
from datetime import timedelta

from fastapi import APIRouter, Request, Response

from session_service import listing, metadata, sessions, trials
from session_service.api.deps import (
    NO_PERMISSION,
    Reader,
    VerifiedUser,
    parse_id,
    session_view,
    settings,
    storage,
    trial_view,
)
from session_service.models import Result, Session, User
from shared.db import Tx, utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import TrialMetaUpdated
from shared.forms import boolean_field, json_field, read_fields

router = APIRouter(prefix="/sessions")
PLACEHOLDERS = {
    "calibration": "https://main.d2stl78iuswh3t.amplifyapp.com/images/camera-calibration.png",
    "neutral": "https://main.d2stl78iuswh3t.amplifyapp.com/images/neutral_pose.png",
}


@router.get("/")
async def list_sessions(tx: Tx, request: Request, user: VerifiedUser) -> list[dict]:
    return [await session_view(tx, request, s) for s in await listing.own_sessions(tx, user)]


@router.get("/new/")
async def new_session(tx: Tx, request: Request, user: VerifiedUser) -> list[dict]:
    session = await sessions.create_session(
        tx, user, storage(request), settings(request).public_base
    )
    return [await session_view(tx, request, session)]


@router.api_route("/valid/", methods=["GET", "POST"])
async def valid(tx: Tx, request: Request, user: VerifiedUser) -> dict | list:
    body = await read_fields(request) if request.method == "POST" else dict(request.query_params)
    found, total = await listing.valid_sessions(tx, user, body)
    light = [await session_view(tx, request, s, with_trials=False) for s in found]
    return light if total is None else {"sessions": light, "total": total}


@router.get("/search_sessions/")
async def search(tx: Tx, request: Request, user: VerifiedUser, text: str | None = None):
    if not text:
        return Response(
            '{"error": "Missing `text` query parameter."}', 400, media_type="application/json"
        )
    found = await sessions.owned_sessions(tx, user, text)
    return [await session_view(tx, request, s) for s in found]


@router.get("/api_health_check/")
async def health_check() -> dict:
    return {"status": "True"}


@router.post("/get_session_statuses/")
async def session_statuses(tx: Tx, request: Request, user: VerifiedUser) -> list[dict]:
    body = await read_fields(request)
    if not body.get("status"):
        raise Invalid("This field is required.", field="status")
    found = await sessions.sessions_with_status(tx, user, body)
    return [{"id": str(s.id)} for s in found]


async def _owned(tx: Tx, session_id: str, user: User | None) -> Session:
    return await sessions.get_session(tx, parse_id(session_id), user, write=True)


@router.get("/{session_id}/")
async def read_session(session_id: str, tx: Tx, request: Request, user: Reader) -> dict:
    session = await sessions.get_session(tx, parse_id(session_id), user)
    owner_view = sessions.can_write(session, user)
    return await session_view(tx, request, session, owner_view=owner_view)


@router.api_route("/{session_id}/", methods=["PATCH", "PUT"])
async def update_session(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    fields = await read_fields(request)
    if "public" in fields:
        public = boolean_field(fields["public"], "public")
        sessions.emit(tx, session.set_public(public, utcnow()))
    if "meta" in fields:
        meta = json_field(fields["meta"], "meta")
        if meta is not None and not isinstance(meta, dict):
            raise Invalid("Expected a JSON object.", field="meta")
        await metadata.check_links(tx, session, meta or {})
        sessions.emit(tx, session.set_meta(meta, utcnow()))
    session.updated_at = utcnow()
    return await session_view(tx, request, session)


@router.delete("/{session_id}/", status_code=204)
async def delete_session(session_id: str, tx: Tx, user: VerifiedUser) -> Response:
    session = await _owned(tx, session_id, user)
    await sessions.delete_sessions(tx, [session.id])
    return Response(status_code=204)


@router.get("/{session_id}/status/")
async def status(session_id: str, tx: Tx, request: Request, user: Reader) -> dict:
    """The phones' status as the web app reads it with `?ret_session=true` (the gateway
    sends those here; phones, with a device_id, go to the device service)."""
    session = await sessions.get_session(tx, parse_id(session_id), user)
    body = await trials.phone_view(tx, session, settings(request).public_base)
    if "ret_session" in request.query_params and sessions.can_write(session, user):
        body["session"] = await session_view(tx, request, session)
    return body


@router.get("/{session_id}/get_qr/")
async def get_qr(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    key = session.qrcode_key or (await sessions.calibration_session(tx, session)).qrcode_key
    ttl = settings(request).qr_url_ttl_seconds
    return {"qr": storage(request).presigned_get(key, ttl) if key else None}


@router.get("/{session_id}/new_subject/")
async def new_subject(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> list:
    session = await _owned(tx, session_id, user)
    child = await sessions.new_subject(tx, session, user, settings(request).public_base)
    return [await session_view(tx, request, child)]


@router.get("/{session_id}/set_metadata/")
async def set_metadata(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    meta = metadata.metadata_from_query(session, request.query_params)
    sessions.emit(tx, session.set_meta(meta, utcnow()))
    return await session_view(tx, request, session)


@router.get("/{session_id}/set_subject/")
async def set_subject(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    await sessions.set_subject(tx, session, request.query_params.get("subject_id", ""))
    return await session_view(tx, request, session)


@router.get("/{session_id}/record/")
async def record(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    name = request.query_params.get("name")
    trial = await trials.record_trial(tx, session, name, settings(request))
    return await trial_view(tx, request, trial)


@router.get("/{session_id}/stop/")
async def stop(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    trial = await trials.stop_trial(tx, await _owned(tx, session_id, user))
    return await trial_view(tx, request, trial)


@router.get("/{session_id}/cancel_trial/")
async def cancel_trial(session_id: str, tx: Tx, user: VerifiedUser) -> dict:
    return await trials.cancel_trial(tx, await _owned(tx, session_id, user))


async def _capture(session_id: str, name: str, tx: Tx, request: Request, user) -> dict:
    session = await sessions.get_session(tx, parse_id(session_id), user)
    view = await trials.phone_view(tx, session, settings(request).public_base)
    counts = {k: view[k] for k in ("n_cameras_connected", "n_videos_uploaded")}
    trial = await sessions.latest_trial(tx, session.id, name=name)
    if trial is None:
        return {"status": "error", "img": [PLACEHOLDERS[name]], **counts}
    if trial.status == "recording":
        # The original's `record` slept through the capture, so it never showed this state;
        # ours returns at once. The web app checks the calibrated cameras (and tells the
        # subject to relax) on its first "processing": not before the phones have recorded.
        return {"status": "recording", "img": [], **counts}
    if trial.status not in ("done", "error"):
        return {"status": "processing", "img": [], **counts}
    if trial.status == "error":
        return {"status": "error", "img": [], **counts}
    if name == "calibration":
        return {"status": "done", "img": "None", **counts}
    _, results = await trials.trial_media(tx, trial.id)
    images = [_media(request, r) for r in results if r.tag == "neutral-img" and r.key]
    if images:
        return {"status": "done", "img": images, **counts}
    grace = timedelta(seconds=settings(request).results_grace_seconds)
    if utcnow() - trial.updated_at < grace:  # its images may still be on their way
        return {"status": "processing", "img": [], **counts}
    return {"status": "error", "img": [], **counts}


def _media(request: Request, result: Result) -> str:
    return storage(request).presigned_get(result.key)


@router.get("/{session_id}/calibration_img/")
async def calibration_img(session_id: str, tx: Tx, request: Request, user: Reader) -> dict:
    return await _capture(session_id, "calibration", tx, request, user)


@router.get("/{session_id}/neutral_img/")
async def neutral_img(session_id: str, tx: Tx, request: Request, user: Reader) -> dict:
    return await _capture(session_id, "neutral", tx, request, user)


@router.get("/{session_id}/get_n_calibrated_cameras/")
async def n_calibrated(session_id: str, tx: Tx, user: Reader) -> dict:
    session = await sessions.get_session(tx, parse_id(session_id), user)
    return {"error_message": "", "data": await sessions.n_calibrated_cameras(tx, session)}


@router.get("/{session_id}/get_session_settings/")
async def session_settings(session_id: str, tx: Tx, user: Reader) -> dict:
    session = await sessions.get_session(tx, parse_id(session_id), user)
    return {"framerates": await sessions.session_framerates(tx, session)}


# The newer apps' capture flags (reference/clients.md §1.5): anyone may read them (phones
# too), the owner sets them; "new subject, same setup" carries them over.
CAPTURE_FLAGS = {"save_local": "save_local", "useLidar": "use_lidar"}


@router.get("/{session_id}/save_local/")
async def read_save_local(session_id: str, tx: Tx) -> dict:
    return await _read_flag(tx, session_id, "save_local")


@router.patch("/{session_id}/save_local/")
async def set_save_local(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    return await _set_flag(tx, session_id, "save_local", request, user)


@router.get("/{session_id}/useLidar/")
async def read_use_lidar(session_id: str, tx: Tx) -> dict:
    return await _read_flag(tx, session_id, "useLidar")


@router.patch("/{session_id}/useLidar/")
async def set_use_lidar(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    return await _set_flag(tx, session_id, "useLidar", request, user)


async def _read_flag(tx: Tx, session_id: str, flag: str) -> dict:
    session = await tx.get(Session, parse_id(session_id))
    if session is None:
        raise NotFound()
    return {flag: getattr(session, CAPTURE_FLAGS[flag])}


async def _set_flag(tx: Tx, session_id: str, flag: str, request: Request, user: User) -> dict:
    session = await _owned(tx, session_id, user)
    value = (await read_fields(request)).get(flag)
    if value is None:
        raise Invalid("This field is required.", field=flag)
    setattr(session, CAPTURE_FLAGS[flag], boolean_field(value, flag))
    session.updated_at = utcnow()
    return {flag: getattr(session, CAPTURE_FLAGS[flag])}


@router.get("/{session_id}/get_session_permission/")
async def session_permission(session_id: str, tx: Tx, user: Reader) -> dict:
    session = await sessions.get_session(tx, parse_id(session_id), user)
    owner = user is not None and user.id == session.user_id
    admin = user is not None and user.in_group("admin")
    return {"isOwner": owner, "isPublic": session.public, "isAdmin": admin}


@router.api_route("/{session_id}/calibration/", methods=["GET", "POST"])
async def calibration_choice(session_id: str, tx: Tx, request: Request, user: VerifiedUser):
    """The legacy camera-solution choice of the latest calibration (GET reads it)."""
    session = await _owned(tx, session_id, user)
    trial = await sessions.calibration_trial(tx, session)
    if request.method == "POST":
        body = await read_fields(request)
        if trial is None:
            raise Invalid("This session has no calibration trial.")
        trial.meta, trial.updated_at = {"calibration": camera_choices(body)}, utcnow()
        sessions.emit(
            tx, TrialMetaUpdated(trial_id=trial.id, session_id=trial.session_id, meta=trial.meta)
        )
    data = ((trial.meta or {}).get("calibration") if trial else None) or {}
    return {"status": "ok", "data": data}


def camera_choices(body: dict) -> dict[str, int]:
    """`{"Cam0": 0, "Cam1": 1}`: each camera's chosen calibration solution."""
    choices = {}
    for camera, choice in body.items():
        text = str(choice)
        if not re.fullmatch(r"Cam[0-9]{1,2}", camera) or not re.fullmatch(r"[0-9]{1,2}", text):
            raise Invalid("Expected camera names (Cam0, Cam1, …) with a solution number each.")
        choices[camera] = int(text)
    return choices


@router.post("/{session_id}/rename/")
async def rename(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    name = (await read_fields(request)).get("sessionNewName")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise Invalid("A name of 1 to 256 characters is required.", field="sessionNewName")
    sessions.emit(
        tx, session.set_meta({**(session.meta or {}), "sessionName": name.strip()}, utcnow())
    )
    return {"message": "", "data": await session_view(tx, request, session)}


@router.post("/{session_id}/trash/")
async def trash(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    sessions.trash(session, utcnow())
    return await session_view(tx, request, session)


@router.post("/{session_id}/restore/")
async def restore(session_id: str, tx: Tx, request: Request, user: VerifiedUser) -> dict:
    session = await _owned(tx, session_id, user)
    sessions.trash(session, utcnow(), trashed=False)
    return await session_view(tx, request, session)


@router.post("/{session_id}/permanent_remove/")
async def permanent_remove(session_id: str, tx: Tx, user: VerifiedUser) -> dict:
    await sessions.remove_recordings(tx, await _owned(tx, session_id, user))
    return {}


@router.post("/{session_id}/set_session_status/")
async def set_session_status(session_id: str, tx: Tx, request: Request, user: VerifiedUser):
    if not user.in_group("admin", "backend"):
        raise Forbidden(NO_PERMISSION)
    session = await _owned(tx, session_id, user)
    value = (await read_fields(request)).get("status")
    if not isinstance(value, str) or not value or len(value) > 64:
        raise Invalid("This field is required.", field="status")
    session.status, session.status_changed = value, utcnow()
    return {"status": value}
