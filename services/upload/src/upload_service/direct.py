"""Direct-to-S3 uploads for new clients: the video's bytes never pass through this service.

`POST /videos/{id}/upload-url/ {"size": n}` issues a key for that slot and either one
presigned PUT (up to `direct_put_max_bytes`) or a multipart upload with a presigned URL per
part; a multipart upload is finished with `.../upload-url/complete/` (the parts' ETags) or
dropped with `.../upload-url/abort/`. The URLs are SigV4, for the S3 endpoint clients
reach, and sign the exact Content-Length (and Content-Type of a PUT), so S3 itself refuses
another size. Then `PATCH /videos/{id}/ {"video_url": key}` attaches the key as usual.
"""

import math
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import utcnow
from shared.errors import Invalid, NotFound, PayloadTooLarge
from upload_service import service
from upload_service.config import Settings
from upload_service.deadlines import extend_deadlines
from upload_service.models import UploadKey
from upload_service.schemas import DirectUploadDone, DirectUploadRequest
from upload_service.streaming import Streamer

MAX_PARTS = 10000


class DirectS3:
    """Presigned URLs for clients, and the S3 calls that open and finish multipart uploads."""

    def __init__(self, settings: Settings, streamer: Streamer):
        self.bucket, self.streamer = settings.s3_bucket, streamer
        self.presigner = boto3.client(
            "s3",
            endpoint_url=settings.s3_public_endpoint_url or settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def url(self, method: str, ttl: int, **params: Any) -> str:
        return self.presigner.generate_presigned_url(
            method, Params={"Bucket": self.bucket, **params}, ExpiresIn=ttl
        )

    async def call(self, method: str, **params: Any) -> Any:
        """An S3 call; S3's refusal of a client's request (4xx) is a 400 for that client."""
        try:
            return await self.streamer.call(method, **params)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if status >= 500:
                raise
            code = exc.response.get("Error", {}).get("Code", "Error")
            raise Invalid(f"The object store refused the upload: {code}.") from None


async def start_direct_upload(
    tx: AsyncSession, video_id: UUID, wanted: DirectUploadRequest, s3: DirectS3, settings: Settings
) -> dict[str, Any]:
    video, _ = await service.upload_slot(tx, video_id)
    if wanted.size > settings.max_video_bytes:
        raise PayloadTooLarge(f"The file is larger than {settings.max_video_bytes} bytes.")
    now, ttl = utcnow(), settings.upload_policy_ttl_seconds
    key = f"{uuid4()}.mov"
    issued = UploadKey(
        key=key,
        session_id=video.session_id,
        video_id=video.id,
        expires_at=now + timedelta(seconds=ttl),
        created_at=now,
    )
    if wanted.size <= settings.direct_put_max_bytes:
        body = _single_put(key, wanted, s3, ttl)
    else:
        issued.upload_id = await _create_multipart(key, wanted, s3)
        body = _multipart(key, issued.upload_id, wanted.size, video_id, s3, settings)
    tx.add(issued)
    await extend_deadlines(tx, [video.session_id], now)
    return {**body, "expires_at": issued.expires_at.isoformat().replace("+00:00", "Z")}


def _single_put(key: str, wanted: DirectUploadRequest, s3: DirectS3, ttl: int) -> dict[str, Any]:
    headers = {"Content-Type": wanted.content_type, "Content-Length": str(wanted.size)}
    params = {"Key": key, "ContentType": wanted.content_type, "ContentLength": wanted.size}
    return {
        "method": "PUT",
        "key": key,
        "url": s3.url("put_object", ttl, **params),
        "headers": headers,
    }


async def _create_multipart(key: str, wanted: DirectUploadRequest, s3: DirectS3) -> str:
    created = await s3.call("create_multipart_upload", Key=key, ContentType=wanted.content_type)
    return created["UploadId"]


def _multipart(
    key: str, upload_id: str, size: int, video_id: UUID, s3: DirectS3, settings: Settings
) -> dict[str, Any]:
    part_bytes = max(settings.direct_part_bytes, math.ceil(size / MAX_PARTS))
    count, ttl = math.ceil(size / part_bytes), settings.upload_policy_ttl_seconds
    parts = []
    for number in range(1, count + 1):
        length = min(part_bytes, size - (number - 1) * part_bytes)
        params = {"Key": key, "UploadId": upload_id, "PartNumber": number, "ContentLength": length}
        parts.append(
            {"part_number": number, "size": length, "url": s3.url("upload_part", ttl, **params)}
        )
    return {
        "method": "multipart",
        "key": key,
        "upload_id": upload_id,
        "part_size": part_bytes,
        "parts": parts,
        "complete_url": f"/videos/{video_id}/upload-url/complete/",
        "abort_url": f"/videos/{video_id}/upload-url/abort/",
    }


async def complete_direct_upload(
    tx: AsyncSession, video_id: UUID, done: DirectUploadDone, s3: DirectS3
) -> dict[str, Any]:
    """Assemble the uploaded parts into the object; its key and size."""
    issued = await _issued_multipart(tx, video_id, done)
    if not done.parts:
        raise Invalid("This field is required.", field="parts")
    parts = [{"PartNumber": p.part_number, "ETag": p.etag} for p in done.parts]
    await s3.call(
        "complete_multipart_upload",
        Key=done.key,
        UploadId=done.upload_id,
        MultipartUpload={"Parts": sorted(parts, key=lambda part: part["PartNumber"])},
    )
    head = await s3.call("head_object", Key=done.key)
    issued.stored_at, issued.size = utcnow(), head["ContentLength"]
    return {"key": done.key, "size": issued.size}


async def abort_direct_upload(
    tx: AsyncSession, video_id: UUID, done: DirectUploadDone, s3: DirectS3
) -> None:
    await _issued_multipart(tx, video_id, done)
    await s3.call("abort_multipart_upload", Key=done.key, UploadId=done.upload_id)


async def _issued_multipart(tx: AsyncSession, video_id: UUID, done: DirectUploadDone) -> UploadKey:
    issued = await tx.get(UploadKey, done.key, with_for_update=True)
    if issued is None or issued.video_id != video_id or issued.upload_id != done.upload_id:
        raise NotFound("No such multipart upload for this video.")
    return issued
