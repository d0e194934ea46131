"""API replicas on the real broker and database: each loads the database at startup, hears
every event on its own queue, catches up on what it missed, and all of them answer alike.
Like the concurrency tests these commit, and delete their sessions at the end."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from uuid import UUID, uuid4

import aio_pika
import httpx
import pytest
import uvicorn
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from device_service import service
from device_service.config import Settings
from device_service.feed import Feed
from device_service.live import phone_tag
from device_service.main import create_app
from device_service.models import KnownSession, KnownTrial, Outbox, VideoSlot
from device_service.read_model import ReadModel
from device_service.snapshot import Resync
from shared.db import create_sessionmaker, utcnow
from shared.events import (
    Event,
    SessionCreated,
    SessionDeleted,
    TrialDeleted,
    TrialStarted,
    TrialStopped,
)
from shared.messaging import declare_events, publish_envelope
from shared.outbox import publish_pending
from tests.conftest import api_client
from tests.device.conftest import OWNER_ID, deliver, envelope_of, identity_events


@pytest.fixture
def live_settings(settings: Settings, amqp_url: str) -> Settings:
    return settings.model_copy(
        update={"amqp_url": amqp_url, "read_model_resync_seconds": 0.2, "presence_seconds": 0.1}
    )


@pytest.fixture
def db(engine: AsyncEngine):
    return create_sessionmaker(engine)


@pytest.fixture
async def sessions(db) -> AsyncIterator[list[UUID]]:
    """Session ids to delete (with everything about them) at the end of the test."""
    made: list[UUID] = []
    yield made
    async with db() as tx, tx.begin():
        for session_id in made:
            await tx.execute(delete(VideoSlot).where(VideoSlot.session_id == session_id))
            await tx.execute(delete(KnownTrial).where(KnownTrial.session_id == session_id))
            await tx.execute(delete(KnownSession).where(KnownSession.id == session_id))
            of_session = Outbox.body["data"]["session_id"].astext == str(session_id)
            await tx.execute(delete(Outbox).where(of_session))


@contextlib.asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator:
    """A started API replica (its lifespan run: subscribed, loaded, re-reading)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_events(channel)
        yield channel


async def publish(channel, *events: Event) -> None:
    exchange = await channel.get_exchange("events")
    for event in events:
        await publish_envelope(exchange, envelope_of(event))


async def in_database(db, *events: Event) -> None:
    """The events as the worker applies them, committed."""
    async with db() as tx, tx.begin():
        for event in events:
            await deliver(tx, event)


async def eventually(check: Callable, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.02)


IDENTITY, OWNER = identity_events(OWNER_ID)


def new_session(sessions: list[UUID]) -> tuple[UUID, UUID, list[Event]]:
    session_id, trial_id = uuid4(), uuid4()
    sessions.append(session_id)
    events = [
        SessionCreated(session_id=session_id, user_id=OWNER_ID, framerate=120),
        TrialStarted(trial_id=trial_id, session_id=session_id, name="walk", created_at=utcnow()),
    ]
    return session_id, trial_id, events


async def status(app, session_id: UUID, device_id: UUID | None = None) -> dict:
    params = {"device_id": str(device_id)} if device_id else {}
    async with api_client(app) as client:
        response = await client.get(f"/sessions/{session_id}/status/", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@contextlib.asynccontextmanager
async def broken(read_model: ReadModel) -> AsyncIterator[None]:
    """The replica's database is away while inside."""

    def no_database():
        raise ConnectionError("database away")

    read_model.transaction = no_database
    try:
        yield
    finally:
        del read_model.transaction


async def test_a_replica_starts_with_what_the_database_holds(live_settings, db, sessions):
    session_id, trial_id, events = new_session(sessions)
    phone = uuid4()
    await in_database(db, *events)
    async with db() as tx, tx.begin():
        slot = await service.register(tx, await tx.get(KnownTrial, trial_id), phone)

    async with replica(live_settings) as app, broken(app.state.read_model):
        mine = await status(app, session_id, phone)
        web = await status(app, session_id)

    assert (mine["status"], mine["video"]) == ("recording", f"/videos/{slot.id}/")
    assert (web["n_cameras_connected"], web["framerate"]) == (1, 120)


async def test_events_heard_during_the_load_are_kept(live_settings, db, sessions, broker):
    session_id, trial_id, events = new_session(sessions)
    await in_database(db, *events)  # the worker has not applied the stop yet
    read_model = ReadModel()
    feed = Feed(live_settings.amqp_url, read_model)
    await feed.start()
    try:
        await publish(broker, TrialStopped(trial_id=trial_id, session_id=session_id))
        assert await eventually(lambda: _has_trial(read_model, session_id, "stopped"))
        await Resync(read_model, db, 1, 30).load(timedelta(days=1))
    finally:
        await feed.close()

    view = read_model.sessions[session_id]
    assert (view.latest.status, view.latest.name, view.framerate) == ("stopped", "walk", 120)
    assert view.complete


async def _has_trial(read_model: ReadModel, session_id: UUID, status: str) -> bool:
    view = read_model.sessions.get(session_id)
    return view is not None and view.latest is not None and view.latest.status == status


async def test_two_replicas_answer_the_same_after_events(live_settings, db, sessions, broker):
    session_id, trial_id, events = new_session(sessions)
    phone = uuid4()
    async with replica(live_settings) as one, replica(live_settings) as two:
        await in_database(db, *events)
        await publish(broker, *events)
        for app in (one, two):
            assert await eventually(
                lambda a=app: _has_trial(a.state.read_model, session_id, "recording")
            )
        mine = await status(one, session_id, phone)  # registers on replica one
        await publish_pending(db, Outbox, broker)  # the worker's relay sends device.joined
        joined = await eventually(lambda: _cameras(two, session_id, 1), timeout=10)
        await in_database(db, TrialStopped(trial_id=trial_id, session_id=session_id))
        await publish(broker, TrialStopped(trial_id=trial_id, session_id=session_id))
        for app in (one, two):
            assert await eventually(
                lambda a=app: _has_trial(a.state.read_model, session_id, "stopped")
            )
        answers = [await status(app, session_id, phone) for app in (one, two)]
        webs = [await status(app, session_id) for app in (one, two)]

    assert mine["status"] == "recording" and joined
    assert answers[0] == answers[1] and answers[0]["status"] == "uploading"
    assert webs[0] == webs[1] and webs[0]["n_cameras_connected"] == 1


async def _cameras(app, session_id: UUID, n: int) -> bool:
    return (await status(app, session_id))["n_cameras_connected"] == n


async def test_a_phone_polling_the_other_replica_gets_the_same_video(live_settings, db, sessions):
    session_id, _, events = new_session(sessions)
    phone = uuid4()
    await in_database(db, *events)
    async with replica(live_settings) as one, replica(live_settings) as two:
        first = await status(one, session_id, phone)
        second = await status(two, session_id, phone)  # before device.joined reaches it

    assert first["video"] == second["video"] and first["video"] is not None


async def test_a_replica_catches_up_on_a_change_it_never_heard(live_settings, db, sessions):
    session_id, trial_id, events = new_session(sessions)
    await in_database(db, *events)
    async with replica(live_settings) as app:
        assert (await status(app, session_id))["trial"] == f"/trials/{trial_id}/"
        # The worker applied a stop whose event this replica's queue never got.
        await in_database(db, TrialStopped(trial_id=trial_id, session_id=session_id))
        caught_up = await eventually(
            lambda: _has_trial(app.state.read_model, session_id, "stopped")
        )

    assert caught_up


async def devices(app, session_id: UUID) -> list[dict]:
    async with api_client(app) as client:
        response = await client.get(f"/sessions/{session_id}/devices/", headers=OWNER)
        return response.json()["devices"]


async def test_phones_polling_one_replica_are_listed_by_the_other(live_settings, db, sessions):
    session_id, _, events = new_session(sessions)
    phone = uuid4()
    await in_database(db, *IDENTITY, *events)
    async with replica(live_settings) as one, replica(live_settings) as two:
        await status(one, session_id, phone)

        async def listed() -> list[dict]:
            tag = phone_tag(session_id, phone)
            return [d for d in await devices(two, session_id) if d["tag"] == tag and d["connected"]]

        listed_by_two = await eventually(listed)

    assert listed_by_two


async def test_replicas_label_the_phones_alike(live_settings, db, sessions):
    session_id, _, events = new_session(sessions)
    first, second = uuid4(), uuid4()
    await in_database(db, *IDENTITY, *events)
    async with replica(live_settings) as one, replica(live_settings) as two:
        await status(one, session_id, first)
        await asyncio.sleep(0.01)
        await status(two, session_id, second)

        async def both_listed() -> list[list[tuple[str, str]]] | None:
            lists = [
                [(d["label"], d["tag"]) for d in await devices(a, session_id)] for a in (one, two)
            ]
            return lists if all(len(found) == 2 for found in lists) else None

        lists = await eventually(both_listed)

    expected = [
        ("phone 1", phone_tag(session_id, first)),
        ("phone 2", phone_tag(session_id, second)),
    ]
    assert lists == [expected, expected]


async def test_a_replica_catches_up_on_deletions_it_never_heard(live_settings, db, sessions):
    session_id, _, events = new_session(sessions)
    other_id, other_trial, other_events = new_session(sessions)
    await in_database(db, *events, *other_events)
    async with replica(live_settings) as app:
        assert (await status(app, other_id))["trial"] == f"/trials/{other_trial}/"
        assert (await status(app, session_id))["status"] == "ready"
        # The worker applied deletions whose events this replica's queue never got.
        await in_database(
            db,
            SessionDeleted(session_id=session_id),
            TrialDeleted(trial_id=other_trial, session_id=other_id),
        )

        async def caught_up() -> bool:
            async with api_client(app) as client:
                gone = await client.get(f"/sessions/{session_id}/status/")
            return gone.status_code == 404 and (await status(app, other_id))["trial"] is None

        assert await eventually(caught_up)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_the_stream_is_served_as_server_sent_events(live_settings, db, sessions, broker):
    session_id, trial_id, events = new_session(sessions)
    await in_database(db, *IDENTITY, events[0])
    async with replica(live_settings) as app:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: asyncio.sleep(0, server.started))
            url = f"http://127.0.0.1:{port}/sessions/{session_id}/status/stream/"
            http = httpx.AsyncClient(timeout=10, headers=OWNER)
            async with http, http.stream("GET", url) as response:
                lines = response.aiter_lines()
                first = await _data_of_next(lines, "status")
                await publish(broker, events[1])
                second = await _data_of_next(lines, "status")
        finally:
            server.should_exit = True
            await serving

    assert response.headers["content-type"].startswith("text/event-stream")
    assert first["trial"] is None
    assert second["trial"] == f"/trials/{trial_id}/"


async def _data_of_next(lines, event: str) -> dict:
    async def read() -> dict:
        current = None
        async for line in lines:
            if line.startswith("event: "):
                current = line[7:]
            elif line.startswith("data: ") and current == event:
                return json.loads(line[6:])
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(read(), 10)
