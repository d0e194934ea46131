"""Beyond the original: the long-poll form of the status, the session's event stream and
the live list of connected phones, all answered from the replica's memory."""

import asyncio
import json
from uuid import uuid4

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from device_service import live
from device_service.live import phone_tag, session_stream
from device_service.models import KnownSession
from device_service.poll import LONG_POLL_ROUTE, ROUTE
from device_service.service import require_watcher
from shared.db import utcnow
from shared.events import (
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TrialStarted,
    VideoUploaded,
)
from shared.identity import Caller
from tests.device.conftest import (
    OWNER_ID,
    create_session,
    deliver,
    signed_in,
    start_trial,
    stop_trial,
)


def status_url(session_id) -> str:
    return f"/sessions/{session_id}/status/"


async def test_every_answer_carries_a_version_that_changes_with_the_state(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)

    first = await client.get(status_url(session_id))
    again = await client.get(status_url(session_id))
    await start_trial(tx, session_id, read_model=read_model)
    after = await client.get(status_url(session_id))

    assert first.headers["etag"] == again.headers["etag"]
    assert first.headers["x-service"] == again.headers["x-service"] == "device"
    assert after.headers["etag"] != first.headers["etag"]


async def test_long_poll_answers_as_soon_as_the_state_changes(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    phone = uuid4()
    ready = await client.get(status_url(session_id), params={"device_id": str(phone)})
    version = ready.headers["etag"].strip('"')
    params = {"device_id": str(phone), "wait": "30", "version": version}

    waiting = asyncio.create_task(client.get(status_url(session_id), params=params))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await start_trial(tx, session_id, read_model=read_model)
    answer = await asyncio.wait_for(waiting, 5)

    assert answer.status_code == 200
    assert answer.json()["status"] == "recording"
    assert answer.json()["video"].startswith("/videos/")  # registered while it waited
    assert answer.headers["etag"].strip('"') != version


async def test_long_poll_without_a_change_answers_the_same_state_when_the_wait_ends(
    client, tx, read_model
):
    session_id = await create_session(tx, read_model=read_model)
    version = (await client.get(status_url(session_id))).headers["etag"].strip('"')

    answer = await client.get(status_url(session_id), params={"wait": "0.2", "version": version})

    assert answer.status_code == 200
    assert answer.headers["etag"].strip('"') == version
    assert answer.json()["status"] == "ready"


def timed(route: str) -> float:
    labels = {"method": "GET", "route": route}
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0


async def test_long_polls_are_timed_apart_from_the_plain_polls(client, tx, read_model):
    """The poll latency operators watch (PollSlow) must not include the waits asked for."""
    session_id = await create_session(tx, read_model=read_model)
    version = (await client.get(status_url(session_id))).headers["etag"].strip('"')
    plain, long = timed(ROUTE), timed(LONG_POLL_ROUTE)

    await client.get(status_url(session_id), params={"wait": "0.2", "version": version})
    await client.get(status_url(session_id), params={"device_id": str(uuid4())})

    assert (timed(ROUTE) - plain, timed(LONG_POLL_ROUTE) - long) == (1, 1)


async def test_long_poll_with_another_version_answers_at_once(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)

    answer = await asyncio.wait_for(
        client.get(status_url(session_id), params={"wait": "30", "version": "stale"}), 5
    )

    assert answer.status_code == 200 and answer.json()["status"] == "ready"


@pytest.mark.parametrize("wait", ["-1", "soon", "nan", "inf", "3600"])
async def test_a_wait_that_is_not_a_sensible_number_of_seconds_is_400(client, tx, read_model, wait):
    session_id = await create_session(tx, read_model=read_model)

    answer = await client.get(status_url(session_id), params={"wait": wait, "version": "x"})

    assert answer.status_code == 400
    assert list(answer.json()) == ["wait"]


async def test_a_browser_poll_gets_the_same_answer_through_the_app(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)

    phone = await client.get(status_url(session_id))
    browser = await client.get(status_url(session_id), headers={"Origin": "http://localhost:8080"})

    assert browser.status_code == 200
    assert browser.content == phone.content
    assert browser.headers["etag"] == phone.headers["etag"]


async def test_other_methods_on_the_status_are_405_json(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)

    answer = await client.post(status_url(session_id))

    assert answer.status_code == 405 and "detail" in answer.json()


def devices_url(session_id) -> str:
    return f"/sessions/{session_id}/devices/"


async def test_devices_lists_the_phones_polling_before_the_recording(
    client, tx, read_model, as_owner
):
    session_id = await create_session(tx, read_model=read_model)
    phones = [uuid4() for _ in range(3)]
    for phone in phones:
        await client.get(status_url(session_id), params={"device_id": str(phone).upper()})

    body = (await client.get(devices_url(session_id), headers=as_owner)).json()

    assert body["n_connected"] == 3 and body["trial"] is None
    assert [d["label"] for d in body["devices"]] == ["phone 1", "phone 2", "phone 3"]
    assert [d["tag"] for d in body["devices"]] == [phone_tag(session_id, p) for p in phones]
    assert all(d["connected"] and d["last_seen"].endswith("Z") for d in body["devices"])
    assert all(not d["in_trial"] and d["model"] is None for d in body["devices"])


async def test_a_phone_keeps_its_label_while_others_come_and_poll_again(
    client, tx, read_model, as_owner
):
    session_id = await create_session(tx, read_model=read_model)
    first, second = uuid4(), uuid4()

    await client.get(status_url(session_id), params={"device_id": str(first)})
    before = (await client.get(devices_url(session_id), headers=as_owner)).json()["devices"]
    for phone in (second, first, second):
        await client.get(status_url(session_id), params={"device_id": str(phone)})
    after = (await client.get(devices_url(session_id), headers=as_owner)).json()["devices"]

    assert [(d["label"], d["tag"]) for d in before] == [("phone 1", phone_tag(session_id, first))]
    assert [(d["label"], d["tag"]) for d in after] == [
        ("phone 1", phone_tag(session_id, first)),
        ("phone 2", phone_tag(session_id, second)),
    ]


def test_a_phones_tag_is_short_hex_and_its_own_in_each_session():
    session_id, other_session = uuid4(), uuid4()
    phone, other_phone = uuid4(), uuid4()

    tag = phone_tag(session_id, phone)

    assert len(tag) == 6 and int(tag, 16) >= 0 and tag == phone_tag(session_id, phone)
    assert tag != phone_tag(session_id, other_phone)
    assert tag != phone_tag(other_session, phone)  # no name that follows a phone around


async def test_the_live_views_never_show_a_device_id_or_a_video(
    app, client, tx, read_model, as_owner
):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)
    phones = [uuid4() for _ in range(2)]
    videos = []
    for phone in phones:
        answer = await client.get(status_url(session_id), params={"device_id": str(phone)})
        videos.append(answer.json()["video"].split("/")[2])
    stream = session_stream(app.state.poll, read_model.sessions[session_id], connected_seconds=5)

    devices = await client.get(devices_url(session_id), headers=as_owner)
    web = await client.get(status_url(session_id))
    await asyncio.wait_for(anext(stream), 5)  # the retry interval
    streamed = await next_event(stream)
    await stream.aclose()

    assert web.json()["video"] is None and streamed["status"]["video"] is None
    assert streamed["devices"] == devices.json()
    for text in (devices.text, web.text, json.dumps(streamed)):
        assert "/videos/" not in text
        for secret in (*phones, *videos):
            assert str(secret).replace("-", "").lower() not in text.replace("-", "").lower()
    assert [d["in_trial"] for d in devices.json()["devices"]] == [True, True]


async def test_devices_show_each_phones_slot_and_its_model_after_the_upload(
    client, tx, read_model, as_owner
):
    session_id = await create_session(tx, read_model=read_model)
    trial_id = await start_trial(tx, session_id, read_model=read_model)
    phone = uuid4()
    video = (await client.get(status_url(session_id), params={"device_id": str(phone)})).json()
    await stop_trial(tx, session_id, trial_id, read_model)
    event = VideoUploaded(
        video_id=video["video"].split("/")[2],
        trial_id=trial_id,
        session_id=session_id,
        device_id=phone,
        key="k.mov",
        size=1,
        parameters={"model": "iPhone14,2"},
    )
    await deliver(tx, event, read_model)

    [device] = (await client.get(devices_url(session_id), headers=as_owner)).json()["devices"]

    assert (device["label"], device["tag"]) == ("phone 1", phone_tag(session_id, phone))
    assert (device["model"], device["uploaded"], device["connected"]) == ("iPhone14,2", True, True)
    assert device["in_trial"] is True and "video" not in device and "device_id" not in device


@pytest.mark.parametrize("path", ["devices/", "status/stream/"])
async def test_unknown_or_malformed_sessions_are_404_on_the_live_routes(client, path, as_owner):
    for session_id in (uuid4(), "null"):
        answer = await client.get(f"/sessions/{session_id}/{path}", headers=as_owner)

        assert answer.status_code == 404 and "detail" in answer.json()


async def test_only_the_owner_and_admins_watch_a_private_sessions_phones(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    callers = {
        "owner": await signed_in(tx, OWNER_ID),
        "admin": await signed_in(tx, 2, groups=("admin",)),
        "another user": await signed_in(tx, 3),
        "a user before the e-mailed code": await signed_in(tx, 4, verified=False),
        "anonymous": {},
        "unknown token": {"Authorization": "Token nobody"},
    }

    answers = {
        name: (await client.get(devices_url(session_id), headers=headers)).status_code
        for name, headers in callers.items()
    }

    assert answers == {
        "owner": 200,
        "admin": 200,
        "another user": 404,
        "a user before the e-mailed code": 403,
        "anonymous": 403,
        "unknown token": 403,
    }


async def test_the_stream_is_refused_as_the_devices_are(client, tx, read_model):
    """(The owner's stream, which never ends, is read from a real server in test_replicas.)"""
    session_id = await create_session(tx, read_model=read_model)
    url = f"/sessions/{session_id}/status/stream/"

    anonymous = await client.get(url)
    another_user = await client.get(url, headers=await signed_in(tx, 3))

    assert (anonymous.status_code, another_user.status_code) == (403, 404)


async def test_anyone_watches_a_public_sessions_phones(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await deliver(tx, SessionUpdated(session_id=session_id, public=True), read_model)

    anonymous = await client.get(devices_url(session_id))
    await deliver(tx, SessionUpdated(session_id=session_id, public=False), read_model)
    private_again = await client.get(devices_url(session_id))

    assert (anonymous.status_code, anonymous.json()["devices"]) == (200, [])
    assert private_again.status_code == 403


async def test_the_owner_is_known_when_an_update_came_before_the_creation(client, tx):
    session_id = uuid4()
    await deliver(tx, SessionUpdated(session_id=session_id, framerate=60))
    await deliver(tx, SessionCreated(session_id=session_id, user_id=OWNER_ID))

    owner = await tx.scalar(select(KnownSession.owner_id).where(KnownSession.id == session_id))

    assert owner == OWNER_ID


async def next_event(stream) -> dict[str, dict]:
    """The next chunk of the stream, as {event name: data}."""
    chunk = await asyncio.wait_for(anext(stream), 5)
    events = {}
    for block in chunk.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            events[lines["event"]] = json.loads(lines["data"])
    return events


async def test_the_stream_sends_the_state_then_each_change(app, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    view = await read_model.session_for_poll(session_id)
    stream = session_stream(app.state.poll, view, connected_seconds=5)

    assert await asyncio.wait_for(anext(stream), 5) == b"retry: 1000\n\n"
    first = await next_event(stream)
    started = TrialStarted(
        trial_id=uuid4(), session_id=session_id, name="walk", created_at=utcnow()
    )
    await deliver(tx, started, read_model)
    second = await next_event(stream)
    await deliver(tx, SessionUpdated(session_id=session_id, framerate=120), read_model)
    third = await next_event(stream)
    await stream.aclose()

    assert first["status"]["trial"] is None and first["devices"]["devices"] == []
    assert second["status"]["trial"] == f"/trials/{started.trial_id}/"
    assert list(third) == ["status"] and third["status"]["framerate"] == 120


async def test_the_stream_ends_when_the_session_is_deleted(app, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    view = await read_model.session_for_poll(session_id)
    stream = session_stream(app.state.poll, view, connected_seconds=5)
    await asyncio.wait_for(anext(stream), 5)
    await next_event(stream)

    await deliver(tx, SessionDeleted(session_id=session_id), read_model)

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 5)


async def test_a_public_sessions_watchers_are_told_apart_from_its_owner(tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await deliver(tx, SessionUpdated(session_id=session_id, public=True), read_model)

    assert await require_watcher(tx, None, session_id) is True  # watching as the public
    assert await require_watcher(tx, Caller(user_id=3), session_id) is True
    assert await require_watcher(tx, Caller(user_id=OWNER_ID), session_id) is False


async def test_a_stream_open_as_the_public_ends_when_the_session_is_private_again(
    app, tx, read_model, monkeypatch
):
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.0)
    session_id = await create_session(tx, read_model=read_model)
    view = await read_model.session_for_poll(session_id)
    public = True

    async def still_public() -> bool:
        return public

    stream = session_stream(app.state.poll, view, connected_seconds=5, allowed=still_public)
    await asyncio.wait_for(anext(stream), 5)
    await next_event(stream)
    public = False
    started = TrialStarted(
        trial_id=uuid4(), session_id=session_id, name="walk", created_at=utcnow()
    )
    await deliver(tx, started, read_model)

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 5)


async def test_a_long_poll_on_a_session_deleted_meanwhile_answers_404(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    version = (await client.get(status_url(session_id))).headers["etag"].strip('"')
    params = {"wait": "30", "version": version}

    waiting = asyncio.create_task(client.get(status_url(session_id), params=params))
    await asyncio.sleep(0.05)
    await deliver(tx, SessionDeleted(session_id=session_id), read_model)
    answer = await asyncio.wait_for(waiting, 5)

    assert answer.status_code == 404 and "detail" in answer.json()
