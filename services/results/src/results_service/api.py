"""HTTP edge of the results service: the stock pipeline's result posts and deletes, result
reads, and session and subject archives (request, then poll until the download link is
ready)."""

import asyncio
from uuid import UUID, uuid4

from botocore.exceptions import ClientError
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from results_service import downloads, service
from results_service.models import ApiToken, ApiUser
from results_service.schemas import ResultInput, result_input, result_json
from results_service.service import NewResult
from shared.db import Tx
from shared.errors import Invalid, NotFound, Unavailable
from shared.forms import close_files, read_fields
from shared.identity import Caller, caller
from shared.storage import Storage

router = APIRouter()


def parse_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound() from None


def uuid_filter(value: str | None, name: str) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise Invalid(f'"{value}" is not a valid UUID.', field=name) from None


def parse_int(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound()
    return int(value)


async def who(tx: AsyncSession, request: Request) -> Caller | None:
    return await caller(tx, request.headers.get("authorization"), ApiToken, ApiUser)


@router.post("/results/", status_code=201)
async def post_result(request: Request, tx: Tx) -> dict:
    """The pipeline stores a result: `media_url` names the object it uploaded (presign),
    or a multipart `media` file is stored here. Retried, it answers the same result."""
    service.require_writer(await who(tx, request))
    storage: Storage = request.app.state.storage
    fields = await read_fields(request)
    try:
        given = result_input(fields)
        await service.require_trial(tx, given.trial_id)
        key = await _stored_media(storage, given)
        item = NewResult(given.trial_id, key, given.tag, given.device_id, given.meta)
        row, _ = await service.post_result(tx, item)
    finally:
        await close_files(fields)
    return result_json(row, storage.presigned_get)


async def _stored_media(storage: Storage, given: ResultInput) -> str:
    """The key of the result's object: uploaded here (`media`), or checked to exist."""
    if given.media is not None:
        key = f"{uuid4()}-{_file_name(given.media)}"
        content_type = given.media.content_type or "application/octet-stream"
        await asyncio.to_thread(storage.upload_fileobj, given.media.file, key, content_type)
        return key
    try:
        size = await asyncio.to_thread(storage.size, given.media_url)
    except ClientError as exc:  # a key S3 refuses to look up (4xx), or S3 failing (5xx)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        if status >= 500:
            raise Unavailable("The object store did not answer. Please try again.") from None
        size = None
    if size is None:
        raise Invalid("No stored object has this key.", field="media_url")
    return given.media_url


def _file_name(media: UploadFile) -> str:
    name = (media.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if c.isprintable())[:200] or "media"


@router.delete("/results/{result_id}/", status_code=204)
async def delete_result(result_id: str, request: Request, tx: Tx) -> Response:
    await service.delete_result(tx, await who(tx, request), parse_int(result_id))
    return Response(status_code=204)


@router.get("/results/")
async def list_results(
    request: Request, tx: Tx, trial: str | None = None, tag: str | None = None
) -> list[dict]:
    trial_id = uuid_filter(trial, "trial")
    if tag is not None and "\x00" in tag:
        raise Invalid("Null characters are not allowed.", field="tag")
    found = await service.readable_results(tx, await who(tx, request), trial_id, tag)
    return [result_json(row, request.app.state.storage.presigned_get) for row in found]


@router.get("/results/{result_id}/")
async def get_result(result_id: str, request: Request, tx: Tx) -> dict:
    row = await service.readable_result(tx, await who(tx, request), parse_int(result_id))
    return result_json(row, request.app.state.storage.presigned_get)


@router.get("/sessions/{session_id}/async-download/")
async def async_download(session_id: str, request: Request, tx: Tx) -> dict:
    """The task building the session's archive; poll `/logs/{task_id}/on-ready/`."""
    task_id = await downloads.request_archive(
        tx, await who(tx, request), parse_uuid(session_id), request.app.state.settings
    )
    return {"task_id": str(task_id)}


@router.get("/subjects/{subject_id}/async-download/")
async def subject_async_download(subject_id: str, request: Request, tx: Tx) -> dict:
    """The task building the archive of the subject's sessions; poll as above."""
    caller = await who(tx, request)
    task_id = await downloads.request_subject_archive(tx, caller, parse_int(subject_id))
    return {"task_id": str(task_id)}


@router.get("/logs/{task_id}/on-ready/")
async def on_ready(task_id: str, request: Request, tx: Tx) -> Response:
    """202 (empty) while the archive is built, then 200 `{"url"}`; 410 if it failed."""
    url = await downloads.archive_url(
        tx, parse_uuid(task_id), request.app.state.storage, lambda: who(tx, request)
    )
    if url is None:
        return Response(status_code=202)
    return JSONResponse({"url": url})
