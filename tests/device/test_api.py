"""The phones' status poll, `GET /sessions/{id}/status/` (reference: opencap-api §5.2,
clients.md §2.4 and known-failures 27)."""

from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from device_service.models import Outbox, VideoSlot
from shared.events import (
    ResultsRecorded,
    SessionCreated,
    SessionDeleted,
    SessionUpdated,
    TrialDeleted,
    VideoUploaded,
)
from tests.device.conftest import (
    PUBLIC_URL,
    create_session,
    deliver,
    start_trial,
    stop_trial,
)

KEYS = [
    "status",
    "trial",
    "video",
    "framerate",
    "newSessionURL",
    "n_cameras_connected",
    "n_videos_uploaded",
]


async def poll(client, session_id, device_id=None):
    params = {"device_id": str(device_id)} if device_id is not None else {}
    return await client.get(f"/sessions/{session_id}/status/", params=params)


async def outbox(tx, routing_key: str) -> list[dict]:
    rows = await tx.scalars(select(Outbox).where(Outbox.routing_key == routing_key))
    return [row.body for row in rows]


async def test_unknown_session_is_404_with_a_detail(client):
    response = await poll(client, uuid4(), uuid4())

    assert response.status_code == 404
    assert list(response.json()) == ["detail"]


async def test_session_id_that_is_not_a_uuid_is_404(client):
    response = await client.get("/sessions/null/status/")

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.parametrize("device_id", ["not-a-uuid", "", "E621E1F8-C36C-495A"])
async def test_device_id_that_is_not_a_uuid_is_400_on_the_field(client, tx, read_model, device_id):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)

    response = await client.get(f"/sessions/{session_id}/status/?device_id={device_id}")

    assert response.status_code == 400
    assert list(response.json()) == ["device_id"]
    assert isinstance(response.json()["device_id"], list)
    assert (await tx.scalars(select(VideoSlot))).all() == []


async def test_status_has_exactly_the_seven_keys_in_order_with_their_json_types(
    client, tx, read_model
):
    session_id = await create_session(tx, framerate=120, read_model=read_model)
    trial_id = await start_trial(tx, session_id, read_model=read_model)

    body = (await poll(client, session_id, uuid4())).json()

    assert list(body) == KEYS
    assert body["status"] == "recording"
    assert body["trial"] == f"/trials/{trial_id}/"
    assert body["video"].startswith("/videos/") and body["video"].endswith("/")
    UUID(body["video"].split("/")[2])
    assert body["framerate"] == 120 and type(body["framerate"]) is int
    assert body["newSessionURL"] is None
    assert (body["n_cameras_connected"], body["n_videos_uploaded"]) == (1, 0)


async def test_session_before_any_trial_is_ready_with_no_trial_or_video(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)

    response = await poll(client, session_id, uuid4())

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "trial": None,
        "video": None,
        "framerate": 60,
        "newSessionURL": None,
        "n_cameras_connected": 0,
        "n_videos_uploaded": 0,
    }
    assert await outbox(tx, "device.joined") == []


async def test_phone_polling_during_recording_gets_its_slot_and_joins(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    trial_id = await start_trial(tx, session_id, read_model=read_model)
    device_id = uuid4()

    body = (await poll(client, session_id, device_id)).json()

    [slot] = (await tx.scalars(select(VideoSlot))).all()
    assert body["status"] == "recording"
    assert body["video"] == f"/videos/{slot.id}/"
    assert (slot.trial_id, slot.device_id) == (trial_id, device_id)
    [joined] = await outbox(tx, "device.joined")
    assert joined["data"] == {
        "video_id": str(slot.id),
        "trial_id": str(trial_id),
        "session_id": str(session_id),
        "device_id": str(device_id),
    }


async def test_repeated_polls_of_one_phone_keep_one_slot_and_one_event(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)
    device_id = uuid4()

    videos = {(await poll(client, session_id, device_id)).json()["video"] for _ in range(3)}

    assert len(videos) == 1
    assert len((await tx.scalars(select(VideoSlot))).all()) == 1
    assert len(await outbox(tx, "device.joined")) == 1


async def test_two_phones_are_two_cameras(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)
    first, second = uuid4(), uuid4()

    one = (await poll(client, session_id, first)).json()
    two = (await poll(client, session_id, second)).json()
    web = (await poll(client, session_id)).json()

    assert one["video"] != two["video"]
    assert two["n_cameras_connected"] == 2 and web["n_cameras_connected"] == 2
    assert len(await outbox(tx, "device.joined")) == 2


async def test_uppercase_ios_device_id_registers_the_same_phone(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)
    device_id = uuid4()

    upper = await poll(client, session_id, str(device_id).upper())
    lower = await poll(client, session_id, str(device_id))

    assert upper.status_code == 200 and upper.json()["status"] == "recording"
    assert upper.json()["video"] == lower.json()["video"]
    [joined] = await outbox(tx, "device.joined")
    assert joined["data"]["device_id"] == str(device_id)


async def test_caller_without_device_id_during_recording_sees_ready_and_joins_nothing(
    client, tx, read_model
):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)

    body = (await poll(client, session_id)).json()

    assert (body["status"], body["video"], body["n_cameras_connected"]) == ("ready", None, 0)
    assert await outbox(tx, "device.joined") == []


async def test_phone_arriving_after_the_stop_gets_no_slot(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    trial_id = await start_trial(tx, session_id, read_model=read_model)
    recording = uuid4()
    await poll(client, session_id, recording)
    await stop_trial(tx, session_id, trial_id, read_model)

    late = (await poll(client, session_id, uuid4())).json()
    early = (await poll(client, session_id, recording)).json()

    assert (late["status"], late["video"], late["n_cameras_connected"]) == ("uploading", None, 1)
    assert (early["status"], early["video"]) == ("uploading", None)
    assert len(await outbox(tx, "device.joined")) == 1


async def test_status_follows_uploads_then_results(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    trial_id = await start_trial(tx, session_id, read_model=read_model)
    device_id = uuid4()
    video_id = UUID((await poll(client, session_id, device_id)).json()["video"].split("/")[2])
    await stop_trial(tx, session_id, trial_id, read_model)
    uploading = (await poll(client, session_id, device_id)).json()
    uploaded = VideoUploaded(
        video_id=video_id,
        trial_id=trial_id,
        session_id=session_id,
        device_id=device_id,
        key="k.mov",
        size=10,
    )
    await deliver(tx, uploaded, read_model)
    processing = (await poll(client, session_id, device_id)).json()
    await deliver(tx, ResultsRecorded(trial_id=trial_id, results=[]), read_model)
    ready = (await poll(client, session_id, device_id)).json()

    assert (uploading["status"], uploading["n_videos_uploaded"]) == ("uploading", 0)
    assert (processing["status"], processing["n_videos_uploaded"]) == ("processing", 1)
    assert ready["status"] == "ready"


async def test_calibration_trial_records_at_30_fps(client, tx, read_model):
    session_id = await create_session(tx, framerate=240, read_model=read_model)
    await start_trial(tx, session_id, name="calibration", read_model=read_model)

    body = (await poll(client, session_id, uuid4())).json()

    assert body["framerate"] == 30


async def test_latest_trial_is_the_one_shown(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, name="calibration", age=60, read_model=read_model)
    latest = await start_trial(tx, session_id, name="walk", read_model=read_model)

    body = (await poll(client, session_id)).json()

    assert body["trial"] == f"/trials/{latest}/"


async def test_new_session_url_is_absolute_once_the_session_is_chained(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    successor = uuid4()
    await deliver(tx, SessionUpdated(session_id=session_id, new_session_id=successor), read_model)

    body = (await poll(client, session_id, uuid4())).json()

    assert body["newSessionURL"] == f"{PUBLIC_URL}/sessions/{successor}/status/"


async def test_a_session_heard_of_after_a_miss_is_answered_at_once(client, tx, read_model):
    session_id = uuid4()
    missed = await poll(client, session_id, uuid4())
    await deliver(tx, SessionCreated(session_id=session_id, user_id=1), read_model)

    found = await poll(client, session_id, uuid4())

    assert (missed.status_code, found.status_code) == (404, 200)


async def test_a_registration_without_the_database_is_a_503_never_recording_without_video(
    client, tx, read_model
):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)

    def no_database():
        raise ConnectionError("database away")

    read_model.transaction = no_database
    response = await poll(client, session_id, uuid4())
    web = await poll(client, session_id)

    assert response.status_code == 503 and "detail" in response.json()
    assert web.status_code == 200 and web.json()["status"] == "ready"


async def test_the_web_apps_poll_never_shows_a_phones_video(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)
    for _ in range(2):
        assert (await poll(client, session_id, uuid4())).json()["video"] is not None

    for headers in ({}, {"Origin": "http://localhost:3000"}):
        web = await client.get(f"/sessions/{session_id}/status/", headers=headers)

        assert (web.json()["video"], web.json()["n_cameras_connected"]) == (None, 2)


# ── deletions ──


async def test_a_deleted_trial_disappears_from_the_status_answer(client, tx, read_model):
    session_id = await create_session(tx, read_model=read_model)
    earlier = await start_trial(tx, session_id, name="neutral", age=60, read_model=read_model)
    await stop_trial(tx, session_id, earlier, read_model)
    trial_id = await start_trial(tx, session_id, read_model=read_model)
    phone = uuid4()
    assert (await poll(client, session_id, phone)).json()["trial"] == f"/trials/{trial_id}/"

    await deliver(tx, TrialDeleted(trial_id=trial_id, session_id=session_id), read_model)
    mine, web = (
        (await poll(client, session_id, phone)).json(),
        (await poll(client, session_id)).json(),
    )

    assert mine["trial"] == web["trial"] == f"/trials/{earlier}/"
    assert (mine["status"], mine["video"], mine["n_cameras_connected"]) == ("ready", None, 0)
    assert (await tx.scalars(select(VideoSlot))).all() == []


async def test_a_deleted_session_answers_404_everywhere(client, tx, read_model, as_owner):
    session_id = await create_session(tx, read_model=read_model)
    await start_trial(tx, session_id, read_model=read_model)
    phone = uuid4()
    assert (await poll(client, session_id, phone)).status_code == 200

    await deliver(tx, SessionDeleted(session_id=session_id), read_model)

    for response in (
        await poll(client, session_id, phone),
        await poll(client, session_id),
        await client.get(f"/sessions/{session_id}/status/", headers={"Origin": "http://x"}),
        await client.get(f"/sessions/{session_id}/devices/", headers=as_owner),
        await client.get(f"/sessions/{session_id}/status/stream/", headers=as_owner),
    ):
        assert response.status_code == 404 and "detail" in response.json()


async def test_a_replica_that_never_heard_of_the_deletion_answers_404_from_the_database(
    client, tx, read_model
):
    session_id = await create_session(tx)  # the replica hears none of these events
    trial_id = await start_trial(tx, session_id)
    kept = await create_session(tx)
    deleted_trial = await start_trial(tx, kept)
    await deliver(tx, SessionDeleted(session_id=session_id))
    await deliver(tx, TrialDeleted(trial_id=deleted_trial, session_id=kept))

    gone = await poll(client, session_id, uuid4())
    still = await poll(client, kept, uuid4())

    assert gone.status_code == 404
    assert (still.status_code, still.json()["trial"]) == (200, None)
    assert await outbox(tx, "device.joined") == []
    assert trial_id not in read_model.trial_sessions
