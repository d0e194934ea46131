"""Request bodies and the original API's response shapes (field names and order kept).

Media fields become presigned GET URLs; dates are ISO-8601 UTC with a `Z`; durations use
Django's `[D ]HH:MM:SS[.ffffff]`.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from session_service.models import Result, Session, Trial, Video

Presign = Callable[[str], str]


class LoginBody(BaseModel):
    username: str
    password: str


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def duration(value: timedelta | None) -> str | None:
    if value is None:
        return None
    days, seconds = value.days, value.seconds
    text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if value.microseconds:
        text += f".{value.microseconds:06d}"
    return f"{days} {text}" if days else text


def video_json(video: Video, presign: Presign) -> dict[str, Any]:
    return {
        "id": str(video.id),
        "trial": str(video.trial_id),
        "device_id": str(video.device_id),
        "video": presign(video.key) if video.key else None,
        "video_thumb": None,
        "parameters": video.parameters,
        "created_at": iso(video.created_at),
        "updated_at": iso(video.updated_at),
    }


def result_json(result: Result, presign: Presign) -> dict[str, Any]:
    return {
        "id": result.id,
        "trial": str(result.trial_id),
        "tag": result.tag,
        "media": presign(result.key) if result.key else None,
        "meta": result.meta,
        "device_id": result.device_id,
        "created_at": iso(result.created_at),
        "updated_at": iso(result.updated_at),
    }


def trial_json(
    trial: Trial, videos: list[Video], results: list[Result], presign: Presign
) -> dict[str, Any]:
    return {
        "id": str(trial.id),
        "session": str(trial.session_id),
        "name": trial.name,
        "status": trial.status,
        "videos": [video_json(v, presign) for v in videos],
        "results": [result_json(r, presign) for r in results],
        "meta": trial.meta,
        "created_at": iso(trial.created_at),
        "updated_at": iso(trial.updated_at),
        "server": trial.server,
        "is_docker": trial.is_docker,
        "hostname": trial.hostname,
        "processed_duration": duration(trial.processed_duration),
        "processed_count": trial.processed_count,
        "git_commit": trial.git_commit,
        "trashed": trial.trashed,
        "trashed_at": iso(trial.trashed_at),
    }


def session_name(session: Session) -> str:
    subject = (session.meta or {}).get("subject") or {}
    if subject.get("id"):
        return str(subject["id"])
    return str(session.id).split("-")[0]


def trials_count(trials: list[Trial]) -> int:
    """Trials the web app counts: not calibration, and neutral only once done."""
    return sum(
        1
        for t in trials
        if t.name != "calibration" and not (t.name == "neutral" and t.status != "done")
    )


def session_json(
    session: Session, trials: list[dict[str, Any]], counted: list[Trial], presign: Presign
) -> dict[str, Any]:
    meta = session.meta or {}
    return {
        "id": str(session.id),
        "user": session.user_id,
        "public": session.public,
        "name": session_name(session),
        "sessionName": meta.get("sessionName", ""),
        "qrcode": presign(session.qrcode_key) if session.qrcode_key else None,
        "meta": session.meta,
        "trials": trials,
        "server": session.server,
        "subject": None,
        "isMono": session.is_mono,
        "created_at": iso(session.created_at),
        "updated_at": iso(session.updated_at),
        "trashed": session.trashed,
        "trashed_at": iso(session.trashed_at),
        "trials_count": trials_count(counted),
        "trashed_trials_count": sum(1 for t in counted if t.trashed),
    }
