"""A zip written straight into S3: never the whole archive in memory or on disk.

`zipfile` writes into `MultipartUpload`, a write-only, unseekable file object (so zipfile
uses data descriptors) that sends every `part_bytes` it receives as one part of an S3
multipart upload. Each member is copied from its S3 object in 1 MiB chunks. Memory held:
about one part plus one chunk, whatever the archive's size. Blocking (boto3): run it in a
thread.
"""

import io
import time
import zipfile
from collections.abc import Callable

import structlog
from botocore.exceptions import ClientError

from shared.storage import Storage

log = structlog.get_logger()

CHUNK = 1024**2
# Already compressed: stored as they are (deflating them costs CPU and saves nothing).
STORED_EXTENSIONS = {"mov", "mp4", "avi", "jpg", "jpeg", "png", "gif", "zip", "gz"}
MISSING = ("404", "NoSuchKey", "NotFound")


class MultipartUpload(io.RawIOBase):
    """Bytes written here become the object `key`, part by part (S3 multipart upload)."""

    def __init__(self, storage: Storage, key: str, part_bytes: int):
        self.client, self.bucket, self.key = storage.client, storage.bucket, key
        self.part_bytes = part_bytes
        self.buffer = bytearray()
        self.parts: list[dict] = []
        self.position = 0
        started = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/zip"
        )
        self.upload_id = started["UploadId"]

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        self.position += len(data)
        while len(self.buffer) >= self.part_bytes:
            self._send(bytes(self.buffer[: self.part_bytes]))
            del self.buffer[: self.part_bytes]
        return len(data)

    def tell(self) -> int:
        return self.position

    def _send(self, body: bytes) -> None:
        number = len(self.parts) + 1
        sent = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except ClientError as exc:
            log.warning("archive_abort_failed", key=self.key, error=repr(exc))


def write_zip(
    storage: Storage, key: str, entries: dict[str, str | bytes], part_bytes: int
) -> list[str]:
    """Write `entries` (archive path -> S3 key or content) as the zip object `key`; objects
    that are not in storage are left out. Returns the archive paths written."""
    sink = MultipartUpload(storage, key, part_bytes)
    try:
        with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
            written = [
                name for name, source in entries.items() if _add(archive, storage, name, source)
            ]
        sink.complete()
    except BaseException:
        sink.abort()
        raise
    return written


def _add(archive: zipfile.ZipFile, storage: Storage, name: str, source: str | bytes) -> bool:
    if isinstance(source, bytes):
        with archive.open(_member(name, len(source)), "w") as member:
            member.write(source)
        return True
    body = _open_object(storage, source)
    if body is None:
        return False
    try:
        with archive.open(_member(name, body["ContentLength"]), "w") as member:
            _copy(body["Body"].read, member.write)
    finally:
        body["Body"].close()
    return True


def _open_object(storage: Storage, key: str) -> dict | None:
    try:
        return storage.client.get_object(Bucket=storage.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING:
            log.info("archive_object_missing", key=key)
            return None
        raise


def _member(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
    info.file_size = size  # decides ZIP64 for members over 2 GiB
    info.external_attr = 0o644 << 16
    stored = name.rpartition(".")[2].lower() in STORED_EXTENSIONS
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    return info


def _copy(read: Callable[[int], bytes], write: Callable[[bytes], object]) -> None:
    while chunk := read(CHUNK):
        write(chunk)
