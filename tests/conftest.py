"""Fixtures on real infrastructure: PostgreSQL, RabbitMQ and an S3 endpoint.

URLs come from the environment, with loopback defaults:
  TEST_POSTGRES_URL  server for the test databases   (postgresql+asyncpg://postgres@127.0.0.1:5432)
  TEST_AMQP_URL      broker; tests use their own vhost (amqp://guest:guest@127.0.0.1:5672)
  TEST_S3_ENDPOINT_URL  an S3 endpoint; without it an in-process moto server is started
Where neither the variable is set nor the loopback server answers, PostgreSQL and RabbitMQ
are started with testcontainers if a Docker engine answers (never the case on CI here).

Each service gets a fresh database `pytest_<service>` migrated with its Alembic
migrations once per run. `tx` fixtures run each test in a transaction rolled back at the end.
"""

import asyncio
import contextlib
import email
import os
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.config import S3Settings
from shared.db import create_engine
from shared.migrations import create_database, upgrade
from shared.storage import Storage

ROOT = Path(__file__).resolve().parents[1]


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _docker_engine() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
    if os.environ.get("TEST_POSTGRES_URL") or _answers(url, 5432) or not _docker_engine():
        yield url.rstrip("/")
        return
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as pg:
        yield pg.get_connection_url().rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test run's own (made with rabbitmqctl, deleted at the end)."""
    base = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672").rstrip("/")
    if os.environ.get("TEST_AMQP_URL") or _answers(base, 5672) or not _docker_engine():
        vhost = f"opencap_pytest_{os.getpid()}"
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{base}/{vhost}"
        _rabbitmqctl("delete_vhost", vhost)
        return
    from testcontainers.community.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-alpine") as rmq:
        host, port = rmq.get_container_host_ip(), rmq.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/"


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")


@pytest.fixture(scope="session")
def s3_settings() -> Iterator[S3Settings]:
    endpoint = os.environ.get("TEST_S3_ENDPOINT_URL")
    server = None
    if not endpoint:
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
    settings = S3Settings(s3_endpoint_url=endpoint, s3_bucket="pytest")
    Storage(settings).ensure_bucket()
    yield settings
    if server:
        server.stop()


class Mailbox:
    """An SMTP server on loopback that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def last_to(self, address: str) -> email.message.Message:
        found = [m for m in self.messages if m["To"] == address]
        assert found, f"no mail to {address}"
        return found[-1]

    def code_for(self, address: str) -> str:
        """The six-digit verification code of the newest mail to `address`."""
        body = self.last_to(address).get_payload(decode=True).decode()
        return re.search(r"\b(\d{6})\b", body).group(1)


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(smtp) -> Mailbox:
    return smtp[0]


@pytest.fixture(scope="session")
def storage(s3_settings: S3Settings) -> Storage:
    return Storage(s3_settings)


def database_for(service: str) -> str:
    """The database of `service`'s tests: `<TEST_DB_PREFIX>_<service>` (default pytest_…)."""
    return f"{os.environ.get('TEST_DB_PREFIX', 'pytest')}_{service}"


async def migrated_engine(postgres_url: str, service: str) -> AsyncEngine:
    """A fresh, migrated database `<TEST_DB_PREFIX>_<service>` and an engine on it
    (TEST_DB_PREFIX, default `pytest`, keeps two test runs on one server apart)."""
    name = database_for(service)
    url = f"{postgres_url}/{name}"
    admin = create_engine(f"{postgres_url}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()
    await create_database(url)
    await asyncio.to_thread(upgrade, ROOT / "services" / service, url)
    return create_engine(url)


@contextlib.asynccontextmanager
async def rolled_back(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose every change is undone at the end (commits become savepoints)."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        tx = AsyncSession(
            bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield tx
        finally:
            await tx.close()
            await outer.rollback()


def api_client(app, tx: AsyncSession | None = None) -> httpx.AsyncClient:
    """An HTTP client calling `app` in-process; with `tx`, every request runs inside it."""
    from shared.db import transaction

    if tx is not None:
        app.dependency_overrides[transaction] = lambda: tx
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def until_a_query_waits_on_a_lock(engine: AsyncEngine, task: asyncio.Task) -> None:
    """Return once another connection of this database is blocked on a row lock."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as conn:
        for _ in range(1000):
            assert not task.done(), "the concurrent call finished without waiting"
            if await conn.scalar(waiting):
                return
            await conn.rollback()  # pg_stat_activity is read once per transaction
            await asyncio.sleep(0.005)
    raise AssertionError("no query ever waited on the lock")
