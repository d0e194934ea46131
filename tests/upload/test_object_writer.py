"""`ObjectWriter`: bytes written in any chunking end up as one S3 object, in parts taken
from a fixed pool of buffers; an aborted or failed write leaves nothing behind."""

import asyncio
import os
from uuid import uuid4

import pytest

from shared.config import S3Settings
from shared.errors import Invalid, PayloadTooLarge
from shared.storage import Storage
from upload_service.streaming import Streamer

MiB = 1024**2


@pytest.fixture
def streamer(storage):
    streamer = Streamer(storage, part_bytes=5 * MiB, buffers=3, parts_in_flight=2)
    yield streamer
    streamer.shutdown()


def unfinished(storage, key: str) -> list:
    listing = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=key)
    return listing.get("Uploads", [])


async def write_all(writer, data: bytes, chunk: int) -> None:
    for start in range(0, len(data), chunk):
        await writer.write(data[start : start + chunk])


@pytest.mark.parametrize("chunk", [1000, 64 * 1024, 5 * MiB, 7 * MiB])
async def test_chunks_of_any_size_make_the_same_object(streamer, storage, chunk):
    key, data = f"{uuid4()}.mov", os.urandom(12 * MiB + 7)
    writer = streamer.writer(key, "video/quicktime", 20 * MiB)

    await write_all(writer, data, chunk)
    size = await writer.close()

    assert size == len(data)
    stored = storage.client.get_object(Bucket=storage.bucket, Key=key)
    assert stored["Body"].read() == data and stored["ContentType"] == "video/quicktime"
    assert streamer.buffers.lent == 0


@pytest.mark.parametrize("size", [1, 5 * MiB - 1, 5 * MiB, 10 * MiB])
async def test_sizes_at_part_boundaries_are_stored_whole(streamer, storage, size):
    key, data = f"{uuid4()}.mov", os.urandom(size)
    writer = streamer.writer(key, "video/mp4", 20 * MiB)

    await write_all(writer, data, 256 * 1024)
    await writer.close()

    assert storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read() == data


async def test_abort_after_some_parts_leaves_no_object_and_no_upload(streamer, storage):
    key = f"{uuid4()}.mov"
    writer = streamer.writer(key, "video/mp4", 50 * MiB)
    await write_all(writer, os.urandom(16 * MiB), MiB)

    await writer.abort()

    assert storage.size(key) is None and unfinished(storage, key) == []
    assert streamer.buffers.lent == 0


async def test_more_than_the_limit_is_refused_before_it_is_buffered(streamer):
    writer = streamer.writer(f"{uuid4()}.mov", "video/mp4", 10)
    await writer.write(b"x" * 10)

    with pytest.raises(PayloadTooLarge):
        await writer.write(b"y")
    await writer.abort()


async def test_nothing_written_is_refused_as_empty(streamer):
    with pytest.raises(Invalid, match="empty"):
        await streamer.writer(f"{uuid4()}.mov", "video/mp4", 10).close()


async def test_failing_object_store_raises_and_returns_every_buffer(s3_settings: S3Settings):
    missing = Storage(s3_settings.model_copy(update={"s3_bucket": f"nobucket{uuid4().hex[:8]}"}))
    streamer = Streamer(missing, part_bytes=5 * MiB, buffers=2, parts_in_flight=2)
    writer = streamer.writer("x.mov", "video/mp4", 50 * MiB)

    with pytest.raises(Exception, match="NoSuchBucket"):
        await write_all(writer, os.urandom(12 * MiB), MiB)
        await writer.close()
    await writer.abort()

    assert streamer.buffers.lent == 0
    streamer.shutdown()


async def test_writers_beyond_the_buffer_pool_wait_their_turn(streamer, storage):
    data = {f"{uuid4()}.mov": os.urandom(11 * MiB) for _ in range(5)}

    async def write(key: str, body: bytes) -> int:
        writer = streamer.writer(key, "video/mp4", 20 * MiB)
        await write_all(writer, body, 256 * 1024)
        return await writer.close()

    sizes = await asyncio.gather(*(write(key, body) for key, body in data.items()))

    assert sizes == [11 * MiB] * 5
    for key, body in data.items():
        assert storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read() == body
