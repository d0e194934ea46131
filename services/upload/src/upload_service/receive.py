"""Videos that come through this service, streamed into S3 as they arrive.

The phones' upload (`POST /uploads/`, the target of their presigned policy) and the old
app's inline `video` file in a multipart PATCH. Both read the body with `FormStream` and
write it with an `ObjectWriter`: constant memory, no temporary file, no database
transaction held while the bytes flow (short ones before and after), and the S3 upload
aborted on any error, so a refused or broken upload leaves nothing behind.
"""

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import structlog
from prometheus_client import Counter
from starlette.requests import Request

from shared.db import Units, utcnow
from shared.errors import Forbidden, Invalid, PayloadTooLarge
from upload_service import policy, service
from upload_service.config import Settings
from upload_service.deadlines import extend_deadlines
from upload_service.formstream import FilePart, FormStream
from upload_service.streaming import ObjectWriter, Streamer

POLICY_FIELDS = ("key", "policy", "signature")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._]")
MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")
SERVABLE_PREFIXES = ("video/", "audio/", "image/png", "image/jpeg", "image/gif", "image/webp")
SERVABLE_TYPES = {"application/json", "application/zip", "text/plain", "text/csv"}
FORM_OVERHEAD = 1024**2
UPLOADS = Counter("uploads_total", "Uploads through this service, by outcome", ["outcome"])
log = structlog.get_logger()


def refuse_oversized_body(request: Request, max_bytes: int) -> None:
    """413 at once when the declared body cannot hold a file of at most `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise PayloadTooLarge(f"The uploaded file is larger than {max_bytes} bytes.")


async def receive_upload(
    request: Request, units: Units, streamer: Streamer, settings: Settings
) -> None:
    """The phones' POST: check the signed policy, then stream the file into its key."""
    refuse_oversized_body(request, settings.max_video_bytes)
    form = _form(request, "file", settings)
    part = await form.next_file()
    if part is None:
        raise Invalid("This field is required.", field="file")
    allowed = _allowed(form.fields, settings)
    async with units() as tx:
        sessions = await service.open_upload(tx, allowed.key)
    limit = min(allowed.max_bytes, settings.max_video_bytes)
    writer = streamer.writer(allowed.key, _content_type(part), limit)
    started = time.monotonic()
    size = await _stream(form, writer, _progress(units, sessions, settings))
    async with units() as tx:
        await service.record_stored(tx, allowed.key, size)
    seconds = round(time.monotonic() - started, 3)
    log.info("upload_stored", key=allowed.key, size=size, seconds=seconds)


async def receive_inline_video(
    request: Request, units: Units, streamer: Streamer, settings: Settings, video_id: UUID
) -> tuple[dict[str, Any], tuple[str, int] | None]:
    """A multipart PATCH: its fields, and the (key, size) of its `video` file if it has one."""
    refuse_oversized_body(request, settings.max_video_bytes)
    form = _form(request, "video", settings)
    part = await form.next_file()
    if part is None:
        return form.fields, None
    async with units() as tx:
        await service.upload_slot(tx, video_id)
    name = SAFE_NAME.sub("", part.filename.replace("-", "")) or "video.mov"
    key = f"{uuid4()}-{name[-100:]}"
    writer = streamer.writer(key, _content_type(part), settings.max_video_bytes)
    size = await _stream(form, writer, None)
    return form.fields, (key, size)


async def discard(streamer: Streamer, key: str) -> None:
    """Delete an inline upload that its PATCH could not attach after all."""
    await streamer.call("delete_object", Key=key)


def _form(request: Request, file_field: str, settings: Settings) -> FormStream:
    return FormStream(
        request,
        frozenset({file_field}),
        settings.max_form_field_bytes,
        settings.upload_read_timeout_seconds,
    )


async def _stream(
    form: FormStream, writer: ObjectWriter, progress: Callable[[], Awaitable[None]] | None
) -> int:
    """Copy the file part into the writer, read the fields after it, finish the object."""
    try:
        async for chunk in form.chunks():
            await writer.write(chunk)
            if progress:
                await progress()
        await form.rest()
        size = await writer.close()
    except BaseException as exc:
        await asyncio.shield(writer.abort())
        UPLOADS.labels(getattr(exc, "status_code", "error")).inc()
        raise
    UPLOADS.labels("stored").inc()
    return size


def _allowed(fields: dict[str, str], settings: Settings) -> policy.Policy:
    for name in POLICY_FIELDS:
        if not fields.get(name):
            raise Invalid(
                "This field is required (the policy fields must come before the file).", name
            )
    allowed = policy.verify(
        fields["policy"],
        fields["signature"],
        fields["key"],
        utcnow(),
        settings.upload_signing_secret,
    )
    key_id = fields.get("AWSAccessKeyId")
    if key_id is not None and key_id != settings.upload_access_key_id:
        raise Forbidden("The access key id of the upload is not the one its policy was issued for.")
    return allowed


def _content_type(part: FilePart) -> str:
    """The type the object is stored (and later served) with: the part's own if it is a
    media type or plain data, else `application/octet-stream`, so that nothing uploaded is
    served as a page or script (HTML, SVG, XML) from the bucket's address."""
    kind = part.content_type.lower()
    if MIME.match(kind) and (kind.startswith(SERVABLE_PREFIXES) or kind in SERVABLE_TYPES):
        return kind
    return "application/octet-stream"


def _progress(units: Units, sessions: list[UUID], settings: Settings) -> Callable:
    """A callback that, at most every few seconds, pushes the sessions' upload deadlines."""
    last = time.monotonic()

    async def touch() -> None:
        nonlocal last
        if time.monotonic() - last < settings.upload_progress_touch_seconds:
            return
        last = time.monotonic()
        async with units() as tx:
            await extend_deadlines(tx, sessions, utcnow())

    return touch
