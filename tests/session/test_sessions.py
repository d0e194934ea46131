"""Sessions as the web app, the pipeline and the operators use them (reference §4.1, §5.3,
§5.5, §5.7, §5.8; clients.md §1; known-failures 24, 26, 28).

States that only other services produce (phones' videos, results) are written as rows.
"""

import asyncio
from datetime import timedelta
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from sqlalchemy import select

from session_service.models import Session, Trial
from session_service.sessions import latest_trial, remove_unused_sessions
from shared.db import utcnow
from shared.errors import NotFound
from tests.session.conftest import (
    make_result,
    make_session,
    make_subject,
    make_trial,
    make_user,
    make_video,
    outbox_rows,
)

SESSION_KEYS = [
    "id", "user", "public", "name", "sessionName", "qrcode", "meta", "trials", "server",
    "subject", "isMono", "created_at", "updated_at", "trashed", "trashed_at", "trials_count",
    "trashed_trials_count",
]  # fmt: skip
STATUS_KEYS = [
    "status", "trial", "video", "framerate", "newSessionURL", "n_cameras_connected",
    "n_videos_uploaded",
]  # fmt: skip
PLACEHOLDER = "https://main.d2stl78iuswh3t.amplifyapp.com/images/{}"
HOUR = timedelta(hours=1)


async def new_session(client, headers) -> dict:
    response = await client.get("/sessions/new/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()[0]


async def get(client, path: str, headers, status: int = 200, **params):
    response = await client.get(path, headers=headers, params=params)
    assert response.status_code == status, response.text
    return response.json()


async def updates_of(tx, session_id) -> list[dict]:
    """The `session.updated` events about one session."""
    return [
        row.body["data"]
        for row in await outbox_rows(tx)
        if row.routing_key == "session.updated"
        and row.body["data"]["session_id"] == str(session_id)
    ]


# ── "new subject, same setup" (§5.7, known-failures 26) ─────────────────────────────


async def test_new_subject_chains_a_session_to_the_calibrated_one(client, tx, as_alice):
    root = await new_session(client, as_alice)
    await get(client, f"/sessions/{root['id']}/set_metadata/", as_alice, settings_framerate=120)

    [child] = await get(client, f"/sessions/{root['id']}/new_subject/", as_alice)

    assert list(child) == SESSION_KEYS
    assert child["meta"] == {
        "sessionWithCalibration": {"id": root["id"]},
        "settings": {"framerate": "120"},
    }
    assert child["qrcode"] is None and child["trials"] == []
    old = await get(client, f"/sessions/{root['id']}/", as_alice)
    assert old["meta"]["startNewSession"] == {"id": child["id"]}
    assert old["meta"]["settings"] == {"framerate": "120"}
    [moved] = [e for e in await updates_of(tx, root["id"]) if e["new_session_id"]]
    assert moved["new_session_id"] == child["id"]
    created = [r.body["data"] for r in await outbox_rows(tx) if r.routing_key == "session.created"]
    assert created[-1] == {"session_id": child["id"], "user_id": child["user"], "framerate": 120}


async def test_the_phones_of_the_old_session_are_sent_to_the_new_one(client, settings, as_alice):
    root = await new_session(client, as_alice)
    [child] = await get(client, f"/sessions/{root['id']}/new_subject/", as_alice)

    status = await get(client, f"/sessions/{root['id']}/status/", as_alice, ret_session="true")

    assert status["newSessionURL"] == f"{settings.public_url}/sessions/{child['id']}/status/"


async def test_the_capture_flags_are_set_by_the_owner_read_by_phones_and_carried_over(
    client, as_alice
):
    root = await new_session(client, as_alice)
    flags = {"save_local": "true", "useLidar": True}  # as a form or JSON sends them
    for flag, value in flags.items():
        path = f"/sessions/{root['id']}/{flag}/"
        assert await get(client, path, {}) == {flag: False}
        response = await client.patch(path, json={flag: value}, headers=as_alice)
        assert (response.status_code, response.json()) == (200, {flag: True})

    [child] = await get(client, f"/sessions/{root['id']}/new_subject/", as_alice)

    for flag in flags:
        assert await get(client, f"/sessions/{child['id']}/{flag}/", {}) == {flag: True}


@pytest.mark.parametrize("body", [{}, {"save_local": "perhaps"}, {"save_local": [True]}])
async def test_a_capture_flag_needs_a_boolean(client, as_alice, body):
    root = await new_session(client, as_alice)

    response = await client.patch(
        f"/sessions/{root['id']}/save_local/", json=body, headers=as_alice
    )

    assert (response.status_code, list(response.json())) == (400, ["save_local"])
    assert await get(client, f"/sessions/{root['id']}/save_local/", {}) == {"save_local": False}


async def test_a_chain_of_chains_still_points_at_the_root(client, as_alice):
    root = await new_session(client, as_alice)
    [child] = await get(client, f"/sessions/{root['id']}/new_subject/", as_alice)

    [grandchild] = await get(client, f"/sessions/{child['id']}/new_subject/", as_alice)

    assert grandchild["meta"]["sessionWithCalibration"] == {"id": root["id"]}


async def test_a_chained_session_shows_the_roots_qr_code(client, as_alice):
    root = await new_session(client, as_alice)
    [child] = await get(client, f"/sessions/{root['id']}/new_subject/", as_alice)

    qr = await get(client, f"/sessions/{child['id']}/get_qr/", as_alice)

    assert urlsplit(qr["qr"]).path == urlsplit(root["qrcode"]).path


async def test_a_chained_session_reads_cameras_and_frame_rates_of_the_roots_calibration(
    client, tx, alice, as_alice
):
    root = await make_session(tx, alice)
    calibration = await make_trial(tx, root, "calibration", "done")
    for limit in (240, 120, 240):
        await make_video(tx, calibration, "c.mov", {"max_framerate": limit})
    child = await make_session(tx, alice, meta={"sessionWithCalibration": {"id": str(root.id)}})

    cameras = await get(client, f"/sessions/{child.id}/get_n_calibrated_cameras/", as_alice)
    rates = await get(client, f"/sessions/{child.id}/get_session_settings/", as_alice)

    assert cameras == {"error_message": "", "data": 3}
    assert rates == {"framerates": [60, 120]}


async def test_a_chain_into_another_users_session_is_not_followed(client, tx, alice, as_alice, bob):
    theirs = await make_session(tx, bob, qrcode_key="theirs.png")
    calibration = await make_trial(tx, theirs, "calibration", "done")
    await make_video(tx, calibration, "c.mov", {"max_framerate": 240})
    await make_video(tx, calibration, "c.mov", {"max_framerate": 240})
    mine = await make_session(tx, alice, meta={"sessionWithCalibration": {"id": str(theirs.id)}})

    qr = await get(client, f"/sessions/{mine.id}/get_qr/", as_alice)
    cameras = await get(client, f"/sessions/{mine.id}/get_n_calibrated_cameras/", as_alice)
    rates = await get(client, f"/sessions/{mine.id}/get_session_settings/", as_alice)

    assert qr == {"qr": None}
    assert cameras["data"] == 0
    assert rates == {"framerates": []}


async def test_a_mono_session_has_one_calibrated_camera(client, tx, alice, as_alice):
    session = await make_session(tx, alice, is_mono=True)

    cameras = await get(client, f"/sessions/{session.id}/get_n_calibrated_cameras/", as_alice)

    assert cameras == {"error_message": "", "data": 1}


# ── set_metadata and set_subject (§5.5) ─────────────────────────────────────────────

SETTINGS_QUERY = {
    "settings_framerate": "120",
    "settings_data_sharing": "Share processed data",
    "settings_pose_model": "hrnet",
    "settings_openSimModel": "LaiUhlrich2022",
    "settings_augmenter_model": "v0.3",
    "settings_filter_frequency": "default",
    "settings_scaling_setup": "upright_standing_pose",
    "settings_session_name": "Gait lab",
}


async def test_set_metadata_stores_the_neutral_pages_settings(client, tx, alice, as_alice):
    session = await make_session(tx, alice)

    body = await get(client, f"/sessions/{session.id}/set_metadata/", as_alice, **SETTINGS_QUERY)

    assert body["meta"] == {
        "settings": {
            "framerate": "120",
            "datasharing": "Share processed data",
            "posemodel": "hrnet",
            "openSimModel": "LaiUhlrich2022",
            "augmentermodel": "v0.3",
            "filterfrequency": "default",
            "scalingsetup": "upright_standing_pose",
        },
        "sessionName": "Gait lab",
    }
    assert body["sessionName"] == "Gait lab"
    [update] = await updates_of(tx, session.id)
    assert update["framerate"] == 120


async def test_a_frame_rate_alone_replaces_the_settings(client, tx, alice, as_alice):
    session = await make_session(tx, alice)
    path = f"/sessions/{session.id}/set_metadata/"
    await get(client, path, as_alice, **SETTINGS_QUERY)

    body = await get(client, path, as_alice, settings_framerate="240")

    assert body["meta"]["settings"] == {"framerate": "240"}
    assert body["meta"]["sessionName"] == "Gait lab"
    assert [e["framerate"] for e in await updates_of(tx, session.id)] == [120, 240]


async def test_settings_without_a_frame_rate_are_added_to_the_existing_ones(
    client, tx, alice, as_alice
):
    session = await make_session(tx, alice, meta={"settings": {"framerate": "120"}})

    body = await get(
        client, f"/sessions/{session.id}/set_metadata/", as_alice, settings_pose_model="openpose"
    )

    assert body["meta"]["settings"] == {"framerate": "120", "posemodel": "openpose"}
    assert await updates_of(tx, session.id) == []  # the phones' frame rate did not change


async def test_set_metadata_stores_the_checkerboard_before_calibration(client, tx, alice, as_alice):
    session = await make_session(tx, alice)

    body = await get(
        client,
        f"/sessions/{session.id}/set_metadata/",
        as_alice,
        cb_rows="4",
        cb_cols="5",
        cb_square="35",
        cb_placement="backWall",
    )

    assert body["meta"] == {
        "checkerboard": {"square_size": "35", "rows": "4", "cols": "5", "placement": "backWall"}
    }


async def test_set_metadata_stores_the_legacy_subject_and_mono_flag(client, tx, alice, as_alice):
    session = await make_session(tx, alice)

    body = await get(
        client,
        f"/sessions/{session.id}/set_metadata/",
        as_alice,
        subject_id="S01",
        subject_mass="70",
        subject_height="1.8",
        isMono="True",
    )

    assert body["meta"]["subject"] == {
        "id": "S01",
        "mass": "70",
        "height": "1.8",
        "sex": "",
        "gender": "",
        "datasharing": "",
        "posemodel": "",
    }
    assert body["isMono"] is True
    assert body["name"] == "S01"
    off = await get(client, f"/sessions/{session.id}/set_metadata/", as_alice, isMono="false")
    assert off["isMono"] is False


@pytest.mark.parametrize("framerate", ["abc", "-60", "0", "", "60.5"])
async def test_a_frame_rate_that_is_not_a_positive_whole_number_is_refused(
    client, tx, alice, as_alice, framerate
):
    session = await make_session(tx, alice, meta={"settings": {"framerate": "60"}})

    response = await client.get(
        f"/sessions/{session.id}/set_metadata/",
        params={"settings_framerate": framerate},
        headers=as_alice,
    )

    assert response.status_code == 400
    assert list(response.json()) == ["settings_framerate"]
    await tx.refresh(session)
    assert session.meta == {"settings": {"framerate": "60"}}
    assert await outbox_rows(tx) == []


async def test_set_subject_takes_one_of_the_owners_subjects(client, tx, alice, as_alice):
    session = await make_session(tx, alice)
    subject = await make_subject(tx, alice, "Ada")

    body = await get(
        client, f"/sessions/{session.id}/set_subject/", as_alice, subject_id=subject.id
    )

    assert (body["subject"], body["name"]) == (subject.id, "Ada")


@pytest.mark.parametrize("subject_id", ["bobs", "", "abc", "0", "99999999999999999999"])
async def test_set_subject_with_a_subject_not_the_owners_is_not_found(
    client, tx, alice, as_alice, bob, subject_id
):
    session = await make_session(tx, alice)
    bobs = await make_subject(tx, bob, "Bo")
    subject_id = str(bobs.id) if subject_id == "bobs" else subject_id

    response = await client.get(
        f"/sessions/{session.id}/set_subject/", params={"subject_id": subject_id}, headers=as_alice
    )

    assert response.status_code == 404
    await tx.refresh(session)
    assert session.subject_id is None


# ── calibration_img and neutral_img (§5.3) ──────────────────────────────────────────


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (None, {"status": "error", "img": [PLACEHOLDER.format("camera-calibration.png")]}),
        ("recording", {"status": "recording", "img": []}),
        ("stopped", {"status": "processing", "img": []}),
        ("processing", {"status": "processing", "img": []}),
        ("done", {"status": "done", "img": "None"}),
        ("error", {"status": "error", "img": []}),
    ],
)
async def test_calibration_img_follows_the_calibration(client, tx, alice, as_alice, status, reply):
    session = await make_session(tx, alice)
    if status:
        trial = await make_trial(tx, session, "calibration", status)
        await make_video(tx, trial, "a.mov")
        await make_video(tx, trial)

    body = await get(client, f"/sessions/{session.id}/calibration_img/", as_alice)

    connected, uploaded = (2, 1) if status else (0, 0)
    assert body == reply | {"n_cameras_connected": connected, "n_videos_uploaded": uploaded}


async def test_neutral_img_shows_the_neutral_pose_images(client, tx, alice, as_alice):
    session = await make_session(tx, alice)
    neutral = await make_trial(tx, session, "neutral", "done")
    await make_result(tx, neutral, "neutral-img", "a-neutral_Cam0.png")
    await make_result(tx, neutral, "neutral-img", "b-neutral_Cam1.png")
    await make_result(tx, neutral, "opensim-model", "c-model.osim")

    body = await get(client, f"/sessions/{session.id}/neutral_img/", as_alice)

    assert body["status"] == "done"
    assert [urlsplit(url).path.rsplit("/", 1)[1] for url in body["img"]] == [
        "a-neutral_Cam0.png",
        "b-neutral_Cam1.png",
    ]


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (None, {"status": "error", "img": [PLACEHOLDER.format("neutral_pose.png")]}),
        ("recording", {"status": "recording", "img": []}),  # the subject holds the pose
        ("stopped", {"status": "processing", "img": []}),
        ("done", {"status": "error", "img": []}),  # done a while ago, but no neutral-img
        ("error", {"status": "error", "img": []}),
    ],
)
async def test_neutral_img_until_its_images(client, tx, alice, as_alice, status, reply):
    session = await make_session(tx, alice)
    if status:
        await make_trial(tx, session, "neutral", status, updated_at=utcnow() - HOUR)

    body = await get(client, f"/sessions/{session.id}/neutral_img/", as_alice)

    assert {k: body[k] for k in ("status", "img")} == reply


async def test_a_neutral_just_set_done_waits_for_its_images(client, tx, alice, as_alice):
    """The stock pipeline posts the images (to the results service), then PATCHes the trial
    `done` (here): the images may arrive a moment after the status. Until they do, the web
    app must not be told the neutral failed."""
    session = await make_session(tx, alice)
    neutral = await make_trial(tx, session, "neutral", "done")

    before = await get(client, f"/sessions/{session.id}/neutral_img/", as_alice)
    await make_result(tx, neutral, "neutral-img", "a-neutral_Cam0.png")
    after = await get(client, f"/sessions/{session.id}/neutral_img/", as_alice)

    assert (before["status"], before["img"]) == ("processing", [])
    assert after["status"] == "done" and len(after["img"]) == 1


async def test_the_capture_counts_are_those_of_the_latest_trial_of_any_name(
    client, tx, alice, as_alice
):
    session = await make_session(tx, alice)
    calibration = await make_trial(tx, session, "calibration", "done", created_at=utcnow() - HOUR)
    await make_video(tx, calibration, "a.mov")
    walk = await make_trial(tx, session, "walk", "recording")
    for _ in range(3):
        await make_video(tx, walk)

    body = await get(client, f"/sessions/{session.id}/calibration_img/", as_alice)

    assert body == {
        "status": "done",
        "img": "None",
        "n_cameras_connected": 3,
        "n_videos_uploaded": 0,
    }


# ── get_session_settings: frame rates every phone supports ──────────────────────────


@pytest.mark.parametrize(
    ("limits", "framerates"),
    [
        ([240, 240], [60, 120, 240]),
        ([240, 120], [60, 120]),
        ([60, 240], [60]),
        ([240, None], [60]),  # a phone that did not say: only the default
        ([], []),  # a trial without videos
        (None, []),  # no trial at all
    ],
)
async def test_session_settings_offer_the_frame_rates_of_the_slowest_phone(
    client, tx, alice, as_alice, limits, framerates
):
    session = await make_session(tx, alice)
    if limits is not None:  # an older trial's phones do not count
        old = await make_trial(tx, session, "calibration", "done", created_at=utcnow() - HOUR)
        await make_video(tx, old, "old.mov", {"max_framerate": 30})
        latest = await make_trial(tx, session, "neutral", "done")
        for limit in limits:
            await make_video(tx, latest, "v.mov", {"max_framerate": limit} if limit else {})

    body = await get(client, f"/sessions/{session.id}/get_session_settings/", as_alice)

    assert body == {"framerates": framerates}


# ── the session list: POST /sessions/valid/ (§5.8, known-failures 24) ──────────────


async def listed(client, headers, **body) -> list[str]:
    response = await client.post("/sessions/valid/", json=body, headers=headers)
    assert response.status_code == 200, response.text
    found = response.json()
    return [s["id"] for s in (found["sessions"] if "quantity" in body else found)]


async def test_the_list_shows_own_sessions_with_a_trial_and_nobody_elses(
    client, tx, alice, as_alice, bob
):
    s1 = await make_session(tx, alice, created_at=utcnow() - 3 * HOUR)
    await make_trial(tx, s1, "calibration", "done")
    await make_trial(tx, s1, "walk", "error")
    s2 = await make_session(
        tx, alice, meta={"sessionWithCalibration": {"id": str(s1.id)}}, created_at=utcnow() - HOUR
    )
    await make_trial(tx, s2, "walk", "recording")
    empty = await make_session(tx, alice)
    theirs = await make_session(tx, bob, public=True)
    await make_trial(tx, theirs, "walk", "done")

    ids = await listed(client, as_alice, quantity=40, start=0)

    assert ids == [str(s2.id), str(s1.id)]
    assert await tx.get(Session, empty.id) is not None  # not listed, not deleted


async def test_get_sessions_lists_every_own_session_newest_first(client, tx, alice, as_alice, bob):
    older = await make_session(tx, alice, created_at=utcnow() - HOUR, trashed=True)
    await make_trial(tx, older, "walk", "done")
    empty = await make_session(tx, alice)
    theirs = await make_session(tx, bob, public=True)
    await make_trial(tx, theirs, "walk", "done")

    response = await client.get("/sessions/", headers=as_alice)

    assert response.status_code == 200, response.text
    assert [s["id"] for s in response.json()] == [str(empty.id), str(older.id)]
    assert [len(s["trials"]) for s in response.json()] == [0, 1]


async def test_the_list_has_the_light_session_shape_and_a_total(client, tx, alice, as_alice):
    subject = await make_subject(tx, alice, "Ada")
    session = await make_session(tx, alice, subject_id=subject.id, meta={"sessionName": "Lab"})
    await make_trial(tx, session, "calibration", "done")
    await make_trial(tx, session, "neutral", "error")
    await make_trial(tx, session, "walk", "done", trashed=True, trashed_at=utcnow())

    response = await client.post("/sessions/valid/", json={"quantity": 40}, headers=as_alice)

    body = response.json()
    assert list(body) == ["sessions", "total"] and body["total"] == 1
    [light] = body["sessions"]
    assert list(light) == SESSION_KEYS
    assert light["trials"] == []
    assert (light["name"], light["sessionName"], light["subject"]) == ("Ada", "Lab", subject.id)
    assert (light["trials_count"], light["trashed_trials_count"]) == (1, 1)


async def test_without_quantity_the_list_is_a_bare_list(client, tx, alice, as_alice):
    session = await make_session(tx, alice)
    await make_trial(tx, session)

    response = await client.post("/sessions/valid/", json={}, headers=as_alice)

    assert isinstance(response.json(), list)
    assert [s["id"] for s in response.json()] == [str(session.id)]


async def test_trashed_sessions_show_only_when_asked(client, tx, alice, as_alice):
    now = utcnow()
    kept = await make_session(tx, alice, created_at=now - 3 * HOUR)
    await make_trial(tx, kept)
    trashed = await make_session(tx, alice, trashed=True, trashed_at=now, created_at=now - 2 * HOUR)
    await make_trial(tx, trashed)
    with_trashed_trial = await make_session(tx, alice, created_at=now - HOUR)
    await make_trial(tx, with_trashed_trial, trashed=True, trashed_at=now)

    plain = await listed(client, as_alice)
    everything = await listed(client, as_alice, include_trashed=True)
    bin_ = await listed(client, as_alice, only_trashed=True, quantity=40, start=0)

    assert plain == [str(with_trashed_trial.id), str(kept.id)]
    assert everything == [str(with_trashed_trial.id), str(trashed.id), str(kept.id)]
    assert bin_ == [str(with_trashed_trial.id), str(trashed.id)]


async def test_the_list_of_one_subjects_sessions(client, tx, alice, as_alice, bob):
    ada, eve = await make_subject(tx, alice, "Ada"), await make_subject(tx, alice, "Eve")
    theirs = await make_subject(tx, bob, "Bo")
    for subject in (ada, eve):
        await make_trial(tx, await make_session(tx, alice, subject_id=subject.id))
    adas = (await tx.scalars(select(Session.id).where(Session.subject_id == ada.id))).all()

    mine = await listed(client, as_alice, subject_id=ada.id, quantity=40, start=0)
    other = await client.post("/sessions/valid/", json={"subject_id": theirs.id}, headers=as_alice)

    assert mine == [str(i) for i in adas]
    assert other.status_code == 404


@pytest.fixture
async def three_sessions(tx, alice):
    """Sessions a, b, c, created in that order, whose subject names, trial counts and
    session names sort differently."""
    now = utcnow()
    made = {}
    for key, subject, trials, name, age in [
        ("a", "Carl", 2, "beta", 3),
        ("b", "Anna", 3, "gamma", 2),
        ("c", "Bert", 1, "alpha", 1),
    ]:
        subject_row = await make_subject(tx, alice, subject)
        session = await make_session(
            tx,
            alice,
            subject_id=subject_row.id,
            meta={"sessionName": name},
            created_at=now - age * HOUR,
        )
        for i in range(trials):
            await make_trial(tx, session, f"t{i}", "done")
        made[str(session.id)] = key
    return made


@pytest.mark.parametrize(
    ("sort", "ascending"),
    [
        ("name", "bca"),
        ("trials_count", "cab"),
        ("created_at", "abc"),
        ("sessionName", "cab"),
    ],
)
@pytest.mark.parametrize("descending", [False, True])
async def test_the_list_sorts_by_the_web_apps_columns(
    client, as_alice, three_sessions, sort, ascending, descending
):
    ids = await listed(client, as_alice, sort=[sort], sort_desc=[descending], quantity=40, start=0)

    order = "".join(three_sessions[i] for i in ids)
    assert order == (ascending[::-1] if descending else ascending)


async def test_the_list_is_paged_newest_first_with_the_total(client, tx, alice, as_alice):
    now = utcnow()
    made = []
    for age in range(5):
        session = await make_session(tx, alice, created_at=now - age * HOUR)
        await make_trial(tx, session)
        made.append(str(session.id))

    response = await client.post(
        "/sessions/valid/", json={"start": 1, "quantity": 2}, headers=as_alice
    )

    body = response.json()
    assert [s["id"] for s in body["sessions"]] == made[1:3]
    assert body["total"] == 5


@pytest.mark.parametrize(
    "body", [{"sort": ["owner"]}, {"sort": "name"}, {"sort": [{"a": 1}]}, {"quantity": "x"}]
)
async def test_a_bad_sort_or_page_is_refused(client, tx, alice, as_alice, body):
    await make_trial(tx, await make_session(tx, alice))

    response = await client.post("/sessions/valid/", json=body, headers=as_alice)

    assert response.status_code == 400
    assert len(response.json()) == 1


# ── search, rename, trash, restore, permanent removal, PATCH, DELETE ────────────────


async def test_search_finds_own_sessions_by_name_or_id(client, tx, alice, as_alice, bob):
    lab = await make_session(tx, alice, meta={"sessionName": "Gait Lab"})
    other = await make_session(tx, alice, meta={"sessionName": "Clinic"})
    theirs = await make_session(tx, bob, meta={"sessionName": "gait lab too"}, public=True)

    by_name = await get(client, "/sessions/search_sessions/", as_alice, text="gait")
    by_id = await get(client, "/sessions/search_sessions/", as_alice, text=str(other.id)[:8])

    assert [s["id"] for s in by_name] == [str(lab.id)]
    assert [s["id"] for s in by_id] == [str(other.id)]
    assert list(by_name[0]) == SESSION_KEYS
    assert str(theirs.id) not in str(by_name)


@pytest.mark.parametrize("query", [{}, {"text": ""}])
async def test_search_without_text_is_refused(client, as_alice, query):
    response = await client.get("/sessions/search_sessions/", params=query, headers=as_alice)

    assert (response.status_code, response.json()) == (
        400,
        {"error": "Missing `text` query parameter."},
    )


async def test_rename_sets_the_session_name(client, tx, alice, as_alice):
    session = await make_session(tx, alice, meta={"settings": {"framerate": "120"}})

    response = await client.post(
        f"/sessions/{session.id}/rename/", json={"sessionNewName": " Lab 2 "}, headers=as_alice
    )

    body = response.json()
    assert list(body) == ["message", "data"] and body["message"] == ""
    assert body["data"]["sessionName"] == "Lab 2"
    assert body["data"]["meta"] == {"settings": {"framerate": "120"}, "sessionName": "Lab 2"}


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 257])
async def test_rename_needs_a_name(client, tx, alice, as_alice, name):
    session = await make_session(tx, alice, meta={"sessionName": "Lab"})

    response = await client.post(
        f"/sessions/{session.id}/rename/", json={"sessionNewName": name}, headers=as_alice
    )

    assert response.status_code == 400 and list(response.json()) == ["sessionNewName"]
    await tx.refresh(session)
    assert session.meta == {"sessionName": "Lab"}


async def test_trash_and_restore_a_session(client, tx, alice, as_alice):
    session = await make_session(tx, alice)

    trashed = (await client.post(f"/sessions/{session.id}/trash/", headers=as_alice)).json()
    restored = (await client.post(f"/sessions/{session.id}/restore/", headers=as_alice)).json()

    assert trashed["trashed"] is True and trashed["trashed_at"].endswith("Z")
    assert (restored["trashed"], restored["trashed_at"]) == (False, None)


async def test_permanent_remove_keeps_the_session_and_its_calibrations(client, tx, alice, as_alice):
    session = await make_session(tx, alice)
    calibrations = [await make_trial(tx, session, "calibration", "done") for _ in range(2)]
    for name in ("neutral", "walk", None):
        await make_trial(tx, session, name, "done")

    response = await client.post(f"/sessions/{session.id}/permanent_remove/", headers=as_alice)

    assert (response.status_code, response.json()) == (200, {})
    left = (await tx.scalars(select(Trial.id).where(Trial.session_id == session.id))).all()
    assert sorted(left) == sorted(t.id for t in calibrations)
    assert await tx.get(Session, session.id) is not None


async def test_patch_makes_a_session_public(client, tx, alice, as_alice):
    session = await make_session(tx, alice)

    response = await client.patch(
        f"/sessions/{session.id}/", json={"public": True}, headers=as_alice
    )

    assert response.json()["public"] is True
    assert (await client.get(f"/sessions/{session.id}/")).status_code == 200


async def test_the_pipeline_patches_meta_as_json_text_in_a_form(client, tx, alice, as_pipeline):
    session = await make_session(tx, alice, meta={"settings": {"framerate": "60"}})
    meta = '{"settings": {"framerate": "120", "camerastouse": ["Cam0", "Cam1"]}}'

    response = await client.patch(
        f"/sessions/{session.id}/", data={"meta": meta}, headers=as_pipeline
    )

    assert response.status_code == 200
    assert response.json()["meta"] == {
        "settings": {"framerate": "120", "camerastouse": ["Cam0", "Cam1"]}
    }
    [update] = await updates_of(tx, session.id)
    assert update["framerate"] == 120


@pytest.mark.parametrize("framerate", ["²", "9" * 23, "-120", "fast", 0])
async def test_a_frame_rate_in_patched_meta_that_phones_cannot_use_tells_them_60(
    client, tx, alice, as_pipeline, framerate
):
    session = await make_session(tx, alice, meta={"settings": {"framerate": "120"}})

    response = await client.patch(
        f"/sessions/{session.id}/",
        json={"meta": {"settings": {"framerate": framerate}}},
        headers=as_pipeline,
    )

    assert response.status_code == 200
    [update] = await updates_of(tx, session.id)
    assert update["framerate"] == 60


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]", '"text"'])
async def test_patch_refuses_meta_that_is_not_a_json_object(client, tx, alice, as_alice, meta):
    session = await make_session(tx, alice, meta={"sessionName": "Lab"})

    response = await client.patch(f"/sessions/{session.id}/", data={"meta": meta}, headers=as_alice)

    assert (response.status_code, list(response.json())) == (400, ["meta"])
    await tx.refresh(session)
    assert session.meta == {"sessionName": "Lab"}


async def test_delete_removes_the_session_and_its_trials(client, tx, alice, as_alice):
    session = await make_session(tx, alice)
    trial = await make_trial(tx, session)

    response = await client.delete(f"/sessions/{session.id}/", headers=as_alice)

    assert response.status_code == 204
    assert (await client.get(f"/sessions/{session.id}/", headers=as_alice)).status_code == 404
    assert await tx.scalar(select(Trial.id).where(Trial.id == trial.id)) is None


# ── the web app's status poll (known-failures 23) ───────────────────────────────────


async def test_the_owner_polling_status_gets_the_session_too(client, tx, alice, as_alice):
    session = await make_session(tx, alice, meta={"settings": {"framerate": "120"}})
    trial = await make_trial(tx, session, "walk", "recording")

    body = await get(client, f"/sessions/{session.id}/status/", as_alice, ret_session="true")

    assert list(body) == [*STATUS_KEYS, "session"]
    assert body["trial"] == f"/trials/{trial.id}/"
    assert (body["status"], body["framerate"], body["video"]) == ("ready", 120, None)
    assert body["session"]["trials"][0]["id"] == str(trial.id)


async def test_others_polling_a_public_sessions_status_get_no_session(client, tx, alice, as_bob):
    session = await make_session(tx, alice, public=True)
    await make_trial(tx, session, "calibration", "recording")

    for headers in ({}, as_bob):
        body = await get(client, f"/sessions/{session.id}/status/", headers, ret_session="true")

        assert list(body) == STATUS_KEYS
        assert body["framerate"] == 30


# ── the operators' session status (§5.11) ───────────────────────────────────────────


async def test_backend_sets_a_session_status_and_finds_sessions_by_it(
    client, tx, alice, bob, as_pipeline, as_admin
):
    mine = await make_session(tx, alice)
    theirs = await make_session(tx, bob)
    path = f"/sessions/{mine.id}/set_session_status/"

    response = await client.post(path, json={"status": "archived"}, headers=as_pipeline)
    await client.post(
        f"/sessions/{theirs.id}/set_session_status/", json={"status": "archived"}, headers=as_admin
    )

    assert (response.status_code, response.json()) == (200, {"status": "archived"})
    await tx.refresh(mine)
    assert mine.status == "archived" and mine.status_changed is not None
    found = await client.post(
        "/sessions/get_session_statuses/", json={"status": "archived"}, headers=as_admin
    )
    assert sorted(s["id"] for s in found.json()) == sorted([str(mine.id), str(theirs.id)])
    alices = await client.post(
        "/sessions/get_session_statuses/",
        json={"status": "archived", "username": "alice"},
        headers=as_admin,
    )
    assert alices.json() == [{"id": str(mine.id)}]


async def test_a_user_finds_only_their_own_sessions_by_status(client, tx, alice, as_alice, bob):
    mine = await make_session(tx, alice)
    await make_session(tx, bob)

    found = await client.post(
        "/sessions/get_session_statuses/", json={"status": "init"}, headers=as_alice
    )

    assert found.json() == [{"id": str(mine.id)}]


async def test_session_statuses_filter_by_creation_date(client, tx, alice, as_admin):
    now = utcnow()
    old = await make_session(tx, alice, created_at=now - timedelta(days=10))
    await make_session(tx, alice, created_at=now)
    day = (now - timedelta(days=10)).date().isoformat()

    found = await client.post(
        "/sessions/get_session_statuses/",
        json={"status": "init", "date_range": [day, day]},
        headers=as_admin,
    )

    assert found.json() == [{"id": str(old.id)}]


@pytest.mark.parametrize(
    "body", [{}, {"status": ""}, {"status": "init", "date_range": ["yesterday", "today"]}]
)
async def test_session_statuses_need_a_status_and_real_dates(client, as_admin, body):
    response = await client.post("/sessions/get_session_statuses/", json=body, headers=as_admin)

    assert response.status_code == 400


async def test_the_owner_cannot_set_a_session_status(client, tx, alice, as_alice):
    session = await make_session(tx, alice)

    response = await client.post(
        f"/sessions/{session.id}/set_session_status/", json={"status": "x"}, headers=as_alice
    )

    assert response.status_code == 403
    await tx.refresh(session)
    assert session.status == "init"


# ── cleaning up sessions never used (known-failures 28) ─────────────────────────────


async def test_cleanup_removes_old_unused_sessions_in_batches_and_keeps_the_rest(tx, alice):
    old = utcnow() - timedelta(days=8)
    unused = [await make_session(tx, alice, created_at=old) for _ in range(5)]
    with_trial = await make_session(tx, alice, created_at=old)
    await make_trial(tx, with_trial, "walk", "done")
    root = await make_session(tx, alice, created_at=old)
    child = await make_session(tx, alice, meta={"sessionWithCalibration": {"id": str(root.id)}})
    await make_trial(tx, child)
    recent = await make_session(tx, alice, created_at=utcnow() - timedelta(days=6))

    batches = []
    while removed := await remove_unused_sessions(tx, timedelta(days=7), batch=2):
        batches.append(removed)

    assert batches == [2, 2, 1]
    left = set((await tx.scalars(select(Session.id))).all())
    assert left == {with_trial.id, root.id, child.id, recent.id}
    assert not left & {s.id for s in unused}


async def test_a_record_that_waited_for_a_session_the_cleanup_removed_finds_it_gone(
    committed,
):
    """`record` on an old unused session at the moment the cleanup deletes it: it waits for
    the session's row, then answers 404 (it used to insert a trial of a deleted session)."""
    async with committed() as tx, tx.begin():
        owner = await make_user(tx, f"race-{uuid4().hex[:6]}")
        old = await make_session(tx, owner, created_at=utcnow() - timedelta(days=8))

    async with committed() as cleanup, cleanup.begin():
        assert await remove_unused_sessions(cleanup, timedelta(days=7)) >= 1

        async def record_meanwhile():
            async with committed() as tx, tx.begin():
                await latest_trial(tx, old.id, lock=True)

        waiting = asyncio.create_task(record_meanwhile())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # held up by the cleanup's lock on the row

    with pytest.raises(NotFound):
        await asyncio.wait_for(waiting, 10)


async def test_cleanup_has_nothing_to_do_twice(tx, alice):
    await make_session(tx, alice, created_at=utcnow() - timedelta(days=30))

    first = await remove_unused_sessions(tx, timedelta(days=7))
    second = await remove_unused_sessions(tx, timedelta(days=7))

    assert (first, second) == (1, 0)
