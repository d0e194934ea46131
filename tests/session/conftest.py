"""Fixtures of the session service's tests: its migrated database, its app, users."""

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from session_service.auth import hash_password
from session_service.config import Settings
from session_service.main import create_app
from session_service.models import Token, User
from shared.config import S3Settings
from shared.db import transaction, utcnow
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


@pytest.fixture
def settings(s3_settings: S3Settings, smtp) -> Settings:
    return Settings(
        **s3_settings.model_dump(),
        public_url="https://api.example.org",
        log_json=False,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_starttls=False,
        web_app_url="https://app.example.org",
    )


@pytest.fixture
async def client(settings: Settings, tx: AsyncSession):
    """The app over HTTP; each request runs in a savepoint of `tx`, released when it
    succeeds and rolled back when it fails, as a request's own transaction would be."""

    async def request_transaction() -> AsyncIterator[AsyncSession]:
        async with tx.begin_nested():
            yield tx

    app = create_app(settings)
    async with api_client(app, tx) as client:
        app.dependency_overrides[transaction] = request_transaction
        yield client


PASSWORD = "secret password"


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
