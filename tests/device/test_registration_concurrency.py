"""Known-failures case 1 under real concurrency: overlapping polls of one phone, and polls
racing the stop. Unlike the other tests these commit (each request in its own
transaction, as in production) and delete their rows at the end. The replica's read
model hears no events here: it learns the session from the database on the first poll,
and a stop only from the database refusing a registration."""

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from device_service import consumers
from device_service.config import Settings
from device_service.main import create_app
from device_service.models import KnownSession, KnownTrial, Outbox, VideoSlot
from device_service.service import register
from shared.db import create_engine, create_sessionmaker
from shared.events import SessionDeleted, TrialDeleted, TrialStopped
from tests.conftest import api_client, until_a_query_waits_on_a_lock
from tests.device.conftest import create_session, start_trial, start_trial_with_id

OVERLAPPING_POLLS = 10


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator:
    """The app with its own engine on the test database (ASGITransport skips the lifespan)."""
    app = create_app(settings)
    app.state.engine = create_engine(settings.database_url, pool_size=OVERLAPPING_POLLS + 5)
    app.state.db = app.state.read_model.db = create_sessionmaker(app.state.engine)
    app.state.session_ids = []
    yield app
    async with app.state.db() as tx, tx.begin():
        for session_id in app.state.session_ids:
            await _delete_session(tx, session_id)
    await app.state.engine.dispose()


async def _delete_session(tx, session_id: UUID) -> None:
    await tx.execute(delete(VideoSlot).where(VideoSlot.session_id == session_id))
    await tx.execute(delete(KnownTrial).where(KnownTrial.session_id == session_id))
    await tx.execute(delete(KnownSession).where(KnownSession.id == session_id))
    of_session = Outbox.body["data"]["session_id"].astext == str(session_id)
    await tx.execute(delete(Outbox).where(of_session))


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as client:
        yield client


@pytest.fixture
async def recording(app) -> tuple[UUID, UUID]:
    """A committed session whose latest trial is recording: (session_id, trial_id)."""
    async with app.state.db() as tx, tx.begin():
        session_id = await create_session(tx)
        trial_id = await start_trial(tx, session_id)
    app.state.session_ids.append(session_id)
    return session_id, trial_id


async def poll(client, session_id: UUID, device_id: UUID) -> httpx.Response:
    return await client.get(f"/sessions/{session_id}/status/", params={"device_id": str(device_id)})


async def count(app, model, *where) -> int:
    async with app.state.db() as tx:
        return await tx.scalar(select(func.count()).select_from(model).where(*where))


async def joined_events(app, session_id: UUID) -> list[dict]:
    async with app.state.db() as tx:
        stmt = select(Outbox.body).where(
            Outbox.routing_key == "device.joined",
            Outbox.body["data"]["session_id"].astext == str(session_id),
        )
        return list((await tx.scalars(stmt)).all())


async def final_cameras(app, trial_id: UUID) -> list[set[tuple[str, str]]]:
    async with app.state.db() as tx:
        stmt = select(Outbox.body).where(
            Outbox.routing_key == "trial.cameras_final",
            Outbox.body["data"]["trial_id"].astext == str(trial_id),
        )
        bodies = (await tx.scalars(stmt)).all()
    return [{(c["video_id"], c["device_id"]) for c in b["data"]["cameras"]} for b in bodies]


async def slots_in_db(app, trial_id: UUID) -> set[tuple[str, str]]:
    async with app.state.db() as tx:
        rows = await tx.execute(
            select(VideoSlot.id, VideoSlot.device_id).where(VideoSlot.trial_id == trial_id)
        )
        return {(str(video_id), str(device_id)) for video_id, device_id in rows}


async def stop(app, session_id: UUID, trial_id: UUID) -> None:
    async with app.state.db() as tx, tx.begin():
        await consumers.on_trial_stopped(tx, TrialStopped(trial_id=trial_id, session_id=session_id))


def video_of(response: httpx.Response) -> str | None:
    assert response.status_code == 200, response.text
    return response.json()["video"]


async def test_overlapping_polls_of_one_phone_register_one_camera(app, client, recording):
    session_id, trial_id = recording
    phone, other_phone = uuid4(), uuid4()

    responses = await asyncio.gather(
        *(poll(client, session_id, phone) for _ in range(OVERLAPPING_POLLS)),
        poll(client, session_id, other_phone),
    )

    videos = [video_of(r) for r in responses]
    assert len(set(videos[:OVERLAPPING_POLLS])) == 1 and videos[0] is not None
    assert videos[-1] not in (None, videos[0])
    assert await count(app, VideoSlot, VideoSlot.trial_id == trial_id) == 2
    joined = await joined_events(app, session_id)
    assert sorted(e["data"]["device_id"] for e in joined) == sorted(map(str, (phone, other_phone)))
    after = (await client.get(f"/sessions/{session_id}/status/")).json()
    assert after["n_cameras_connected"] == 2


async def test_poll_losing_the_insert_race_answers_with_the_winners_slot(app, client, recording):
    session_id, trial_id = recording
    phone = uuid4()
    async with app.state.db() as winner:
        await winner.begin()
        trial = await winner.get(KnownTrial, trial_id)
        slot = await register(winner, trial, phone)
        late_poll = asyncio.create_task(poll(client, session_id, phone))
        await until_a_query_waits_on_a_lock(app.state.engine, late_poll)
        await winner.commit()

    assert video_of(await late_poll) == f"/videos/{slot.id}/"
    assert await count(app, VideoSlot, VideoSlot.trial_id == trial_id) == 1
    assert len(await joined_events(app, session_id)) == 1


async def test_polls_racing_the_stop_never_leave_a_slot_outside_the_final_set(
    app, client, recording
):
    session_id, trial_id = recording
    phones = [uuid4() for _ in range(OVERLAPPING_POLLS)]

    *responses, _ = await asyncio.gather(
        *(poll(client, session_id, phone) for phone in phones), stop(app, session_id, trial_id)
    )

    [final] = await final_cameras(app, trial_id)
    assert final == await slots_in_db(app, trial_id)
    given = {video_of(r) for r in responses} - {None}
    assert given <= {f"/videos/{video_id}/" for video_id, _ in final}


async def test_stop_waits_for_a_registering_poll_and_includes_its_slot(app, client, recording):
    session_id, trial_id = recording
    phone = uuid4()
    async with app.state.db() as polling:
        await polling.begin()
        slot = await register(polling, await polling.get(KnownTrial, trial_id), phone)
        stopping = asyncio.create_task(stop(app, session_id, trial_id))
        await until_a_query_waits_on_a_lock(app.state.engine, stopping)
        await polling.commit()
    await stopping

    assert await final_cameras(app, trial_id) == [{(str(slot.id), str(phone))}]


async def test_poll_arriving_during_the_stop_gets_no_slot(app, client, recording):
    session_id, trial_id = recording
    early, late = uuid4(), uuid4()
    video_of(await poll(client, session_id, early))
    async with app.state.db() as stopping:
        await stopping.begin()
        event = TrialStopped(trial_id=trial_id, session_id=session_id)
        await consumers.on_trial_stopped(stopping, event)
        late_poll = asyncio.create_task(poll(client, session_id, late))
        await until_a_query_waits_on_a_lock(app.state.engine, late_poll)
        await stopping.commit()
    response = await late_poll

    assert video_of(response) is None and response.json()["status"] == "uploading"
    [final] = await final_cameras(app, trial_id)
    assert {device for _, device in final} == {str(early)}
    assert final == await slots_in_db(app, trial_id)


async def test_stop_handled_while_another_worker_handles_the_start_still_stops(app):
    async with app.state.db() as tx, tx.begin():
        session_id = await create_session(tx)
    app.state.session_ids.append(session_id)
    trial_id = uuid4()
    async with app.state.db() as starting:
        await starting.begin()
        await start_trial_with_id(starting, session_id, trial_id)
        stopping = asyncio.create_task(stop(app, session_id, trial_id))
        await until_a_query_waits_on_a_lock(app.state.engine, stopping)
        await starting.commit()
    await stopping

    async with app.state.db() as tx:
        assert (await tx.get(KnownTrial, trial_id)).status == "stopped"
    assert await final_cameras(app, trial_id) == [set()]


async def delete_in_worker(app, session_id: UUID, trial_id: UUID, what: str) -> None:
    async with app.state.db() as tx, tx.begin():
        await deletion(tx, session_id, trial_id, what)


async def deletion(tx, session_id: UUID, trial_id: UUID, what: str) -> None:
    if what == "session":
        await consumers.on_session_deleted(tx, SessionDeleted(session_id=session_id))
    else:
        event = TrialDeleted(trial_id=trial_id, session_id=session_id)
        await consumers.on_trial_deleted(tx, event)


@pytest.mark.parametrize("what", ["trial", "session"])
async def test_a_deletion_waits_for_a_registering_poll_and_drops_its_slot(
    app, client, recording, what
):
    session_id, trial_id = recording
    async with app.state.db() as polling:
        await polling.begin()
        await register(polling, await polling.get(KnownTrial, trial_id), uuid4())
        deleting = asyncio.create_task(delete_in_worker(app, session_id, trial_id, what))
        await until_a_query_waits_on_a_lock(app.state.engine, deleting)
        await polling.commit()
    await deleting

    assert await slots_in_db(app, trial_id) == set()


@pytest.mark.parametrize("what", ["trial", "session"])
async def test_a_poll_arriving_during_a_deletion_gets_no_slot(app, client, recording, what):
    session_id, trial_id = recording
    video_of(await poll(client, session_id, uuid4()))  # the replica holds the trial recording
    async with app.state.db() as deleting:
        await deleting.begin()
        await deletion(deleting, session_id, trial_id, what)
        late_poll = asyncio.create_task(poll(client, session_id, uuid4()))
        await until_a_query_waits_on_a_lock(app.state.engine, late_poll)
        await deleting.commit()
    response = await late_poll

    if what == "session":
        assert response.status_code == 404
    else:
        assert (video_of(response), response.json()["trial"]) == (None, None)
    assert await slots_in_db(app, trial_id) == set()
    assert (
        await count(app, KnownTrial, KnownTrial.id == trial_id, KnownTrial.deleted_at.is_(None))
        == 0
    )
