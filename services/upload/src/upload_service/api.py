"""HTTP edge of the upload service: presign, the upload target, and the phones' video PATCH."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from shared.db import Tx
from shared.errors import Invalid, NotFound
from shared.forms import close_files, json_field, read_fields
from shared.storage import Storage
from upload_service import service
from upload_service.models import Video

router = APIRouter()


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound() from None


def storage(request: Request) -> Storage:
    return request.app.state.storage


def video_json(video: Video, storage: Storage) -> dict[str, Any]:
    return {
        "id": str(video.id),
        "trial": str(video.trial_id),
        "device_id": str(video.device_id),
        "video": storage.presigned_get(video.key) if video.key else None,
        "video_thumb": None,
        "parameters": video.parameters,
        "created_at": video.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": video.updated_at.isoformat().replace("+00:00", "Z"),
    }


@router.get("/sessions/{session_id}/get_presigned_url/")
async def get_presigned_url(session_id: str, request: Request, tx: Tx) -> dict:
    return await service.presign(tx, parse_id(session_id), request.app.state.settings)


@router.post("/uploads/", status_code=204)
async def upload(request: Request, tx: Tx) -> Response:
    fields = await read_fields(request)
    file = fields.get("file")
    if not isinstance(file, UploadFile):
        raise Invalid("This field is required.", field="file")
    size = file.size if file.size is not None else len(await file.read())
    await file.seek(0)
    await service.store_upload(
        tx, fields, file.file, size, storage(request), request.app.state.settings
    )
    return Response(status_code=204)


@router.patch("/videos/{video_id}/")
@router.patch("/video/{video_id}/")
async def patch_video(video_id: str, request: Request, tx: Tx) -> dict:
    fields = await read_fields(request)
    try:
        parameters = json_field(fields.get("parameters"), "parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise Invalid("Expected a JSON object.", field="parameters")
        video = await service.attach_video(
            tx, parse_id(video_id), fields, parameters, storage(request)
        )
    finally:
        await close_files(fields)
    return video_json(video, storage(request))
