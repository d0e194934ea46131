"""Request bodies and the original API's response shapes (field names and order kept).

Media fields become presigned GET URLs; dates are ISO-8601 UTC with a `Z`; durations use
Django's `[D ]HH:MM:SS[.ffffff]`.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from session_service.models import Result, Session, Subject, Trial, User, Video
from session_service.models.subjects import GENDERS, SEXES

Presign = Callable[[str], str]


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


def session_name(session: Session, subject: Subject | None = None) -> str:
    if subject is not None:
        return subject.name
    legacy = (session.meta or {}).get("subject") or {}
    if legacy.get("id"):
        return str(legacy["id"])
    return str(session.id).split("-")[0]


def trials_count(trials: list[Trial]) -> int:
    """Trials the web app counts: not calibration, and neutral only once done."""
    return sum(
        1
        for t in trials
        if t.name != "calibration" and not (t.name == "neutral" and t.status != "done")
    )


def session_json(
    session: Session,
    trials: list[dict[str, Any]],
    counted: list[Trial],
    presign: Presign,
    subject: Subject | None = None,
) -> dict[str, Any]:
    """The Session shape; `trials` are trial views (empty for the list's light shape) and
    `counted` the trial rows the counts come from."""
    meta = session.meta or {}
    return {
        "id": str(session.id),
        "user": session.user_id,
        "public": session.public,
        "name": session_name(session, subject),
        "sessionName": meta.get("sessionName", ""),
        "qrcode": presign(session.qrcode_key) if session.qrcode_key else None,
        "meta": session.meta,
        "trials": trials,
        "server": session.server,
        "subject": session.subject_id,
        "isMono": session.is_mono,
        "created_at": iso(session.created_at),
        "updated_at": iso(session.updated_at),
        "trashed": session.trashed,
        "trashed_at": iso(session.trashed_at),
        "trials_count": trials_count(counted),
        "trashed_trials_count": sum(1 for t in counted if t.trashed),
    }


def subject_json(subject: Subject, tags: list[str]) -> dict[str, Any]:
    return {
        "id": subject.id,
        "name": subject.name,
        "weight": subject.weight,
        "height": subject.height,
        "age": subject.age,
        "birth_year": subject.birth_year,
        "gender": subject.gender,
        "gender_display": GENDERS.get(subject.gender or ""),
        "sex_at_birth": subject.sex_at_birth,
        "sex_display": SEXES.get(subject.sex_at_birth or ""),
        "characteristics": subject.characteristics,
        "subject_tags": tags,
        "created_at": iso(subject.created_at),
        "updated_at": iso(subject.updated_at),
        "trashed": subject.trashed,
        "trashed_at": iso(subject.trashed_at),
    }


def simple_subject_json(subject: Subject) -> dict[str, Any]:
    return {
        "id": subject.id,
        "display_name": f"{subject.name} ({subject.weight} Kg, {subject.height} m, "
        f"{subject.birth_year})",
    }


def user_json(user: User, presign: Presign) -> dict[str, Any]:
    """The user as register and the profile pages read it (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "institution": user.institution,
        "reason": user.reason,
        "website": user.website,
        "newsletter": user.newsletter,
        "profession": user.profession,
        "country": user.country,
        "profile_picture": presign(user.profile_picture_key) if user.profile_picture_key else None,
        "institutional_use": user.institutional_use,
    }
