"""Use cases of the upload service. Each takes the open transaction `tx` and never commits."""

import asyncio
import re
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from shared.db import utcnow
from shared.errors import Conflict, Forbidden, Invalid, NotAuthenticated, NotFound
from shared.events import Event
from shared.identity import Caller
from shared.outbox import record
from shared.storage import Storage
from upload_service import policy
from upload_service.config import Settings
from upload_service.deadlines import extend_deadlines, waiting_trials
from upload_service.models import KnownSession, Outbox, UploadKey, UploadTrial, Video
from upload_service.schemas import VideoPatch

PRODUCER = "upload"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._]")
MAX_CHAIN = 50
NO_PERMISSION = "You do not have permission to perform this action."
NOT_WAITING = "No trial of this session is waiting for uploads."


def emit(tx: AsyncSession, event: Event | None) -> None:
    if event is not None:
        record(tx, Outbox, event, producer=PRODUCER)


async def session_chain(tx: AsyncSession, session_id: UUID) -> list[UUID]:
    """The session, then those its phones moved on to ("new subject, same setup"). The iOS
    app keeps presigning with its first session's address, so its keys count for all.
    Only sessions of the first one's owner are linked: a link to another's is ignored."""
    chain = [session_id]
    owner = await tx.scalar(select(KnownSession.user_id).where(KnownSession.id == session_id))
    if owner is None:
        return chain
    following = aliased(KnownSession)
    for _ in range(MAX_CHAIN):
        stmt = (
            select(following.id)
            .join(KnownSession, KnownSession.next_session_id == following.id)
            .where(KnownSession.id == chain[-1], following.user_id == owner)
        )
        next_id = await tx.scalar(stmt)
        if next_id is None or next_id in chain:
            break
        chain.append(next_id)
    return chain


async def presign(tx: AsyncSession, session_id: UUID, settings: Settings) -> dict[str, Any]:
    """An upload policy for one new `<uuid>.mov` key, only while a trial of the session
    (or of one it moved on to) that phones joined waits for uploads: recording, stopped or
    with its camera set final, not all videos in, not timed out, not ended elsewhere."""
    chain = await session_chain(tx, session_id)
    if not await _awaits_uploads(tx, chain):
        raise NotFound(NOT_WAITING)
    now = utcnow()
    key = f"{uuid4()}.mov"
    ttl = timedelta(seconds=settings.upload_policy_ttl_seconds)
    tx.add(UploadKey(key=key, session_id=session_id, expires_at=now + ttl, created_at=now))
    await extend_deadlines(tx, chain, now)
    return _upload_form(key, now, ttl, settings.max_video_bytes, settings)


async def _awaits_uploads(tx: AsyncSession, session_ids: list[UUID]) -> bool:
    joined = exists().where(Video.trial_id == UploadTrial.id)
    waiting = exists().where(UploadTrial.session_id.in_(session_ids), waiting_trials(), joined)
    return bool(await tx.scalar(select(waiting)))


def _upload_form(key: str, now, ttl: timedelta, max_bytes: int, settings: Settings) -> dict:
    policy_b64, signature = policy.issue(key, now, ttl, max_bytes, settings.upload_signing_secret)
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


async def presign_result(tx: AsyncSession, file_name: Any, settings: Settings) -> dict[str, Any]:
    """An upload policy for one result file of the pipeline, under `<uuid4>-<fileName>`
    (the name made safe and without '-': clients read it back after the last '-')."""
    name = SAFE_NAME.sub("", str(file_name or "").replace("-", ""))[-100:] or "result"
    key, now = f"{uuid4()}-{name}", utcnow()
    ttl = timedelta(seconds=settings.upload_policy_ttl_seconds)
    tx.add(UploadKey(key=key, session_id=None, expires_at=now + ttl, created_at=now))
    return _upload_form(key, now, ttl, settings.max_result_bytes, settings)


async def open_upload(tx: AsyncSession, key: str) -> list[UUID]:
    """An upload to `key` begins (a video's only while a trial of its session still waits
    for uploads): the sessions whose deadlines its progress extends (none for a result
    file, whose key has no session)."""
    issued = await tx.get(UploadKey, key)
    if issued is None:
        raise Forbidden("This upload key was not issued here.")
    if issued.session_id is None:
        return []
    if await tx.scalar(select(exists().where(Video.key == key))):
        raise Conflict("This upload is already attached to a video: ask for a new key.")
    chain = await session_chain(tx, issued.session_id)
    if not await _awaits_uploads(tx, chain):
        raise Conflict("No trial of this session is waiting for uploads any more.")
    await extend_deadlines(tx, chain, utcnow())
    return chain


async def record_stored(tx: AsyncSession, key: str, size: int) -> None:
    issued = await tx.get(UploadKey, key)
    if issued is not None:
        issued.stored_at, issued.size = utcnow(), size


async def upload_slot(tx: AsyncSession, video_id: UUID) -> tuple[Video, UploadTrial]:
    """The video and its trial, if the trial still accepts an upload into this slot."""
    video = await tx.get(Video, video_id)
    trial = await tx.get(UploadTrial, video.trial_id) if video else None
    if video is None or trial is None:
        raise NotFound()
    trial.require_upload_slot(video)
    return video, trial


async def attach_video(
    tx: AsyncSession, video_id: UUID, patch: VideoPatch, storage: Storage, settings: Settings
) -> Video:
    """`PATCH /videos/{id}/`: attach a stored upload to its slot, once."""
    video = await tx.get(Video, video_id)
    if video is None:
        raise NotFound()
    video.refuse_moves(patch.trial, patch.device_id)
    # The trial first, then the video: the same lock order as the final camera set's.
    trial = await tx.get(UploadTrial, video.trial_id, with_for_update=True)
    await tx.refresh(video, with_for_update=True)
    if patch.key is not None and patch.key == video.key:
        return video  # the same upload again: nothing changes
    if patch.key is not None and video.key is not None:
        raise Conflict("This video already has an uploaded file.")
    if trial is None:
        raise NotFound()
    trial.require_upload_slot(video)
    now = utcnow()
    video.set_details(patch.parameters, patch.is_lidar, patch.saved_local, now)
    if patch.key is not None:
        size = await _upload_size(tx, patch, video, storage, settings)
        emit(tx, video.attach(patch.key, size, now))
        emit(tx, trial.all_received(await trial_videos(tx, trial.id), now))
    return video


async def _upload_size(
    tx: AsyncSession, patch: VideoPatch, video: Video, storage: Storage, settings: Settings
) -> int:
    """The size of the patched upload: streamed inline just now, or checked in storage."""
    if patch.stored:
        return patch.stored[1]
    return await _verified_size(tx, patch.video_url or "", video, storage, settings)


async def _verified_size(
    tx: AsyncSession, key: str, video: Video, storage: Storage, settings: Settings
) -> int:
    """The size of the object under `key`, if it was issued for this slot's uploads."""
    # Locked, so two videos patched at once with the same key cannot both take it.
    issued = await tx.get(UploadKey, key, with_for_update=True)
    if issued is None or issued.video_id not in (None, video.id) or issued.session_id is None:
        raise Invalid("This key was not issued for this video's uploads.", field="video_url")
    if video.session_id not in await session_chain(tx, issued.session_id):
        raise Invalid("This key was not issued for this session's uploads.", field="video_url")
    if await tx.scalar(select(exists().where(Video.key == key, Video.id != video.id))):
        raise Conflict("This upload is already attached to another video.")
    size = await asyncio.to_thread(storage.size, key)
    if not size:
        raise Invalid("No uploaded file was found under this key.", field="video_url")
    if size > settings.max_video_bytes:
        raise Invalid(f"The file is larger than {settings.max_video_bytes} bytes.", "video_url")
    if issued.stored_at is None:  # a direct PUT (stored by S3, not here): the key was used
        issued.stored_at, issued.size = utcnow(), size
    return size


async def trial_videos(tx: AsyncSession, trial_id: UUID) -> list[Video]:
    stmt = select(Video).where(Video.trial_id == trial_id).order_by(Video.created_at, Video.id)
    return list((await tx.scalars(stmt)).all())


def require_may_act(caller: Caller | None) -> Caller | None:
    """A token unlocks owner routes only past the e-mail code step (the pipeline's and
    admins' tokens always are); no token stays anonymous."""
    if caller is not None and not caller.may_act:
        raise Forbidden(NO_PERMISSION)
    return caller


async def _require_reader(tx: AsyncSession, caller: Caller | None, session_id: UUID) -> None:
    """Owners of the session and the admin and backend groups read its videos."""
    if caller is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    require_may_act(caller)
    if caller.privileged:
        return
    owner = await tx.scalar(select(KnownSession.user_id).where(KnownSession.id == session_id))
    if owner is None or owner != caller.user_id:
        raise NotFound()


async def readable_video(tx: AsyncSession, caller: Caller | None, video_id: UUID) -> Video:
    video = await tx.get(Video, video_id)
    if video is None and caller is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    if video is None:
        raise NotFound()
    await _require_reader(tx, caller, video.session_id)
    return video


async def readable_trial_videos(
    tx: AsyncSession, caller: Caller | None, trial_id: UUID
) -> list[Video]:
    trial = await tx.get(UploadTrial, trial_id)
    if trial is None and caller is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    if trial is None:
        raise NotFound()
    await _require_reader(tx, caller, trial.session_id)
    return await trial_videos(tx, trial_id)


async def may_read(tx: AsyncSession, caller: Caller | None, video: Video) -> bool:
    """Whether the caller of a PATCH gets the video's download link in the answer."""
    try:
        await _require_reader(tx, caller, video.session_id)
    except (NotAuthenticated, NotFound, Forbidden):
        return False
    return True
