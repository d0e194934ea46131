"""Use cases of the upload service. Each takes the open transaction `tx` and never commits."""

import asyncio
import re
from datetime import timedelta
from typing import IO, Any
from uuid import UUID, uuid4

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import utcnow
from shared.errors import Conflict, Invalid, NotFound, PayloadTooLarge
from shared.events import Event
from shared.outbox import record
from shared.storage import Storage
from upload_service import policy
from upload_service.config import Settings
from upload_service.models import Outbox, UploadKey, UploadTrial, Video

PRODUCER = "upload"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._]")


def emit(tx: AsyncSession, event: Event | None) -> None:
    if event is not None:
        record(tx, Outbox, event, producer=PRODUCER)


async def presign(tx: AsyncSession, session_id: UUID, settings: Settings) -> dict[str, Any]:
    """An upload policy for one new `<uuid>.mov` key of a session with phones in it."""
    known = await tx.scalar(select(exists().where(Video.session_id == session_id)))
    if not known:
        raise NotFound("No phone has joined a trial of this session.")
    now = utcnow()
    key = f"{uuid4()}.mov"
    ttl = timedelta(seconds=settings.upload_policy_ttl_seconds)
    policy_b64, signature = policy.issue(
        key, now, ttl, settings.max_video_bytes, settings.upload_signing_secret
    )
    tx.add(UploadKey(key=key, session_id=session_id, expires_at=now + ttl, created_at=now))
    return {
        "url": f"{settings.public_base}/uploads/",
        "fields": {
            "key": key,
            "AWSAccessKeyId": settings.upload_access_key_id,
            "policy": policy_b64,
            "signature": signature,
        },
        "expires_at": (now + ttl).isoformat().replace("+00:00", "Z"),
    }


async def store_upload(
    tx: AsyncSession,
    fields: dict[str, Any],
    file: IO[bytes],
    size: int,
    storage: Storage,
    settings: Settings,
) -> None:
    """Check the posted policy, then stream the file into the object store."""
    key = str(fields.get("key") or "")
    for name in ("key", "policy", "signature"):
        if not fields.get(name):
            raise Invalid("This field is required.", field=name)
    allowed = policy.verify(
        str(fields["policy"]),
        str(fields["signature"]),
        key,
        utcnow(),
        settings.upload_signing_secret,
    )
    if size < allowed.min_bytes:
        raise Invalid("The uploaded file is empty.", field="file")
    if size > allowed.max_bytes:
        raise PayloadTooLarge(f"The uploaded file is larger than {allowed.max_bytes} bytes.")
    issued = await tx.get(UploadKey, key, with_for_update=True)
    if issued is None:
        raise NotFound("This upload key was not issued here.")
    await asyncio.to_thread(storage.upload_fileobj, file, key)
    issued.stored_at, issued.size = utcnow(), size


async def attach_video(
    tx: AsyncSession, video_id: UUID, fields: dict[str, Any], parameters: Any, storage: Storage
) -> Video:
    """`PATCH /videos/{id}/`: attach the stored object (or the legacy inline file)."""
    video = await tx.get(Video, video_id)
    if video is None:
        raise NotFound()
    trial = await tx.get(UploadTrial, video.trial_id, with_for_update=True)
    await tx.refresh(video, with_for_update=True)
    upload = fields.get("video")
    if hasattr(upload, "read"):
        key, size = await _store_inline(upload, storage)
    elif fields.get("video_url"):
        key = str(fields["video_url"])
        size = await _verified_size(tx, key, video, storage)
    else:
        if parameters is not None:
            video.parameters, video.updated_at = parameters, utcnow()
        return video
    now = utcnow()
    emit(tx, video.attach(key, size, parameters, now))
    if trial is not None:
        emit(tx, trial.all_received(await trial_videos(tx, trial.id), now))
    return video


async def _verified_size(tx: AsyncSession, key: str, video: Video, storage: Storage) -> int:
    # Locked, so two videos patched at once with the same key cannot both take it.
    issued = await tx.get(UploadKey, key, with_for_update=True)
    if issued is None or issued.session_id != video.session_id:
        raise Invalid("This key was not issued for this session's uploads.", field="video_url")
    if await tx.scalar(select(exists().where(Video.key == key, Video.id != video.id))):
        raise Conflict("This upload is already attached to another video.")
    size = await asyncio.to_thread(storage.size, key)
    if not size:
        raise Invalid("No uploaded file was found under this key.", field="video_url")
    return size


async def _store_inline(upload: Any, storage: Storage) -> tuple[str, int]:
    name = SAFE_NAME.sub("", (upload.filename or "video.mov").replace("-", "")) or "video.mov"
    key = f"{uuid4()}-{name}"
    await asyncio.to_thread(storage.upload_fileobj, upload.file, key)
    size = await asyncio.to_thread(storage.size, key)
    if not size:
        raise Invalid("The uploaded file is empty.", field="video")
    return key, size


async def trial_videos(tx: AsyncSession, trial_id: UUID) -> list[Video]:
    stmt = select(Video).where(Video.trial_id == trial_id).order_by(Video.created_at)
    return list((await tx.scalars(stmt)).all())
