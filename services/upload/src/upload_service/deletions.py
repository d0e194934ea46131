"""Forgetting deleted trials and sessions: their trial, session and video rows, the upload
keys issued for them, and (best effort) the objects those name in storage.

An upload key issued under one session may hold a video of a session it moved on to; such a
key, and its object, stay as long as that video does.
"""

import asyncio
from collections.abc import Iterable
from uuid import UUID

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import ColumnElement, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import Storage
from upload_service.models import KnownSession, UploadKey, UploadTrial, Video

log = structlog.get_logger()
DELETE_BATCH = 1000  # S3's DeleteObjects takes at most 1000 keys


async def forget_trial(tx: AsyncSession, trial_id: UUID) -> list[str]:
    """Drop the trial, its videos and their upload keys; the object keys to delete."""
    videos = Video.trial_id == trial_id
    issued = UploadKey.video_id.in_(select(Video.id).where(videos))
    keys = await _forget_videos(tx, videos, issued)
    await tx.execute(delete(UploadTrial).where(UploadTrial.id == trial_id))
    return keys


async def forget_session(tx: AsyncSession, session_id: UUID) -> list[str]:
    """Drop the session, its trials, videos and upload keys; the object keys to delete."""
    videos = Video.session_id == session_id
    keys = await _forget_videos(tx, videos, UploadKey.session_id == session_id)
    await tx.execute(delete(UploadTrial).where(UploadTrial.session_id == session_id))
    await tx.execute(delete(KnownSession).where(KnownSession.id == session_id))
    return keys


async def _forget_videos(
    tx: AsyncSession, videos: ColumnElement[bool], issued: ColumnElement[bool]
) -> list[str]:
    """Drop the `videos` and the upload keys `issued` for them or held by them, except keys
    another video holds; the keys of the objects that go with them."""
    held = set((await tx.scalars(select(Video.key).where(videos, Video.key.is_not(None)))).all())
    kept_elsewhere = exists().where(Video.key == UploadKey.key, ~videos)
    dropped = await tx.scalars(
        delete(UploadKey)
        .where(or_(issued, UploadKey.key.in_(held)), ~kept_elsewhere)
        .returning(UploadKey.key)
    )
    keys = held | set(dropped.all())
    await tx.execute(delete(Video).where(videos))
    return sorted(keys)


async def delete_objects(storage: Storage, keys: Iterable[str]) -> None:
    """Delete the objects from storage in a thread; a missing object is fine, a failure is
    logged and left (the rows are gone either way)."""
    keys = list(keys)
    if keys:
        await asyncio.to_thread(_delete_batches, storage, keys)


def _delete_batches(storage: Storage, keys: list[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        try:
            answer = storage.client.delete_objects(
                Bucket=storage.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("objects_not_deleted", keys=len(batch), error=repr(exc))
            continue
        for error in answer.get("Errors", []):
            log.warning("object_not_deleted", key=error.get("Key"), error=error.get("Code"))
