"""Plumbing of `bench.upload`: the database, the S3 endpoint and the upload API processes,
the phones' multipart body streamed from a file, and the API process's memory."""

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID, uuid4

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
DATABASE = "bench_upload"
API_PORT, S3_PORT = 22001, 22009
S3_URL = f"http://127.0.0.1:{S3_PORT}"
BUCKET = "benchupload"
BOUNDARY = "alamofire.boundary.5a1b2c3d4e5f"
CHUNK = 1024**2
# The S3 endpoint gets a core of its own; the phones (this process) and the upload API share
# the other, as they would share none of the object store's machines in production.
S3_CORE, CLIENT_CORE = 1, 0


def database_url() -> str:
    return f"{POSTGRES}/{DATABASE}"


async def fresh_database() -> None:
    """`bench_upload`, dropped, created and migrated."""
    from shared.db import create_engine
    from shared.migrations import create_database, upgrade

    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    await admin.dispose()
    await create_database(database_url())
    await asyncio.to_thread(upgrade, ROOT / "services" / "upload", database_url())


async def joined_session() -> UUID:
    """A session with one phone in a trial, so that the API presigns for it."""
    from shared.db import create_engine, create_sessionmaker
    from shared.events import DeviceJoined
    from upload_service import consumers

    engine = create_engine(database_url())
    session_id = uuid4()
    joined = DeviceJoined(
        video_id=uuid4(), trial_id=uuid4(), session_id=session_id, device_id=uuid4()
    )
    async with create_sessionmaker(engine)() as tx, tx.begin():
        await consumers.on_device_joined(tx, joined)
    await engine.dispose()
    return session_id


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=S3_URL,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="benchsecret",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
    )


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


LOGS = ROOT / ".run" / "bench-upload"


@contextmanager
def process(name: str, argv: list[str], ready_url: str, env: dict[str, str] | None = None):
    """A process started in the background, its output in .run/bench-upload/<name>.log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        _wait_for(ready_url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pinned(argv: list[str], core: int) -> list[str]:
    """`argv` restricted to one CPU core (taskset), where there are two or more."""
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return argv
    return ["taskset", "-c", str(core), *argv]


def s3_server():
    argv = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(S3_PORT)]
    return process("s3", pinned(argv, S3_CORE), S3_URL)


def upload_api():
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PUBLIC_URL": f"http://127.0.0.1:{API_PORT}",
        "S3_ENDPOINT_URL": S3_URL,
        "S3_BUCKET": BUCKET,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "benchsecret",
        "UPLOAD_SIGNING_SECRET": "bench-signing-secret",
        "LOG_LEVEL": "WARNING",
    }
    argv = [
        str(BIN / "uvicorn"),
        "upload_service.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(API_PORT),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return process("api", pinned(argv, CLIENT_CORE), f"http://127.0.0.1:{API_PORT}/healthz", env)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def phone_form(fields: dict[str, str], path: Path) -> tuple[int, AsyncIterator[bytes]]:
    """(Content-Length, body) of the stock phone's multipart POST, the file read from disk
    in 1 MiB chunks (never whole in the client's memory)."""
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{fields["key"]}"\r\nContent-Type: video/quicktime\r\n\r\n'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        with path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                yield chunk
        yield tail

    return len(head) + path.stat().st_size + len(tail), body()


def video_file(directory: Path, size: int) -> Path:
    """A file of `size` random bytes (made once, then reused)."""
    path = directory / f"video-{size}.mov"
    if not path.exists() or path.stat().st_size != size:
        block = os.urandom(CHUNK)
        with path.open("wb") as file:
            for start in range(0, size, CHUNK):
                file.write(block[: min(CHUNK, size - start)])
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
