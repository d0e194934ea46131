"""Bytes streamed into one S3 object at constant memory, whatever the object's size.

Parts of `part_bytes` (at least 5 MiB, S3's minimum for every part but the last) are
filled in buffers taken from one pool per process, so all uploads in flight together
hold at most `buffers x part_bytes`, however many and however large they are. A full
part goes to S3 (UploadPart) from a worker thread while the next one fills; when the pool
is empty an upload waits, stops reading its request, and TCP slows its phone down. An
object that fits in one part is sent with one PutObject. A failed upload is aborted, so
S3 never shows a partial object.
"""

import asyncio
import functools
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from shared.errors import Invalid, PayloadTooLarge
from shared.storage import Storage

log = structlog.get_logger()
MIN_PART_BYTES = 5 * 1024**2
BUFFERS_IN_USE = Gauge("upload_part_buffers_in_use", "Part buffers holding upload bytes")
BYTES_STREAMED = Counter("upload_bytes_streamed_total", "Bytes streamed into the object store")


class PartBuffers:
    """A fixed number of reusable part-sized buffers (allocated on first use, never freed)."""

    def __init__(self, part_bytes: int, count: int):
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"S3 parts must be at least {MIN_PART_BYTES} bytes")
        self.part_bytes, self.count = part_bytes, count
        self.lent = 0
        self._free: list[bytearray] = []
        self._available = asyncio.Semaphore(count)

    async def take(self) -> bytearray:
        await self._available.acquire()
        self.lent += 1
        BUFFERS_IN_USE.inc()
        return self._free.pop() if self._free else bytearray(self.part_bytes)

    def give(self, buffer: bytearray) -> None:
        self.lent -= 1
        BUFFERS_IN_USE.dec()
        self._free.append(buffer)
        self._available.release()


class _Slice(io.RawIOBase):
    """A read-only, seekable file over the first bytes of a buffer: boto3 sends it uncopied."""

    def __init__(self, view: memoryview):
        self._view, self._at = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        size = min(len(target), len(self._view) - self._at)
        target[:size] = self._view[self._at : self._at + size]
        self._at += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        self._at = max(0, base + offset)
        return self._at

    def tell(self) -> int:
        return self._at


def _body(buffer: bytearray, length: int) -> bytearray | _Slice:
    """A full buffer goes as it is: boto3 sends it with one `sendall`, without the GIL. A
    partly filled one (an object's last part) goes as a file over its first bytes, which
    boto3 reads in 16 KiB blocks, each needing the GIL back from the busy event loop."""
    return buffer if length == len(buffer) else _Slice(memoryview(buffer)[:length])


class Streamer:
    """What every upload of the process shares: the S3 client, the buffers, the threads."""

    def __init__(self, storage: Storage, part_bytes: int, buffers: int, parts_in_flight: int):
        self.client, self.bucket = storage.client, storage.bucket
        self.buffers = PartBuffers(part_bytes, buffers)
        self.parts_in_flight = max(1, min(parts_in_flight, buffers))
        self.executor = ThreadPoolExecutor(buffers + 2, thread_name_prefix="s3-parts")

    def writer(self, key: str, content_type: str, max_bytes: int) -> "ObjectWriter":
        return ObjectWriter(self, key, content_type, max_bytes)

    async def call(self, method: str, **params: Any) -> Any:
        """A boto3 S3 call on this streamer's threads (never on the event loop)."""
        call = functools.partial(getattr(self.client, method), Bucket=self.bucket, **params)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class ObjectWriter:
    """One object being written: `write` chunks, then `close` (or `abort` on any error)."""

    def __init__(self, streamer: Streamer, key: str, content_type: str, max_bytes: int):
        self.streamer, self.key, self.max_bytes = streamer, key, max_bytes
        self.content_type = content_type
        self.size = 0
        self._buffer: bytearray | None = None
        self._filled = 0
        self._upload_id: str | None = None
        self._next_part = 1
        self._inflight: set[asyncio.Future] = set()
        self._parts: list[dict[str, Any]] = []

    async def write(self, data: bytes) -> None:
        if self.size + len(data) > self.max_bytes:
            raise PayloadTooLarge(f"The uploaded file is larger than {self.max_bytes} bytes.")
        self.size += len(data)
        BYTES_STREAMED.inc(len(data))
        view = memoryview(data)
        while view:
            if self._buffer is None:
                self._buffer, self._filled = await self.streamer.buffers.take(), 0
            taken = min(len(view), len(self._buffer) - self._filled)
            self._buffer[self._filled : self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]
            if self._filled == len(self._buffer):
                await self._send_part()

    async def close(self) -> int:
        """Finish the object; its size. Invalid if nothing was written."""
        if self.size == 0:
            raise Invalid("The uploaded file is empty.", field="file")
        if self._upload_id is None:
            await self._send(self._put_object)
        else:
            if self._filled:
                await self._send_part()
            await self._wait_parts(0)
            parts = sorted(self._parts, key=lambda part: part["PartNumber"])
            await self.streamer.call(
                "complete_multipart_upload",
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        return self.size

    async def abort(self) -> None:
        """Drop everything written so far (waits for parts in flight, so none lands later)."""
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._buffer is not None:
            self.streamer.buffers.give(self._buffer)
            self._buffer = None
        if self._upload_id is not None:
            try:
                await self.streamer.call(
                    "abort_multipart_upload", Key=self.key, UploadId=self._upload_id
                )
            except Exception as exc:  # S3 expires it by lifecycle rule; log and move on
                log.warning("multipart_abort_failed", key=self.key, error=repr(exc))

    async def _send_part(self) -> None:
        if self._upload_id is None:
            created = await self.streamer.call(
                "create_multipart_upload", Key=self.key, ContentType=self.content_type
            )
            self._upload_id = created["UploadId"]
        await self._wait_parts(self.streamer.parts_in_flight - 1)
        number, self._next_part = self._next_part, self._next_part + 1
        self._inflight.add(self._send(functools.partial(self._upload_part, number)))

    async def _wait_parts(self, at_most: int) -> None:
        """Wait until at most `at_most` parts are in flight; raise if one of them failed."""
        while len(self._inflight) > at_most:
            done, _ = await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            self._inflight -= done
            self._parts.extend(future.result() for future in done)

    def _send(self, send: Any) -> asyncio.Future:
        """Run `send(buffer, length)` on a thread; the buffer returns to the pool after it."""
        buffer, length, self._buffer, self._filled = self._buffer, self._filled, None, 0
        loop, buffers = asyncio.get_running_loop(), self.streamer.buffers

        def run() -> Any:
            try:
                return send(_body(buffer, length), length)
            finally:
                loop.call_soon_threadsafe(buffers.give, buffer)

        return loop.run_in_executor(self.streamer.executor, run)

    def _upload_part(self, number: int, body: bytearray | _Slice, length: int) -> dict[str, Any]:
        response = self.streamer.client.upload_part(
            Bucket=self.streamer.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ContentLength=length,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _put_object(self, body: bytearray | _Slice, length: int) -> None:
        self.streamer.client.put_object(
            Bucket=self.streamer.bucket,
            Key=self.key,
            Body=body,
            ContentLength=length,
            ContentType=self.content_type,
        )
