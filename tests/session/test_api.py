"""The session service through HTTP, the way the web app and the pipeline call it.

Every request runs in the test's transaction, so the outbox rows it wrote are checked too.
"""

import hashlib
import io
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import httpx
import PIL.Image
import pytest
import zxingcpp
from sqlalchemy import select

from session_service.models import Outbox, Result, Session, Trial, Video
from shared.db import utcnow
from tests.session.conftest import PASSWORD, auth_headers, make_user

SESSION_KEYS = [
    "id", "user", "public", "name", "sessionName", "qrcode", "meta", "trials", "server",
    "subject", "isMono", "created_at", "updated_at", "trashed", "trashed_at", "trials_count",
    "trashed_trials_count",
]  # fmt: skip
TRIAL_KEYS = [
    "id", "session", "name", "status", "videos", "results", "meta", "created_at", "updated_at",
    "server", "is_docker", "hostname", "processed_duration", "processed_count", "git_commit",
    "trashed", "trashed_at",
]  # fmt: skip
VIDEO_KEYS = [
    "id", "trial", "device_id", "video", "video_thumb", "parameters", "created_at", "updated_at",
]  # fmt: skip
RESULT_KEYS = [
    "id", "trial", "tag", "media", "meta", "device_id", "created_at", "updated_at",
]  # fmt: skip
NOT_FOUND = {"detail": "Not found."}


async def events(tx) -> list[Outbox]:
    return list((await tx.scalars(select(Outbox).order_by(Outbox.id))).all())


async def routing_keys(tx) -> list[str]:
    return [row.routing_key for row in await events(tx)]


async def new_session(client, headers) -> dict:
    response = await client.get("/sessions/new/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()[0]


async def record(client, session_id: str, name: str, headers) -> dict:
    response = await client.get(f"/sessions/{session_id}/record/?name={name}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def stop(client, session_id: str, headers) -> dict:
    response = await client.get(f"/sessions/{session_id}/stop/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def assert_pipeline_parsable(url: str) -> None:
    """Reference §0.5: a '?' and no '-' or '_' in the query string (SigV2 style)."""
    assert url.startswith("http") and "?" in url
    query = url[url.index("?") + 1 :]
    assert "-" not in query and "_" not in query
    assert "X-Amz-" not in url


# ── login ───────────────────────────────────────────────────────────────────────────


async def test_login_returns_a_token_that_works_once_the_mailed_code_is_entered(
    client, alice, mailbox
):
    response = await client.post("/login/", json={"username": "alice", "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["token", "user_id", "otp_challenge_sent", "institutional_use"]
    assert re.fullmatch(r"[0-9a-f]{40}", body["token"])
    assert body["user_id"] == alice.id
    assert body["otp_challenge_sent"] is True
    assert body["institutional_use"] == ""
    headers = {"Authorization": f"Token {body['token']}"}
    assert (await client.get("/check-otp-verified/", headers=headers)).json() == {
        "otp_verified": False
    }
    assert (await client.get("/sessions/new/", headers=headers)).status_code == 403
    code = mailbox.code_for(alice.email)
    verified = await client.post("/verify/", json={"otp_token": code}, headers=headers)
    assert verified.status_code == 200
    assert (await client.get("/sessions/new/", headers=headers)).status_code == 200


async def test_a_login_announces_the_new_token_hash_to_the_other_services(client, tx, alice):
    response = await client.post("/login/", json={"username": "alice", "password": PASSWORD})

    [issued] = [row for row in await events(tx) if row.routing_key == "user.token_issued"]
    assert issued.body["data"] == {
        "key_hash": hashlib.sha256(response.json()["token"].encode()).hexdigest(),
        "user_id": alice.id,
    }


async def test_login_accepts_a_form_body_as_the_pipeline_sends_it(client, alice):
    response = await client.post("/login/", data={"username": "alice", "password": PASSWORD})

    assert response.status_code == 200
    assert response.json()["user_id"] == alice.id


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong password"},
        {"username": "nobody", "password": PASSWORD},
        {"username": "ali\u0000ce", "password": PASSWORD},
        {"username": "alice"},
        {"password": PASSWORD},
        {},
    ],
)
async def test_login_with_bad_credentials_is_a_field_error(client, alice, body):
    response = await client.post("/login/", json=body)

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["non_field_errors"]
    assert all(isinstance(message, str) and message for message in errors["non_field_errors"])


async def test_inactive_user_cannot_log_in(client, alice):
    alice.is_active = False

    response = await client.post("/login/", json={"username": "alice", "password": PASSWORD})

    assert response.status_code == 400


async def test_deactivated_user_token_stops_working(client, tx, alice, as_alice):
    alice.is_active = False
    await tx.flush()

    response = await client.get("/sessions/new/", headers=as_alice)

    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid token."}


# ── new session and its QR code ─────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Token " + "0" * 40}, "Invalid token."),
        ({"Authorization": "Bearer abc"}, "Invalid token header. No credentials provided."),
    ],
)
async def test_new_session_needs_a_valid_token(client, tx, headers, detail):
    response = await client.get("/sessions/new/", headers=headers)

    assert response.status_code == 403
    assert response.json() == {"detail": detail}
    assert await events(tx) == []


async def test_new_session_is_a_one_element_list_in_the_original_shape(client, tx, alice, as_alice):
    response = await client.get("/sessions/new/", headers=as_alice)

    assert response.status_code == 200
    [session] = response.json()
    assert list(session) == SESSION_KEYS
    session_id = session["id"]
    assert str(UUID(session_id)) == session_id
    assert session["created_at"].endswith("Z") and session["updated_at"].endswith("Z")
    assert_pipeline_parsable(session["qrcode"])
    assert session == {
        "id": session_id,
        "user": alice.id,
        "public": False,
        "name": session_id.split("-")[0],
        "sessionName": "",
        "qrcode": session["qrcode"],
        "meta": None,
        "trials": [],
        "server": None,
        "subject": None,
        "isMono": False,
        "created_at": session["created_at"],
        "updated_at": session["updated_at"],
        "trashed": False,
        "trashed_at": None,
        "trials_count": 0,
        "trashed_trials_count": 0,
    }


async def test_new_session_emits_session_created(client, tx, alice, as_alice):
    session = await new_session(client, as_alice)

    [row] = await events(tx)
    assert (row.exchange, row.routing_key) == ("events", "session.created")
    assert row.body["type"] == "session.created" and row.body["producer"] == "session"
    assert row.body["data"] == {"session_id": session["id"], "user_id": alice.id, "framerate": 60}


async def test_qr_code_leads_phones_to_the_session_status(client, settings, as_alice):
    session = await new_session(client, as_alice)

    assert_pipeline_parsable(session["qrcode"])
    async with httpx.AsyncClient() as http:
        png = await http.get(session["qrcode"])
    assert png.status_code == 200
    [code] = zxingcpp.read_barcodes(PIL.Image.open(io.BytesIO(png.content)))
    assert code.text == f"{settings.public_url}/sessions/{session['id']}/status/"


async def test_get_qr_gives_a_longer_lived_link_to_the_same_code(client, as_alice):
    session = await new_session(client, as_alice)

    response = await client.get(f"/sessions/{session['id']}/get_qr/", headers=as_alice)

    assert response.status_code == 200
    assert list(response.json()) == ["qr"]
    qr = response.json()["qr"]
    assert urlsplit(qr).path == urlsplit(session["qrcode"]).path
    expires = [int(parse_qs(urlsplit(url).query)["Expires"][0]) for url in (qr, session["qrcode"])]
    assert expires[0] - expires[1] >= 12000 - 3600 - 60  # 12000 s for the QR, 3600 s for media


async def test_get_qr_is_for_the_owner_only(client, as_alice, as_bob):
    session = await new_session(client, as_alice)

    anonymous = await client.get(f"/sessions/{session['id']}/get_qr/")
    other = await client.get(f"/sessions/{session['id']}/get_qr/", headers=as_bob)

    assert anonymous.status_code == 403
    assert (other.status_code, other.json()) == (404, NOT_FOUND)


# ── reading a session ───────────────────────────────────────────────────────────────


async def test_owner_reads_the_session_with_its_trials_in_order(client, as_alice):
    session = await new_session(client, as_alice)
    await record(client, session["id"], "calibration", as_alice)
    await stop(client, session["id"], as_alice)
    await record(client, session["id"], "walk", as_alice)

    response = await client.get(f"/sessions/{session['id']}/", headers=as_alice)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == SESSION_KEYS
    assert [(t["name"], t["status"]) for t in body["trials"]] == [
        ("calibration", "stopped"),
        ("walk", "recording"),
    ]
    assert all(list(t) == TRIAL_KEYS for t in body["trials"])
    assert body["trials_count"] == 1


async def test_anonymous_reader_of_a_private_session_is_sent_to_log_in(client, as_alice):
    session = await new_session(client, as_alice)

    response = await client.get(f"/sessions/{session['id']}/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Sorry, you have to log in to access to this session."}


async def test_another_users_session_is_not_found(client, as_alice, as_bob):
    session = await new_session(client, as_alice)

    response = await client.get(f"/sessions/{session['id']}/", headers=as_bob)

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


async def test_a_public_session_and_its_trials_are_readable_by_anyone(client, tx, as_alice, as_bob):
    session = await new_session(client, as_alice)
    trial = await record(client, session["id"], "walk", as_alice)
    (await tx.get(Session, UUID(session["id"]))).public = True

    for headers in ({}, as_bob):
        read = await client.get(f"/sessions/{session['id']}/", headers=headers)
        assert read.status_code == 200
        assert read.json()["public"] is True
        assert (await client.get(f"/trials/{trial['id']}/", headers=headers)).status_code == 200


async def test_a_public_session_is_still_only_changed_by_its_owner(client, tx, as_alice, as_bob):
    session = await new_session(client, as_alice)
    (await tx.get(Session, UUID(session["id"]))).public = True

    response = await client.get(f"/sessions/{session['id']}/record/?name=walk", headers=as_bob)

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert await routing_keys(tx) == ["session.created"]


async def test_backend_user_reads_every_session(client, tx, as_alice):
    pipeline = await auth_headers(tx, await make_user(tx, "pipeline", groups=["backend"]))
    session = await new_session(client, as_alice)
    trial = await record(client, session["id"], "walk", as_alice)

    assert (await client.get(f"/sessions/{session['id']}/", headers=pipeline)).status_code == 200
    assert (await client.get(f"/trials/{trial['id']}/", headers=pipeline)).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/sessions/undefined/",
        "/sessions/null/",
        "/sessions/12345/",
        f"/sessions/{uuid4()}/",
        "/sessions/undefined/get_qr/",
        "/sessions/undefined/record/?name=walk",
        "/sessions/undefined/stop/",
        f"/sessions/{uuid4()}/stop/",
        "/trials/undefined/",
        f"/trials/{uuid4()}/",
    ],
)
async def test_unknown_or_malformed_ids_are_not_found(client, as_alice, path):
    response = await client.get(path, headers=as_alice)

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


# ── record ──────────────────────────────────────────────────────────────────────────


async def test_record_starts_a_trial_and_tells_the_phones(client, tx, as_alice):
    session = await new_session(client, as_alice)

    trial = await record(client, session["id"], "walk", as_alice)

    assert list(trial) == TRIAL_KEYS
    assert (trial["session"], trial["name"], trial["status"]) == (
        session["id"],
        "walk",
        "recording",
    )
    assert (trial["videos"], trial["results"], trial["meta"]) == ([], [], None)
    assert trial["processed_count"] == 0 and trial["processed_duration"] is None
    rows = await events(tx)
    assert [r.routing_key for r in rows] == ["session.created", "trial.started"]
    started = rows[1].body["data"]
    assert (started["trial_id"], started["session_id"], started["name"]) == (
        trial["id"],
        session["id"],
        "walk",
    )
    assert started["created_at"].replace("+00:00", "Z") == trial["created_at"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?name=",
        "?name=%20%20",
        f"?name={'a' * 65}",
        "?name=../x",
        "?name=a/b",
        "?name=a%5Cb",
        "?name=a%0Ab",
    ],
)
async def test_record_rejects_a_bad_trial_name(client, tx, as_alice, query):
    session = await new_session(client, as_alice)

    response = await client.get(f"/sessions/{session['id']}/record/{query}", headers=as_alice)

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["name"] and all(isinstance(m, str) for m in body["name"])
    assert await tx.scalar(select(Trial.id)) is None
    assert await routing_keys(tx) == ["session.created"]


async def test_record_accepts_a_64_character_name(client, as_alice):
    session = await new_session(client, as_alice)

    trial = await record(client, session["id"], "a" * 64, as_alice)

    assert trial["name"] == "a" * 64


async def test_a_refused_recording_leaves_the_current_one_running(client, tx, as_alice):
    session = await new_session(client, as_alice)
    await record(client, session["id"], "a" * 64, as_alice)
    current = await record(client, session["id"], "b", as_alice)

    # a second "aaa…a" would be named "aaa…a_1": 66 characters
    response = await client.get(
        f"/sessions/{session['id']}/record/?name={'a' * 64}", headers=as_alice
    )

    assert response.status_code == 400 and list(response.json()) == ["name"]
    trials = (await client.get(f"/sessions/{session['id']}/", headers=as_alice)).json()["trials"]
    assert (trials[-1]["id"], trials[-1]["status"]) == (current["id"], "recording")
    assert await routing_keys(tx) == [
        "session.created",
        "trial.started",
        "trial.finished",
        "trial.started",
    ]


async def test_unicode_trial_names_are_kept_byte_for_byte(client, as_alice):
    session = await new_session(client, as_alice)
    name = "跑步 テスト 🏃 [1]"

    trial = await record(client, session["id"], name, as_alice)

    assert trial["name"] == name


async def test_record_needs_the_owner(client, tx, as_alice, as_bob):
    session = await new_session(client, as_alice)

    anonymous = await client.get(f"/sessions/{session['id']}/record/?name=walk")
    other = await client.get(f"/sessions/{session['id']}/record/?name=walk", headers=as_bob)

    assert anonymous.status_code == 403
    assert (other.status_code, other.json()) == (404, NOT_FOUND)
    assert await routing_keys(tx) == ["session.created"]


async def test_a_new_recording_ends_one_that_was_never_stopped(client, tx, as_alice):
    session = await new_session(client, as_alice)
    forgotten = await record(client, session["id"], "walk", as_alice)

    current = await record(client, session["id"], "run", as_alice)

    assert current["status"] == "recording"
    old = (await client.get(f"/trials/{forgotten['id']}/", headers=as_alice)).json()
    assert old["status"] == "error"
    assert old["meta"]["error_msg"]
    assert datetime.fromisoformat(old["updated_at"]) > datetime.fromisoformat(
        forgotten["updated_at"]
    )
    rows = await events(tx)
    assert [r.routing_key for r in rows] == [
        "session.created",
        "trial.started",
        "trial.finished",
        "trial.started",
    ]
    finished = rows[2].body["data"]
    assert (finished["trial_id"], finished["status"]) == (forgotten["id"], "error")
    assert finished["error_msg"] == old["meta"]["error_msg"]


async def test_repeated_trial_names_get_suffixes(client, as_alice):
    session = await new_session(client, as_alice)
    names = []
    for name in ["walk", "walk", "walk", "calibration", "calibration", "walking"]:
        names.append((await record(client, session["id"], name, as_alice))["name"])
        await stop(client, session["id"], as_alice)

    assert names == ["walk", "walk_1", "walk_2", "calibration", "calibration", "walking"]


# ── stop ────────────────────────────────────────────────────────────────────────────


async def test_stop_ends_the_recording_and_tells_the_other_services(client, tx, as_alice):
    session = await new_session(client, as_alice)
    recording = await record(client, session["id"], "walk", as_alice)

    stopped = await stop(client, session["id"], as_alice)

    assert list(stopped) == TRIAL_KEYS
    assert (stopped["id"], stopped["status"]) == (recording["id"], "stopped")
    rows = await events(tx)
    assert [r.routing_key for r in rows][-1] == "trial.stopped"
    assert rows[-1].body["data"] == {"trial_id": recording["id"], "session_id": session["id"]}


async def test_second_stop_leaves_trial_unchanged(client, tx, as_alice):
    session = await new_session(client, as_alice)
    await record(client, session["id"], "walk", as_alice)
    first = await stop(client, session["id"], as_alice)

    second = await stop(client, session["id"], as_alice)

    assert second == first
    assert (await routing_keys(tx)).count("trial.stopped") == 1


async def test_stop_without_any_trial_is_a_conflict(client, tx, as_alice):
    session = await new_session(client, as_alice)

    response = await client.get(f"/sessions/{session['id']}/stop/", headers=as_alice)

    assert response.status_code == 409
    assert list(response.json()) == ["detail"]
    assert await routing_keys(tx) == ["session.created"]


async def test_stop_needs_the_owner(client, tx, as_alice, as_bob):
    session = await new_session(client, as_alice)
    await record(client, session["id"], "walk", as_alice)

    anonymous = await client.get(f"/sessions/{session['id']}/stop/")
    other = await client.get(f"/sessions/{session['id']}/stop/", headers=as_bob)

    assert anonymous.status_code == 403
    assert other.status_code == 404
    assert "trial.stopped" not in await routing_keys(tx)


# ── reading a trial ─────────────────────────────────────────────────────────────────


async def test_trial_shows_its_videos_and_results_with_links_the_pipeline_can_parse(
    client, tx, as_alice
):
    session = await new_session(client, as_alice)
    trial = await record(client, session["id"], "walk", as_alice)
    trial_id, now = UUID(trial["id"]), utcnow()
    device = uuid4()
    tx.add_all(
        [
            Video(
                id=uuid4(),
                trial_id=trial_id,
                device_id=device,
                key=f"{uuid4()}.mov",
                parameters={"model": "iPhone13,3", "max_framerate": 240},
                created_at=now,
                updated_at=now,
            ),
            Video(id=uuid4(), trial_id=trial_id, device_id=uuid4(), created_at=now, updated_at=now),
            Result(
                id=7,
                trial_id=trial_id,
                tag="opensim-model",
                device_id="all",
                key=f"{uuid4()}-LaiArnoldModified2017.osim",
                meta=None,
                created_at=now,
                updated_at=now,
            ),
        ]
    )
    trial_row = await tx.get(Trial, trial_id)
    trial_row.processed_duration = timedelta(minutes=3, seconds=12, microseconds=345678)
    trial_row.hostname = "gpu-1"

    response = await client.get(f"/trials/{trial['id']}/", headers=as_alice)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == TRIAL_KEYS
    assert body["processed_duration"] == "00:03:12.345678"
    assert body["hostname"] == "gpu-1"
    uploaded, waiting = body["videos"]
    assert list(uploaded) == VIDEO_KEYS
    assert (uploaded["trial"], uploaded["device_id"]) == (trial["id"], str(device))
    assert uploaded["parameters"] == {"model": "iPhone13,3", "max_framerate": 240}
    assert uploaded["created_at"].endswith("Z")
    assert_pipeline_parsable(uploaded["video"])
    assert (waiting["video"], waiting["parameters"]) == (None, None)
    [result] = body["results"]
    assert list(result) == RESULT_KEYS
    assert (result["id"], result["tag"], result["device_id"]) == (7, "opensim-model", "all")
    media = result["media"]
    assert_pipeline_parsable(media)
    # opencap-core's way of reading the model's file name out of the URL
    assert media[media.rfind("-") + 1 : media.rfind("?")] == "LaiArnoldModified2017.osim"


async def test_another_users_trial_is_not_found(client, as_alice, as_bob):
    session = await new_session(client, as_alice)
    trial = await record(client, session["id"], "walk", as_alice)

    for headers in ({}, as_bob):
        response = await client.get(f"/trials/{trial['id']}/", headers=headers)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
