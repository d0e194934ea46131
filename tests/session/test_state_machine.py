"""The trial state machine the web app and the pipeline drive (reference §5.1, §5.4;
known-failures 4, 5, 6, 7, 30, 32): record, stop, cancel, the capture window and the
janitor, the other services' verdicts, trial names, the pipeline's PATCH, and the
trial menu (rename, tags, trash).

Every transition is checked with the events it announced: the outbox is an output.
"""

import asyncio
import json
from datetime import timedelta
from uuid import uuid4

import pytest
import structlog
from sqlalchemy import select, update

from session_service import consumers, trials
from session_service.models import Session, Trial, Video
from session_service.trials import end_stuck_recordings, stop_due_captures
from shared.db import utcnow
from shared.events import Camera, CamerasFinal, UploadTimedOut, VideosReceived
from tests.session.conftest import (
    make_session,
    make_trial,
    make_user,
    make_video,
    outbox_rows,
    routing_keys,
)


@pytest.fixture
async def session(tx, alice):
    return await make_session(tx, alice)


async def record(client, session, name: str, headers, status: int = 200) -> dict:
    response = await client.get(
        f"/sessions/{session.id}/record/", params={"name": name}, headers=headers
    )
    assert response.status_code == status, response.text
    return response.json()


async def read_trial(client, trial_id, headers) -> dict:
    response = await client.get(f"/trials/{trial_id}/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def age(tx, trial_id, seconds: float) -> None:
    """Make a trial look `seconds` older than it is."""
    await tx.execute(
        update(Trial)
        .where(Trial.id == trial_id)
        .values(created_at=Trial.created_at - timedelta(seconds=seconds))
    )


# ── record (known-failures 32a, 6a, 7) ──────────────────────────────────────────────


async def test_a_double_click_on_record_returns_the_same_trial(client, tx, session, as_alice):
    first = await record(client, session, "walk", as_alice)

    second = await record(client, session, "walk", as_alice)

    assert second["id"] == first["id"] and second["status"] == "recording"
    assert await routing_keys(tx) == ["trial.started"]


async def test_a_repeat_of_a_suffixed_name_is_still_the_same_trial(client, tx, session, as_alice):
    await make_trial(tx, session, "walk", "done")
    first = await record(client, session, "walk", as_alice)

    second = await record(client, session, "walk", as_alice)

    assert (first["name"], second["id"]) == ("walk_1", first["id"])


async def test_the_same_name_after_the_dedupe_window_is_a_new_trial(
    client, tx, session, as_alice, settings
):
    first = await record(client, session, "walk", as_alice)
    await age(tx, first["id"], settings.record_dedupe_seconds + 1)

    second = await record(client, session, "walk", as_alice)

    assert second["id"] != first["id"] and second["name"] == "walk_1"
    assert (await read_trial(client, first["id"], as_alice))["status"] == "error"


async def test_another_name_ends_the_trial_still_recording(client, tx, session, as_alice):
    walk = await record(client, session, "walk", as_alice)

    run = await record(client, session, "run", as_alice)

    old = await read_trial(client, walk["id"], as_alice)
    assert (old["status"], old["meta"]["error_msg_dev"]) == ("error", "superseded")
    assert "newer trial" in old["meta"]["error_msg"]
    assert run["status"] == "recording"
    rows = await outbox_rows(tx)
    assert [r.routing_key for r in rows] == ["trial.started", "trial.finished", "trial.started"]
    assert rows[1].body["data"] == {
        "trial_id": walk["id"],
        "session_id": str(session.id),
        "status": "error",
        "error_msg": old["meta"]["error_msg"],
    }


async def record_at_once(committed, settings, names: list[str]) -> tuple[list, list[Trial]]:
    """`record` with each name, all at the same time, each in its own transaction; the
    trials it returned, and the session's trials afterwards."""
    async with committed() as tx, tx.begin():
        session = await make_session(tx, await make_user(tx, f"race-{uuid4().hex[:6]}"))

    async def record_one(name: str):
        async with committed() as tx, tx.begin():
            found = await tx.get(Session, session.id)
            return (await trials.record_trial(tx, found, name, settings)).id

    returned = await asyncio.gather(*(record_one(name) for name in names))
    async with committed() as tx:
        stmt = select(Trial).where(Trial.session_id == session.id).order_by(Trial.created_at)
        return returned, list((await tx.scalars(stmt)).all())


async def test_five_records_at_the_same_instant_make_one_trial(committed, settings):
    returned, made = await record_at_once(committed, settings, ["walk"] * 5)

    assert [(t.name, t.status) for t in made] == [("walk", "recording")]
    assert set(returned) == {made[0].id}


async def test_two_names_recorded_at_the_same_instant_leave_one_trial_recording(
    committed, settings
):
    _, made = await record_at_once(committed, settings, ["walk", "run"])

    assert [t.status for t in made] == ["error", "recording"]
    assert made[0].meta["error_msg_dev"] == "superseded"


@pytest.mark.parametrize("name", ["calibration", "neutral"])
async def test_a_capture_records_at_once_and_is_scheduled_to_stop(
    client, tx, session, as_alice, settings, name
):
    trial = await record(client, session, name, as_alice)

    assert trial["status"] == "recording"
    row = await tx.get(Trial, trial["id"])
    assert row.stop_at - row.created_at == timedelta(seconds=settings.capture_window_seconds)
    assert settings.capture_window_seconds >= 2  # at least two polls of a phone


async def test_the_capture_ends_with_the_correlation_id_of_its_record(
    client, tx, session, as_alice
):
    """No request stops a capture (the scheduler does): its stop carries the id of the web
    app's `record`, as does everything after it, to the pipeline and back."""
    given = "web-" + "c" * 120  # as long as a client may send
    trial = await record(client, session, "calibration", {**as_alice, "X-Correlation-ID": given})
    row = await tx.get(Trial, trial["id"])
    row.stop_at = utcnow() - timedelta(seconds=1)

    with structlog.contextvars.bound_contextvars(correlation_id=None):
        assert await trials.stop_due_captures(tx) == 1

    started, stopped = [r for r in await outbox_rows(tx) if r.body["data"].get("trial_id")]
    assert (started.routing_key, stopped.routing_key) == ("trial.started", "trial.stopped")
    assert started.body["correlation_id"] == stopped.body["correlation_id"] == given


async def test_the_job_carries_the_trials_correlation_id_not_the_last_uploads(tx, session):
    trial = await make_trial(tx, session, "walk", "stopped", correlation_id="web-record-1")

    with structlog.contextvars.bound_contextvars(correlation_id="phone-patch-9"):
        await consumers.on_videos_received(
            tx, VideosReceived(trial_id=trial.id, session_id=session.id, videos=[])
        )

    rows = await outbox_rows(tx)
    assert {r.routing_key for r in rows} >= {"trial.queued"}
    assert {r.body["correlation_id"] for r in rows} == {"web-record-1"}


async def test_a_named_trial_has_no_capture_window(client, tx, session, as_alice):
    trial = await record(client, session, "walk", as_alice)

    assert (await tx.get(Trial, trial["id"])).stop_at is None


# ── the capture window and the janitor (known-failures 7, 6b) ───────────────────────


async def test_due_captures_are_stopped_once_and_the_others_left(tx, session):
    past, future = utcnow() - timedelta(seconds=1), utcnow() + timedelta(minutes=1)
    due = await make_trial(tx, session, "calibration", "recording", stop_at=past)
    later = await make_trial(tx, session, "neutral", "recording", stop_at=future)
    walk = await make_trial(tx, session, "walk", "recording")
    stopped = await make_trial(tx, session, "calibration", "stopped", stop_at=past)

    counts = [await stop_due_captures(tx), await stop_due_captures(tx)]

    assert counts == [1, 0]
    statuses = [t.status for t in (due, later, walk, stopped)]
    assert statuses == ["stopped", "recording", "recording", "stopped"]
    [row] = await outbox_rows(tx)
    assert (row.routing_key, row.body["data"]["trial_id"]) == ("trial.stopped", str(due.id))


async def test_the_janitor_ends_recordings_older_than_the_timeout(tx, session, settings):
    timeout = settings.recording_timeout_seconds
    old = utcnow() - timedelta(seconds=timeout + 1)
    stuck = await make_trial(tx, session, "walk", "recording", created_at=old)
    fresh = await make_trial(tx, session, "run", "recording")
    stopped = await make_trial(tx, session, "jump", "stopped", created_at=old)

    counts = [
        await end_stuck_recordings(tx, timeout),
        await end_stuck_recordings(tx, timeout),
    ]

    assert counts == [1, 0]
    assert (stuck.status, fresh.status, stopped.status) == ("error", "recording", "stopped")
    assert stuck.meta == {
        "error_msg": f"The recording was never stopped; it was ended after {timeout} s.",
        "error_msg_dev": "recording timeout",
    }
    [row] = await outbox_rows(tx)
    assert row.routing_key == "trial.finished"
    assert (row.body["data"]["trial_id"], row.body["data"]["status"]) == (str(stuck.id), "error")


async def test_after_the_janitor_the_web_app_sees_the_trial_ended(
    client, tx, session, as_alice, settings
):
    """(The phones' view follows from the `trial.finished` event, in the device service.)"""
    old = utcnow() - timedelta(seconds=settings.recording_timeout_seconds + 1)
    await make_trial(tx, session, "walk", "recording", created_at=old)

    async def trial_statuses() -> list[str]:
        response = await client.get(
            f"/sessions/{session.id}/status/", params={"ret_session": "1"}, headers=as_alice
        )
        return [t["status"] for t in response.json()["session"]["trials"]]

    assert await trial_statuses() == ["recording"]
    await end_stuck_recordings(tx, settings.recording_timeout_seconds)
    assert await trial_statuses() == ["error"]


# ── stop (known-failures 32b, c, e) ─────────────────────────────────────────────────


async def test_a_second_stop_is_a_harmless_repeat(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "recording")
    path = f"/sessions/{session.id}/stop/"

    first = await client.get(path, headers=as_alice)
    second = await client.get(path, headers=as_alice)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()
    assert (second.json()["id"], second.json()["status"]) == (str(trial.id), "stopped")
    assert await routing_keys(tx) == ["trial.stopped"]


@pytest.mark.parametrize("status", ["done", "error", "reprocess"])
async def test_stop_on_a_finished_trial_is_a_conflict_and_changes_nothing(
    client, tx, session, as_alice, status
):
    trial = await make_trial(tx, session, "calibration", status, meta={"calibration": {}})

    response = await client.get(f"/sessions/{session.id}/stop/", headers=as_alice)

    assert response.status_code == 409 and list(response.json()) == ["detail"]
    await tx.refresh(trial)
    assert (trial.status, trial.meta) == (status, {"calibration": {}})
    assert await outbox_rows(tx) == []


async def test_stop_without_a_trial_is_a_conflict(client, tx, session, as_alice):
    response = await client.get(f"/sessions/{session.id}/stop/", headers=as_alice)

    assert response.status_code == 409
    assert await outbox_rows(tx) == []


# ── cancel (known-failures 32c, d) ──────────────────────────────────────────────────


async def cancel(client, session, headers):
    return await client.get(f"/sessions/{session.id}/cancel_trial/", headers=headers)


async def test_cancel_while_recording_fails_the_trial(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "recording")

    response = await cancel(client, session, as_alice)

    assert (response.status_code, response.json()) == (200, {"status": "error"})
    body = await read_trial(client, trial.id, as_alice)
    assert body["status"] == "error"
    assert body["meta"] == {"error_msg": "The trial was cancelled.", "error_msg_dev": "cancelled"}
    [row] = await outbox_rows(tx)
    assert (row.routing_key, row.body["data"]["status"]) == ("trial.finished", "error")


async def test_cancel_while_videos_are_still_uploading_fails_the_trial(
    client, tx, session, as_alice
):
    trial = await make_trial(tx, session, "walk", "stopped")
    await make_video(tx, trial, "in.mov")
    await make_video(tx, trial)

    response = await cancel(client, session, as_alice)

    assert response.json() == {"status": "error"}
    await tx.refresh(trial)
    assert (trial.status, trial.meta["error_msg_dev"]) == ("error", "cancelled")


async def test_cancel_right_after_a_stop_with_no_camera_fails_the_trial(
    client, tx, session, as_alice
):
    """The web app's stop + cancel when no phone joined in 5 s: no slot exists yet."""
    trial = await make_trial(tx, session, "walk", "stopped")

    response = await cancel(client, session, as_alice)

    assert (response.status_code, response.json()) == (200, {"status": "error"})
    await tx.refresh(trial)
    assert (trial.status, trial.meta["error_msg_dev"]) == ("error", "cancelled")
    await consumers.on_cameras_final(
        tx, CamerasFinal(trial_id=trial.id, session_id=session.id, cameras=[])
    )
    await tx.refresh(trial)
    assert trial.meta["error_msg_dev"] == "cancelled"
    assert await routing_keys(tx) == ["trial.finished"]


async def test_cancelling_a_trial_that_already_failed_is_a_harmless_repeat(
    client, tx, session, as_alice
):
    """E.g. the camera set failed the trial between the web app's stop and its cancel."""
    trial = await make_trial(tx, session, "walk", "error")

    response = await cancel(client, session, as_alice)

    assert (response.status_code, response.json()) == (200, {"status": "error"})
    await tx.refresh(trial)
    assert (trial.status, trial.meta) == ("error", None)
    assert await outbox_rows(tx) == []


@pytest.mark.parametrize("status", ["stopped", "processing", "done"])
async def test_a_late_cancel_is_a_conflict_and_changes_nothing(
    client, tx, session, as_alice, status
):
    """Once every video is in (the trial is queued), the trial goes on."""
    trial = await make_trial(tx, session, "walk", status, queued_at=utcnow())
    for _ in range(2):
        await make_video(tx, trial, "in.mov")

    response = await cancel(client, session, as_alice)

    assert response.status_code == 409
    assert response.json()["detail"].startswith("This trial")
    await tx.refresh(trial)
    assert (trial.status, trial.meta) == (status, None)
    assert await outbox_rows(tx) == []


async def test_cancel_without_a_trial_says_so(client, session, as_alice):
    response = await cancel(client, session, as_alice)

    assert (response.status_code, response.json()) == (200, {"status": "noTrials"})


# ── the other services' verdicts (known-failures 4, 5; upload deadline) ─────────────


def cameras(n: int) -> list[Camera]:
    return [Camera(video_id=uuid4(), device_id=uuid4()) for _ in range(n)]


async def test_a_trial_stopped_with_no_camera_fails_at_once(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "stopped")
    event = CamerasFinal(trial_id=trial.id, session_id=session.id, cameras=[])

    await consumers.on_cameras_final(tx, event)
    await consumers.on_cameras_final(tx, event)

    body = await read_trial(client, trial.id, as_alice)
    assert body["status"] == "error"
    assert "No cameras were connected" in body["meta"]["error_msg"]
    assert await routing_keys(tx) == ["trial.finished"]


async def test_a_calibration_seen_by_one_camera_fails_asking_for_two(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "calibration", "stopped")

    await consumers.on_cameras_final(
        tx, CamerasFinal(trial_id=trial.id, session_id=session.id, cameras=cameras(1))
    )

    body = await read_trial(client, trial.id, as_alice)
    assert body["status"] == "error"
    assert "at least two cameras" in body["meta"]["error_msg"]
    calibration = await client.get(f"/sessions/{session.id}/calibration_img/", headers=as_alice)
    assert calibration.json()["status"] == "error"


@pytest.mark.parametrize(("name", "count"), [("calibration", 2), ("walk", 1), ("neutral", 1)])
async def test_enough_cameras_leave_the_trial_waiting_for_its_videos(tx, session, name, count):
    trial = await make_trial(tx, session, name, "stopped")

    await consumers.on_cameras_final(
        tx, CamerasFinal(trial_id=trial.id, session_id=session.id, cameras=cameras(count))
    )

    assert (trial.status, trial.meta) == ("stopped", None)
    assert await outbox_rows(tx) == []


async def calibrated_with(tx, session, n: int) -> None:
    calibration = await make_trial(tx, session, "calibration", "done")
    for _ in range(n):
        await make_video(tx, calibration, "in.mov")


@pytest.mark.parametrize("name", ["walk", "neutral"])
async def test_fewer_cameras_than_the_calibration_fail_the_trial_at_once(
    client, tx, alice, session, as_alice, name
):
    """Known-failures 5b, also in a session chained to the calibrated one."""
    await calibrated_with(tx, session, 3)
    chained = await make_session(
        tx, alice, meta={"sessionWithCalibration": {"id": str(session.id)}}
    )
    trial = await make_trial(tx, chained, name, "stopped")

    await consumers.on_cameras_final(
        tx, CamerasFinal(trial_id=trial.id, session_id=chained.id, cameras=cameras(2))
    )

    body = await read_trial(client, trial.id, as_alice)
    assert body["status"] == "error"
    assert "Only 2 of the 3 calibrated cameras" in body["meta"]["error_msg"]
    n = await client.get(f"/sessions/{chained.id}/get_n_calibrated_cameras/", headers=as_alice)
    assert n.json()["data"] == 3
    assert await routing_keys(tx) == ["trial.finished"]


async def test_every_calibrated_camera_leaves_the_trial_waiting_for_its_videos(tx, session):
    await calibrated_with(tx, session, 3)
    trial = await make_trial(tx, session, "walk", "stopped")

    await consumers.on_cameras_final(
        tx, CamerasFinal(trial_id=trial.id, session_id=session.id, cameras=cameras(3))
    )

    assert (trial.status, trial.meta) == ("stopped", None)
    assert await outbox_rows(tx) == []


async def test_an_upload_deadline_fails_the_trial_naming_the_missing_phones(
    client, tx, session, as_alice
):
    trial = await make_trial(tx, session, "walk", "stopped")
    late = [uuid4(), uuid4()]
    event = UploadTimedOut(trial_id=trial.id, session_id=session.id, missing_device_ids=late)

    await consumers.on_upload_timed_out(tx, event)
    await consumers.on_upload_timed_out(tx, event)

    message = (await read_trial(client, trial.id, as_alice))["meta"]["error_msg"]
    for device in late:
        assert str(device).upper() in message
    assert await routing_keys(tx) == ["trial.finished"]


@pytest.mark.parametrize("status", ["recording", "processing", "done", "error"])
async def test_an_upload_deadline_only_fails_a_trial_waiting_for_uploads(tx, session, status):
    trial = await make_trial(tx, session, "walk", status)

    await consumers.on_upload_timed_out(
        tx, UploadTimedOut(trial_id=trial.id, session_id=session.id, missing_device_ids=[uuid4()])
    )

    assert (trial.status, trial.meta) == (status, None)
    assert await outbox_rows(tx) == []


# ── trial names (known-failures 30) ────────────────────────────────────────────────

GOOD_NAMES = ["跑步 テスト 🏃 [1]", "caf\u0065\u0301", "a" * 64, "walk-2_fast"]
BAD_NAMES = ["", "   ", "a" * 65, "../x", "a/b", "a\\b", "..", "a\tb", "a\u200bb", "x\x7f"]


@pytest.mark.parametrize("name", GOOD_NAMES)
async def test_a_trial_name_is_kept_byte_for_byte(client, session, as_alice, name):
    trial = await record(client, session, name, as_alice)

    assert trial["name"].encode() == name.encode()
    assert (await read_trial(client, trial["id"], as_alice))["name"] == name


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_bad_trial_name_is_refused_everywhere_names_are_given(
    client, tx, session, as_alice, name
):
    trial = await make_trial(tx, session, "walk", "done")
    paths = [
        ("GET", f"/sessions/{session.id}/record/", {"params": {"name": name}}),
        ("POST", f"/trials/{trial.id}/rename/", {"json": {"trialNewName": name}}),
        ("PATCH", f"/trials/{trial.id}/", {"json": {"name": name}}),
    ]

    for method, path, request in paths:
        response = await client.request(method, path, headers=as_alice, **request)

        assert response.status_code == 400, (method, path)
        assert list(response.json()) in (["name"], ["trialNewName"]), response.json()
    assert (await tx.scalars(select(Trial.name))).all() == ["walk"]
    assert await outbox_rows(tx) == []


async def test_record_without_a_name_is_a_field_error(client, tx, session, as_alice):
    response = await client.get(f"/sessions/{session.id}/record/", headers=as_alice)

    assert response.status_code == 400 and list(response.json()) == ["name"]
    assert await outbox_rows(tx) == []


# ── the pipeline's PATCH (reference §6.1, §6.5) ─────────────────────────────────────


async def patch(client, trial, headers, **fields):
    """As python-requests `data=` sends it: a form, JSON fields as JSON text."""
    return await client.patch(f"/trials/{trial.id}/", data=fields, headers=headers)


async def test_the_pipeline_reports_its_run_as_a_form(client, tx, session, as_pipeline):
    trial = await make_trial(tx, session, "walk", "processing")

    response = await patch(
        client,
        trial,
        as_pipeline,
        git_commit="d5a5258",
        hostname="gpu-worker-1",
        processed_duration="0:03:12.345678",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["git_commit"], body["hostname"]) == ("d5a5258", "gpu-worker-1")
    assert body["processed_duration"] == "00:03:12.345678"
    await tx.refresh(trial)
    assert trial.processed_duration == timedelta(minutes=3, seconds=12, microseconds=345678)


async def test_patch_writes_the_other_trial_fields_and_takes_back_its_own_view(
    client, tx, session, as_alice
):
    trial = await make_trial(tx, session, "walk", "done")

    response = await patch(client, trial, as_alice, server="10.0.0.7", is_docker="true")
    body = response.json()
    assert (response.status_code, body["server"], body["is_docker"]) == (200, "10.0.0.7", True)
    response = await client.patch(f"/trials/{trial.id}/", json={"trashed": True}, headers=as_alice)
    assert response.json()["trashed"] is True and response.json()["trashed_at"] is not None

    view = {k: v for k, v in response.json().items() if k not in ("videos", "results")}
    response = await client.put(f"/trials/{trial.id}/", json=view, headers=as_alice)

    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in view if k != "updated_at"} == {
        k: v for k, v in view.items() if k != "updated_at"
    }


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("0:00:07", "00:00:07"),
        ("12:00:00.5", "12:00:00.500000"),
        ("1 day, 2:03:04.500000", "1 02:03:04.500000"),  # str(timedelta) of a long run
        ("2 days, 0:00:00", "2 00:00:00"),
        ("3 01:00:00", "3 01:00:00"),  # Django's own format
    ],
)
async def test_processing_durations_are_read_as_python_and_django_write_them(
    client, tx, session, as_pipeline, sent, shown
):
    trial = await make_trial(tx, session, "walk", "processing")

    response = await patch(client, trial, as_pipeline, processed_duration=sent)

    assert (response.status_code, response.json()["processed_duration"]) == (200, shown)


@pytest.mark.parametrize("sent", ["soon", "1:2", "99999999999:00:00", "inf:00:00"])
async def test_a_duration_that_is_not_one_is_a_field_error(client, tx, session, as_pipeline, sent):
    trial = await make_trial(tx, session, "walk", "processing")

    response = await patch(client, trial, as_pipeline, processed_duration=sent)

    assert (response.status_code, list(response.json())) == (400, ["processed_duration"])
    await tx.refresh(trial)
    assert trial.processed_duration is None


async def test_the_pipeline_finishes_a_trial(client, tx, session, as_pipeline):
    trial = await make_trial(tx, session, "walk", "processing")

    response = await patch(client, trial, as_pipeline, status="done")

    assert response.json()["status"] == "done"
    [row] = await outbox_rows(tx)
    assert row.routing_key == "trial.finished"
    assert row.body["data"] == {
        "trial_id": str(trial.id),
        "session_id": str(session.id),
        "status": "done",
        "error_msg": None,
    }


async def test_a_trial_not_being_processed_cannot_become_done(client, tx, session, as_pipeline):
    trial = await make_trial(tx, session, "walk", "stopped")

    response = await patch(client, trial, as_pipeline, status="done")

    assert response.status_code == 409
    await tx.refresh(trial)
    assert trial.status == "stopped"
    assert await outbox_rows(tx) == []


async def test_the_pipelines_error_keeps_its_message(client, tx, session, as_alice, as_pipeline):
    trial = await make_trial(tx, session, "calibration", "processing")
    meta = {"error_msg": "Checkerboard not found.", "error_msg_dev": "Traceback …"}

    response = await patch(client, trial, as_pipeline, status="error", meta=json.dumps(meta))

    assert response.status_code == 200
    assert (await read_trial(client, trial.id, as_alice))["meta"] == meta
    [row] = [r for r in await outbox_rows(tx) if r.routing_key == "trial.finished"]
    assert (row.body["data"]["status"], row.body["data"]["error_msg"]) == (
        "error",
        "Checkerboard not found.",
    )


@pytest.mark.parametrize("status", ["done", "error"])
async def test_the_owner_may_ask_to_reprocess_a_finished_trial(
    client, tx, session, as_alice, status
):
    trial = await make_trial(tx, session, "walk", status)
    await make_video(tx, trial, "in.mov")

    response = await client.patch(
        f"/trials/{trial.id}/", json={"status": "reprocess"}, headers=as_alice
    )

    assert (response.status_code, response.json()["status"]) == (200, "reprocess")


@pytest.mark.parametrize("status", ["recording", "stopped", "processing"])
async def test_an_unfinished_trial_cannot_be_reprocessed(client, tx, session, as_alice, status):
    trial = await make_trial(tx, session, "walk", status)

    response = await client.patch(
        f"/trials/{trial.id}/", json={"status": "reprocess"}, headers=as_alice
    )

    assert response.status_code == 409
    await tx.refresh(trial)
    assert trial.status == status
    assert await outbox_rows(tx) == []


@pytest.mark.parametrize("status", ["done", "error", "stopped", "processing"])
async def test_the_owner_cannot_set_the_pipelines_statuses(client, tx, session, as_alice, status):
    trial = await make_trial(
        tx, session, "walk", "processing" if status != "processing" else "stopped"
    )
    before = trial.status

    response = await client.patch(f"/trials/{trial.id}/", json={"status": status}, headers=as_alice)

    assert response.status_code == 403
    await tx.refresh(trial)
    assert trial.status == before
    assert await outbox_rows(tx) == []


async def test_the_pipeline_cannot_set_an_unknown_status(client, tx, session, as_pipeline):
    trial = await make_trial(tx, session, "walk", "processing")

    response = await patch(client, trial, as_pipeline, status="recording")

    assert (response.status_code, list(response.json())) == (400, ["status"])


# ── the trial menu: rename, tags, trash (clients.md §1.1) ───────────────────────────


async def test_rename_gives_a_trial_a_new_name(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "done")

    response = await client.post(
        f"/trials/{trial.id}/rename/", json={"trialNewName": "jog"}, headers=as_alice
    )

    assert response.status_code == 200
    assert list(response.json()) == ["data"]
    assert (response.json()["data"]["id"], response.json()["data"]["name"]) == (
        str(trial.id),
        "jog",
    )


@pytest.mark.parametrize(
    ("current", "new"),
    [("calibration", "cal"), ("neutral", "n"), ("walk", "calibration"), ("walk", "neutral")],
)
async def test_calibration_and_neutral_keep_their_names(
    client, tx, session, as_alice, current, new
):
    trial = await make_trial(tx, session, current, "done")

    for method, path, body in [
        ("POST", f"/trials/{trial.id}/rename/", {"trialNewName": new}),
        ("PATCH", f"/trials/{trial.id}/", {"name": new}),
    ]:
        response = await client.request(method, path, json=body, headers=as_alice)

        assert response.status_code == 409, (method, response.text)
    await tx.refresh(trial)
    assert trial.name == current


async def test_tags_are_replaced_and_listed(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "done")
    path = f"/trials/{trial.id}/modifyTags/"

    first = await client.post(
        path, json={"trialNewTags": ["slow", " left ", "slow", ""]}, headers=as_alice
    )
    listed = await client.get(f"/trial-tags/{trial.id}/get_tags_trial/", headers=as_alice)
    await client.post(path, json={"trialNewTags": ["fast"]}, headers=as_alice)
    replaced = await client.get(f"/trial-tags/{trial.id}/get_tags_trial/", headers=as_alice)

    assert first.status_code == 200 and first.json()["data"]["id"] == str(trial.id)
    assert [(t["tag"], t["trial_id"]) for t in listed.json()] == [
        ("left", str(trial.id)),
        ("slow", str(trial.id)),
    ]
    assert all(isinstance(t["id"], int) for t in listed.json())
    assert [t["tag"] for t in replaced.json()] == ["fast"]


@pytest.mark.parametrize("tags", ["slow", [1, 2], None])
async def test_tags_must_be_a_list_of_strings(client, tx, session, as_alice, tags):
    trial = await make_trial(tx, session, "walk", "done")

    response = await client.post(
        f"/trials/{trial.id}/modifyTags/", json={"trialNewTags": tags}, headers=as_alice
    )

    assert (response.status_code, list(response.json())) == (400, ["trialNewTags"])


async def test_trash_restore_and_remove_a_trial(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "done")
    await make_video(tx, trial, "in.mov")

    trashed = (await client.post(f"/trials/{trial.id}/trash/", headers=as_alice)).json()
    restored = (await client.post(f"/trials/{trial.id}/restore/", headers=as_alice)).json()
    removed = await client.post(f"/trials/{trial.id}/permanent_remove/", headers=as_alice)

    assert trashed["trashed"] is True and trashed["trashed_at"].endswith("Z")
    assert (restored["trashed"], restored["trashed_at"]) == (False, None)
    assert (removed.status_code, removed.json()) == (200, {})
    assert (await client.get(f"/trials/{trial.id}/", headers=as_alice)).status_code == 404
    assert await tx.scalar(select(Video.id).where(Video.trial_id == trial.id)) is None


async def test_a_trashed_trial_still_shows_in_its_session(client, tx, session, as_alice):
    trial = await make_trial(tx, session, "walk", "done")
    await client.post(f"/trials/{trial.id}/trash/", headers=as_alice)

    body = (await client.get(f"/sessions/{session.id}/", headers=as_alice)).json()

    assert [(t["id"], t["trashed"]) for t in body["trials"]] == [(str(trial.id), True)]
    assert body["trashed_trials_count"] == 1
