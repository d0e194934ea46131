"""A session's `meta`, as the web app writes it with `set_metadata` and owners or the
pipeline replace it with PATCH (reference §1.9, §5.5)."""

import re
from collections.abc import Mapping
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from session_service.models import Session
from shared.errors import Invalid

MAX_FRAMERATE = 1000  # phones film at 30 to 240 frames a second
# set_metadata query parameters -> keys of meta["settings"] (reference §5.5)
SETTINGS_PARAMS = {
    "settings_framerate": "framerate",
    "settings_data_sharing": "datasharing",
    "settings_pose_model": "posemodel",
    "settings_openSimModel": "openSimModel",
    "settings_augmenter_model": "augmentermodel",
    "settings_filter_frequency": "filterfrequency",
    "settings_scaling_setup": "scalingsetup",
}
CHECKERBOARD_PARAMS = {
    "cb_square": "square_size",
    "cb_rows": "rows",
    "cb_cols": "cols",
    "cb_placement": "placement",
}
SUBJECT_PARAMS = {
    "mass": "subject_mass",
    "height": "subject_height",
    "sex": "subject_sex",
    "gender": "subject_gender",
    "datasharing": "subject_data_sharing",
    "posemodel": "subject_pose_model",
}


def metadata_from_query(session: Session, query: Mapping[str, str]) -> dict:
    """The session's meta after `GET set_metadata/?…`: the web app's settings, checkerboard
    and subject (reference §5.5; a frame rate alone replaces the settings, as there)."""
    meta = dict(session.meta or {})
    if "subject_id" in query:
        meta["subject"] = {
            "id": query["subject_id"],
            **{k: query.get(p, "") for k, p in SUBJECT_PARAMS.items()},
        }
    if "isMono" in query:
        session.is_mono = query["isMono"].lower() == "true"
    settings = {} if "settings_framerate" in query else dict(meta.get("settings") or {})
    settings |= {key: query[param] for param, key in SETTINGS_PARAMS.items() if param in query}
    if settings:
        framerate = str(settings.get("framerate", "60"))
        if not re.fullmatch(r"[0-9]{1,4}", framerate) or not 1 <= int(framerate) <= MAX_FRAMERATE:
            raise Invalid(
                f"A frame rate is a whole number from 1 to {MAX_FRAMERATE}.",
                field="settings_framerate",
            )
        meta["settings"] = settings
    if any(p in query for p in CHECKERBOARD_PARAMS):
        meta["checkerboard"] = {key: query.get(p, "") for p, key in CHECKERBOARD_PARAMS.items()}
    if "settings_session_name" in query:
        meta["sessionName"] = query["settings_session_name"][:256]
    return meta


LINKS = ("sessionWithCalibration", "startNewSession")


async def check_links(tx: AsyncSession, session: Session, meta: dict) -> None:
    """Links in a session's meta may only name the same owner's other sessions."""
    for key in LINKS:
        if key not in meta or meta[key] is None:
            continue
        value = meta[key].get("id") if isinstance(meta[key], dict) else None
        try:
            target = await tx.get(Session, UUID(str(value)))
        except ValueError:
            target = None
        if target is None or target.user_id != session.user_id or target.id == session.id:
            raise Invalid(f"{key} must name another session of yours.", field="meta")
