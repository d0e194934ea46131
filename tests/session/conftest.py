"""Fixtures of the session service's tests: its migrated database, its app, users."""

import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from session_service.auth import hash_password
from session_service.config import Settings
from session_service.main import create_app
from session_service.models import (
    Outbox,
    Result,
    Session,
    Subject,
    Token,
    Trial,
    User,
    Video,
)
from shared.config import S3Settings
from shared.db import create_sessionmaker, transaction, utcnow
from shared.identity import token_hash
from tests.conftest import api_client, migrated_engine, rolled_back


@pytest.fixture(scope="session")
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(postgres_url, "session")
    yield engine
    await engine.dispose()


@pytest.fixture
async def tx(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with rolled_back(engine) as tx:
        yield tx


def service_settings(s3_settings: S3Settings, smtp_port: int, **changes) -> Settings:
    """The service's settings in tests: mail goes to the in-process SMTP server."""
    values = {
        **s3_settings.model_dump(),
        "public_url": "https://api.example.org",
        "log_json": False,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_starttls": False,
        "web_app_url": "https://app.example.org",
    }
    return Settings(**(values | changes))


@pytest.fixture(scope="session")
def app(s3_settings: S3Settings, smtp) -> FastAPI:
    """One app for the whole run: building one costs more than most tests take."""
    return create_app(service_settings(s3_settings, smtp[1]))


@pytest.fixture
def settings(app: FastAPI) -> Settings:
    return app.state.settings


@contextlib.asynccontextmanager
async def bound_client(app: FastAPI, tx: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """`app` over HTTP; each request runs in a savepoint of `tx`, released when it
    succeeds and rolled back when it fails, as a request's own transaction would be."""

    async def request_transaction() -> AsyncIterator[AsyncSession]:
        async with tx.begin_nested():
            yield tx

    async with api_client(app, tx) as client:
        app.dependency_overrides[transaction] = request_transaction
        yield client


def app_client(settings: Settings, tx: AsyncSession):
    """A new app with `settings`, over HTTP as `bound_client`."""
    return bound_client(create_app(settings), tx)


@pytest.fixture
async def client(app: FastAPI, tx: AsyncSession):
    async with bound_client(app, tx) as client:
        yield client


PASSWORD = "secret password"


@pytest.fixture
async def committed(engine: AsyncEngine):
    """Transactions that really commit, for real concurrency: users named `race-…` and
    their sessions are removed afterwards."""
    db = create_sessionmaker(engine)
    yield db
    async with db() as tx, tx.begin():
        racers = select(User.id).where(User.username.like("race-%"))
        await tx.execute(delete(Session).where(Session.user_id.in_(racers)))
        await tx.execute(delete(User).where(User.username.like("race-%")))
        await tx.execute(delete(Outbox))


async def make_user(
    tx: AsyncSession, username: str = "alice", groups=(), verified: bool = True
) -> User:
    """A user whose password is PASSWORD (hashed cheaply: tests make many users), past the
    e-mail code step unless `verified` is False."""
    user = User(
        username=username,
        email=f"{username}@example.org",
        password_hash=hash_password(PASSWORD, iterations=1000),
        groups=list(groups),
        date_joined=utcnow(),
        otp_verified=verified,
    )
    tx.add(user)
    await tx.flush()
    return user


async def auth_headers(tx: AsyncSession, user: User) -> dict[str, str]:
    """A token for `user`, stored directly: setting up a test announces nothing."""
    key = secrets.token_hex(20)
    tx.add(Token(key_hash=token_hash(key), user_id=user.id, created_at=utcnow()))
    return {"Authorization": f"Token {key}"}


@pytest.fixture
async def alice(tx: AsyncSession) -> User:
    return await make_user(tx, "alice")


@pytest.fixture
async def as_alice(tx: AsyncSession, alice: User) -> dict[str, str]:
    return await auth_headers(tx, alice)


@pytest.fixture
async def bob(tx: AsyncSession) -> User:
    return await make_user(tx, "bob")


@pytest.fixture
async def as_bob(tx: AsyncSession, bob: User) -> dict[str, str]:
    return await auth_headers(tx, bob)


@pytest.fixture
async def pipeline(tx: AsyncSession) -> User:
    """The processing pipeline's user (group `backend`)."""
    return await make_user(tx, "pipeline", groups=["backend"])


@pytest.fixture
async def as_pipeline(tx: AsyncSession, pipeline: User) -> dict[str, str]:
    return await auth_headers(tx, pipeline)


@pytest.fixture
async def as_admin(tx: AsyncSession) -> dict[str, str]:
    return await auth_headers(tx, await make_user(tx, "root", groups=["admin"]))


# ── rows made directly, for states the HTTP routes reach only through other services ─


async def outbox_rows(tx: AsyncSession) -> list[Outbox]:
    return list((await tx.scalars(select(Outbox).order_by(Outbox.id))).all())


async def routing_keys(tx: AsyncSession) -> list[str]:
    return [row.routing_key for row in await outbox_rows(tx)]


async def make_session(
    tx: AsyncSession,
    user: User,
    *,
    meta: dict | None = None,
    public: bool = False,
    created_at: datetime | None = None,
    **columns,
) -> Session:
    when = created_at or utcnow()
    values = {"is_mono": False, "status": "init", "trashed": False, "updated_at": when}
    session = Session(
        id=uuid4(), user_id=user.id, meta=meta, public=public, created_at=when, **values | columns
    )
    tx.add(session)
    await tx.flush()
    return session


async def make_trial(
    tx: AsyncSession,
    session: Session,
    name: str | None = "walk",
    status: str = "recording",
    *,
    created_at: datetime | None = None,
    **columns,
) -> Trial:
    when = created_at or utcnow()
    values = {"processed_count": 0, "trashed": False, "updated_at": when}
    trial = Trial(
        id=uuid4(),
        session_id=session.id,
        name=name,
        status=status,
        created_at=when,
        **values | columns,
    )
    tx.add(trial)
    await tx.flush()
    return trial


async def make_video(
    tx: AsyncSession, trial: Trial, key: str | None = None, parameters: dict | None = None
) -> Video:
    """A phone's video slot of `trial`; with `key`, its upload arrived."""
    now = utcnow()
    video = Video(
        id=uuid4(),
        trial_id=trial.id,
        device_id=uuid4(),
        key=key,
        parameters=parameters,
        created_at=now,
        updated_at=now,
    )
    tx.add(video)
    await tx.flush()
    return video


_result_ids = itertools.count(1_000_000)


async def make_result(tx: AsyncSession, trial: Trial, tag: str, key: str) -> Result:
    now = utcnow()
    result = Result(
        id=next(_result_ids),
        trial_id=trial.id,
        tag=tag,
        device_id="all",
        key=key,
        created_at=now,
        updated_at=now,
    )
    tx.add(result)
    await tx.flush()
    return result


async def make_subject(tx: AsyncSession, user: User, name: str = "Jo", **columns) -> Subject:
    now = utcnow()
    values = {"characteristics": "", "trashed": False, "created_at": now, "updated_at": now}
    subject = Subject(user_id=user.id, name=name, **values | columns)
    tx.add(subject)
    await tx.flush()
    return subject
