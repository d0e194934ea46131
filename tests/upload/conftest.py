"""Fixtures of the upload service's tests: its migrated database, its app on a real S3
endpoint, and phones that joined a trial."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.config import S3Settings
from shared.db import utcnow
from shared.events import (
    Camera,
    CamerasFinal,
    DeviceJoined,
    Envelope,
    Event,
    SessionCreated,
    TokenIssued,
    UserUpdated,
)
from shared.identity import identity_handlers, token_hash
from shared.messaging import Consumer
from shared.storage import Storage
from tests.conftest import api_client, database_for, migrated_engine, rolled_back
from upload_service import consumers
from upload_service.api import units
from upload_service.config import Settings
from upload_service.main import create_app
from upload_service.models import ApiToken, ApiUser, ProcessedEvent

PUBLIC_URL = "https://api.example.org"
SECRET = "test-signing-secret"
PARAMETERS = {"fov": "69.4", "model": "iPhone13,3", "max_framerate": 240}
CONTENT = b"\x00\x00\x00\x14ftypqt  a small quicktime video"
OWNER_ID, OTHER_ID, BACKEND_ID = 11, 12, 2


@pytest.fixture(scope="session")
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(postgres_url, "upload")
    yield engine
    await engine.dispose()


@pytest.fixture
async def tx(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with rolled_back(engine) as tx:
        yield tx


@pytest.fixture
def settings(s3_settings: S3Settings, postgres_url: str) -> Settings:
    return Settings(
        **s3_settings.model_dump(),
        database_url=f"{postgres_url}/{database_for('upload')}",
        public_url=PUBLIC_URL,
        log_json=False,
        upload_signing_secret=SECRET,
    )


def in_savepoints(tx: AsyncSession):
    """The API's short transactions as savepoints of the test's transaction."""

    @asynccontextmanager
    async def unit() -> AsyncIterator[AsyncSession]:
        async with tx.begin_nested():
            yield tx

    return unit


def client_for(app, tx: AsyncSession) -> httpx.AsyncClient:
    """`app` called in-process, every request (and each of its short transactions) in `tx`."""
    app.dependency_overrides[units] = lambda: in_savepoints(tx)
    return api_client(app, tx)


@pytest.fixture
async def client(settings: Settings, tx: AsyncSession):
    async with client_for(create_app(settings), tx) as client:
        yield client


class Delivery:
    """A message as the broker hands it to a consumer: its body, and what became of it."""

    def __init__(self, envelope: Envelope):
        self.body = envelope.model_dump_json().encode()
        self.headers, self.message_id, self.correlation_id = {}, str(envelope.id), None
        self.outcome: str | None = None

    async def ack(self) -> None:
        self.outcome = "acknowledged"

    async def reject(self, requeue: bool = False) -> None:
        self.outcome = "rejected"


Deliver = Callable[..., Awaitable[Envelope]]


def consumer_in(tx: AsyncSession, storage: Storage) -> Deliver:
    """`await deliver(event_or_envelope, occurred_at=...)`: the upload worker's consumer
    handles it (its claim and handler in a savepoint of the test's transaction)."""
    db = async_sessionmaker(
        bind=tx.bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    consumer = Consumer(None, "upload", db, consumers.handlers(storage), ProcessedEvent)

    async def deliver(event: Event | Envelope, occurred_at: datetime | None = None) -> Envelope:
        envelope = event
        if not isinstance(event, Envelope):
            at = occurred_at or utcnow()
            envelope = Envelope.wrap(event, producer="session", occurred_at=at, correlation_id=None)
        message = Delivery(envelope)
        await consumer.handle(message)
        assert message.outcome == "acknowledged"
        tx.expire_all()
        return envelope

    return deliver


@pytest.fixture
def deliver(tx: AsyncSession, storage: Storage) -> Deliver:
    return consumer_in(tx, storage)


@dataclass(frozen=True)
class Trial:
    session_id: UUID
    trial_id: UUID
    cameras: list[Camera]

    @property
    def final(self) -> CamerasFinal:
        return CamerasFinal(
            trial_id=self.trial_id, session_id=self.session_id, cameras=self.cameras
        )


async def joined_trial(tx: AsyncSession, phones: int = 1, session_id: UUID | None = None) -> Trial:
    """A trial `phones` phones joined (`device.joined`), its camera set not final yet."""
    cameras = [Camera(video_id=uuid4(), device_id=uuid4()) for _ in range(phones)]
    trial = Trial(session_id or uuid4(), uuid4(), cameras)
    for camera in trial.cameras:
        event = DeviceJoined(
            video_id=camera.video_id,
            trial_id=trial.trial_id,
            session_id=trial.session_id,
            device_id=camera.device_id,
        )
        await consumers.on_device_joined(tx, event)
    return trial


async def presign(client: httpx.AsyncClient, session_id: UUID) -> dict:
    response = await client.get(f"/sessions/{session_id}/get_presigned_url/")
    assert response.status_code == 200, response.text
    return response.json()


def form(
    fields: dict,
    content: bytes | None = CONTENT,
    file_first: bool = False,
    content_type: str = "video/mp4",
) -> list:
    """The multipart parts a phone posts: the policy fields (reversed: the phones' order is
    a Swift dictionary's, i.e. any), then `file`."""
    parts = [(name, (None, value)) for name, value in reversed(list(fields.items()))]
    if content is not None:
        file = ("file", (fields.get("key", "video.mov"), content, content_type))
        parts = [file, *parts] if file_first else [*parts, file]
    return parts


async def post_upload(
    client: httpx.AsyncClient, presigned: dict, content: bytes | None = CONTENT, **changes
) -> httpx.Response:
    """POST to the presign's `url` with its fields (some replaced by `changes`) and a file."""
    fields = {**presigned["fields"], **changes}
    path = presigned["url"].removeprefix(PUBLIC_URL)
    return await client.post(path, files=form(fields, content))


async def uploaded_key(
    client: httpx.AsyncClient, session_id: UUID, content: bytes = CONTENT
) -> str:
    """Presign and upload as a phone does; the key of the stored object."""
    presigned = await presign(client, session_id)
    response = await post_upload(client, presigned, content)
    assert response.status_code == 204, response.text
    return presigned["fields"]["key"]


async def patch(
    client: httpx.AsyncClient, video_id, path: str = "videos", **kwargs
) -> httpx.Response:
    return await client.patch(f"/{path}/{video_id}/", **kwargs)


IDENTITY = identity_handlers(ApiToken, ApiUser)


async def caller(
    tx: AsyncSession, user_id: int, groups: tuple[str, ...] = (), verified: bool = True
) -> dict:
    """A user this service learned from the session service's events; their auth header.
    `verified=False`: logged in, the e-mailed code not entered yet."""
    token = f"token-of-user-{user_id}"
    updated = UserUpdated(user_id=user_id, groups=list(groups), verified=verified)
    await IDENTITY[UserUpdated](tx, updated)
    issued = TokenIssued(key_hash=token_hash(token), user_id=user_id)
    await IDENTITY[TokenIssued](tx, issued)
    return {"Authorization": f"Token {token}"}


async def owned(tx: AsyncSession, session_id: UUID, user_id: int = OWNER_ID) -> None:
    """The session was created by `user_id` (`session.created`)."""
    await consumers.on_session_created(tx, SessionCreated(session_id=session_id, user_id=user_id))
