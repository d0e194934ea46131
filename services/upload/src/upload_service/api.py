"""HTTP edge of the upload service: presign, the upload target, the phones' video PATCH,
direct-to-S3 upload URLs for new clients, and video reads for owners and the pipeline.

The upload target and the PATCH stream request bodies, so they never hold a database
transaction while bytes flow: they take short ones from `units` instead of `Tx`.
"""

from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Tx, Units, transactions
from shared.errors import Forbidden, Invalid, NotFound
from shared.forms import read_fields
from shared.identity import Caller, caller, client_address
from upload_service import direct, receive, service
from upload_service.formstream import small_fields
from upload_service.models import ApiToken, ApiUser
from upload_service.schemas import DirectUploadDone, DirectUploadRequest, video_json, video_patch

router = APIRouter()
SMALL_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)


def units(request: Request) -> Units:
    """Short transactions, one per `async with units() as tx:` (overridable in tests)."""
    return transactions(request.app.state.db)


UnitsDep = Annotated[Units, Depends(units)]


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound() from None


async def who(tx: AsyncSession, request: Request) -> Caller | None:
    return await caller(tx, request.headers.get("authorization"), ApiToken, ApiUser)


async def acting(tx: AsyncSession, request: Request) -> Caller | None:
    """The caller of a route a token unlocks more of: anonymous, or past the e-mail code
    step (403 for a token that is not)."""
    return service.require_may_act(await who(tx, request))


@router.get("/sessions/{session_id}/get_presigned_url/")
async def get_presigned_url(session_id: str, request: Request, tx: Tx) -> dict:
    """A phone's video upload policy; with `null` as the session, the stock pipeline's
    policy for a result file (its `fileName` comes in the GET's form body)."""
    settings = request.app.state.settings
    if session_id != "null":
        return await service.presign(tx, parse_id(session_id), settings)
    found = await who(tx, request)
    anonymous_allowed = settings.anonymous_result_presign and _from_pipeline_network(request)
    if (found is None and not anonymous_allowed) or (found is not None and not found.privileged):
        raise Forbidden("Only the processing pipeline uploads result files.")
    fields = await read_fields(request)
    name = fields.get("fileName") or request.query_params.get("fileName")
    return await service.presign_result(tx, name, settings)


def _from_pipeline_network(request: Request) -> bool:
    """Whether the caller's address (as the gateway saw it) is in `result_presign_networks`,
    if any are given."""
    networks = request.app.state.settings.result_presign_networks
    if not networks:
        return True
    try:
        address = ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in networks)


@router.post("/uploads/", status_code=204)
async def upload(request: Request, unit: UnitsDep) -> Response:
    state = request.app.state
    await receive.receive_upload(request, unit, state.streamer, state.settings)
    return Response(status_code=204)


@router.patch("/videos/{video_id}/")
@router.patch("/video/{video_id}/")
async def patch_video(video_id: str, request: Request, unit: UnitsDep) -> dict:
    state, video_uuid = request.app.state, parse_id(video_id)
    requester = None
    if request.headers.get("authorization") is not None:  # checked before any byte is read
        async with unit() as tx:
            requester = await acting(tx, request)
    fields, stored = await _patch_fields(request, video_uuid, unit)
    try:
        async with unit() as tx:
            patch = video_patch(fields, stored)
            video = await service.attach_video(tx, video_uuid, patch, state.storage, state.settings)
            reader = await service.may_read(tx, requester, video)
    except BaseException:
        if stored:
            await receive.discard(state.streamer, stored[0])
        raise
    return video_json(video, state.storage if reader else None)


async def _patch_fields(
    request: Request, video_id: UUID, unit: Units
) -> tuple[dict[str, Any], tuple[str, int] | None]:
    """The PATCH's fields; a multipart body's `video` file is streamed into S3 first."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        state = request.app.state
        return await receive.receive_inline_video(
            request, unit, state.streamer, state.settings, video_id
        )
    return await small_fields(request, SMALL_BODY), None


@router.get("/videos/{video_id}/")
@router.get("/video/{video_id}/")
async def get_video(video_id: str, request: Request, tx: Tx) -> dict:
    video = await service.readable_video(tx, await acting(tx, request), parse_id(video_id))
    return video_json(video, request.app.state.storage)


@router.get("/videos/")
async def list_videos(request: Request, tx: Tx, trial: str | None = None) -> list[dict]:
    """The trial's videos with download links (`?trial=<id>`), for its owner and the pipeline."""
    if not trial:
        raise Invalid("This query parameter is required.", field="trial")
    trial_id = parse_id(trial)
    videos = await service.readable_trial_videos(tx, await acting(tx, request), trial_id)
    return [video_json(video, request.app.state.storage) for video in videos]


def small_body(model: type[M], limit: int = SMALL_BODY) -> Callable[[Request], Awaitable[M]]:
    """A JSON body of at most `limit` bytes, as `model` (FastAPI's own body parameters
    read the whole body into memory before any check)."""

    async def read(request: Request) -> M:
        fields = await small_fields(request, limit)
        try:
            return model.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None

    return read


UploadRequest = Annotated[DirectUploadRequest, Depends(small_body(DirectUploadRequest))]
# (the parts of a multipart upload: up to 10,000 of about 70 bytes each)
UploadDone = Annotated[DirectUploadDone, Depends(small_body(DirectUploadDone, 1024**2))]


@router.post("/videos/{video_id}/upload-url/")
async def direct_upload_url(video_id: str, body: UploadRequest, request: Request, tx: Tx):
    await acting(tx, request)
    state = request.app.state
    return await direct.start_direct_upload(
        tx, parse_id(video_id), body, state.direct, state.settings
    )


@router.post("/videos/{video_id}/upload-url/complete/")
async def direct_upload_complete(video_id: str, body: UploadDone, request: Request, tx: Tx):
    await acting(tx, request)
    return await direct.complete_direct_upload(
        tx, parse_id(video_id), body, request.app.state.direct
    )


@router.post("/videos/{video_id}/upload-url/abort/", status_code=204)
async def direct_upload_abort(video_id: str, body: UploadDone, request: Request, tx: Tx):
    await acting(tx, request)
    await direct.abort_direct_upload(tx, parse_id(video_id), body, request.app.state.direct)
    return Response(status_code=204)
