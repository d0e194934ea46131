"""Input the database cannot hold is a 400 or 404, never a 500: text with a NUL character
(PostgreSQL text and JSONB refuse it) and ids beyond the integer columns' range."""

from uuid import uuid4

import pytest
from sqlalchemy import func, select

from session_service.models import Subject, SubjectTag, TrialTag
from tests.session.conftest import make_session, make_subject, make_trial, outbox_rows

NUL = "a\x00b"


@pytest.fixture
async def objects(tx, alice):
    session = await make_session(tx, alice, meta={"sessionName": "Lab"})
    trial = await make_trial(tx, session, "walk", "done")
    subject = await make_subject(tx, alice, "Ada")
    return {"session": session.id, "trial": trial.id, "subject": subject.id}


CALLS = [
    ("GET", "/sessions/search_sessions/", {"params": {"text": NUL}}),
    ("GET", "/sessions/{session}/set_metadata/", {"params": {"settings_session_name": NUL}}),
    ("GET", "/sessions/{session}/set_metadata/", {"params": {"cb_placement": NUL}}),
    ("POST", "/sessions/{session}/rename/", {"json": {"sessionNewName": NUL}}),
    ("PATCH", "/sessions/{session}/", {"data": {"meta": '{"note": "a\\u0000b"}'}}),
    ("POST", "/sessions/get_session_statuses/", {"json": {"status": NUL}}),
    ("POST", "/sessions/{session}/calibration/", {"json": {"Cam0": NUL}}),
    ("PATCH", "/trials/{trial}/", {"data": {"hostname": NUL}}),
    ("PATCH", "/trials/{trial}/", {"data": {"meta": '{"error_msg": "a\\u0000b"}'}}),
    ("POST", "/trials/{trial}/modifyTags/", {"json": {"trialNewTags": [NUL]}}),
    ("POST", "/trial-tags/", {"json": {"tag": NUL, "trial": "{trial}"}}),
    ("GET", "/subjects/", {"params": {"search": NUL}}),
    ("POST", "/subjects/", {"json": {"name": NUL}}),
    ("POST", "/subjects/", {"json": {"name": "Bo", "characteristics": NUL}}),
    ("POST", "/subjects/", {"json": {"name": "Bo", "subject_tags": [NUL]}}),
    ("POST", "/subjects/", {"files": {"name": (None, NUL)}}),
    ("PATCH", "/subjects/{subject}/", {"json": {"characteristics": NUL}}),
    ("POST", "/subject-tags/", {"json": {"tag": NUL, "subject": "{subject}"}}),
    ("POST", "/update_profile/", {"json": {"institution": NUL}}),
]


def filled(value, ids: dict):
    """`value` with the `{session}`, `{trial}`, `{subject}` placeholders filled in."""
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "\\u" not in value else value
    if isinstance(value, dict):
        return {k: filled(v, ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(filled(v, ids) for v in value)
    return value


@pytest.mark.parametrize(
    ("method", "path", "request_"),
    CALLS,
    ids=[f"{method} {path} {list(r.values())[0]}" for method, path, r in CALLS],
)
async def test_text_with_a_nul_character_is_refused(
    client, tx, as_alice, objects, method, path, request_
):
    counts = [
        await tx.scalar(select(func.count()).select_from(t))
        for t in (Subject, SubjectTag, TrialTag)
    ]

    response = await client.request(
        method, filled(path, objects), headers=as_alice, **filled(request_, objects)
    )

    assert response.status_code == 400, response.text
    assert [
        await tx.scalar(select(func.count()).select_from(t))
        for t in (Subject, SubjectTag, TrialTag)
    ] == counts
    assert await outbox_rows(tx) == []


@pytest.mark.parametrize(
    ("method", "path", "request_"),
    [
        ("GET", "/subjects/99999999999999999999/", {}),
        ("GET", "/subject-tags/99999999999999999999/get_tags_subject/", {}),
        ("GET", "/sessions/{session}/set_subject/", {"params": {"subject_id": str(2**31)}}),
        ("POST", "/sessions/valid/", {"json": {"subject_id": 2**63, "quantity": 5}}),
        ("POST", "/subject-tags/", {"json": {"tag": "x", "subject": -(2**40)}}),
    ],
)
async def test_an_id_out_of_range_is_not_found(client, as_alice, objects, method, path, request_):
    response = await client.request(
        method, filled(path, objects), headers=as_alice, **filled(request_, objects)
    )

    assert response.status_code == 404


# Values that were once taken as something else (cut, coerced) or failed further on.
REFUSED = [
    ("POST", "/update_profile/", {"json": {"newsletter": "notbool"}}, "newsletter"),
    ("POST", "/update_profile/", {"json": {"newsletter": [1]}}, "newsletter"),
    ("PATCH", "/trials/{trial}/", {"json": {"git_commit": "g" * 65}}, "git_commit"),
    (
        "PATCH",
        "/trials/{trial}/",
        {"json": {"processed_duration": "-1 00:00:00"}},
        "processed_duration",
    ),
    (
        "PATCH",
        "/trials/{trial}/",
        {"json": {"processed_duration": "0:-5:00"}},
        "processed_duration",
    ),
    ("PATCH", "/trials/{trial}/", {"content": b'{"meta": {"a": NaN}}'}, "detail"),
    ("PATCH", "/trials/{trial}/", {"json": {"server": "not-an-ip"}}, "server"),
    ("PATCH", "/trials/{trial}/", {"data": {"is_docker": "maybe"}}, "is_docker"),
    ("PATCH", "/trials/{trial}/", {"json": {"trashed": "notbool"}}, "trashed"),
    ("PATCH", "/trials/{trial}/", {"json": {"processed_count": "x"}}, "processed_count"),
    ("PATCH", "/trials/{trial}/", {"json": {"session": str(uuid4())}}, "session"),
    ("PATCH", "/sessions/{session}/", {"content": b'{"meta": {"a": 1e400}}'}, "detail"),
    ("PATCH", "/sessions/{session}/", {"data": {"meta": '{"a": Infinity}'}}, "meta"),
    (
        "GET",
        "/sessions/{session}/set_metadata/",
        {"params": {"settings_framerate": "9" * 23}},
        "settings_framerate",
    ),
    (
        "GET",
        "/sessions/{session}/set_metadata/",
        {"params": {"settings_framerate": "²"}},
        "settings_framerate",
    ),
    ("POST", "/sessions/{session}/calibration/", {"json": {"Cam0": "x"}}, "detail"),
    ("POST", "/sessions/{session}/calibration/", {"json": {"camera": 1}}, "detail"),
]


@pytest.mark.parametrize(
    ("method", "path", "request_", "field"),
    REFUSED,
    ids=[f"{method} {path} {list(r.values())[0]!r:.40}" for method, path, r, _ in REFUSED],
)
async def test_a_value_out_of_its_kind_is_refused(
    client, tx, as_alice, objects, method, path, request_, field
):
    headers = (
        {**as_alice, "content-type": "application/json"} if "content" in request_ else as_alice
    )

    response = await client.request(method, filled(path, objects), headers=headers, **request_)

    assert response.status_code == 400, response.text
    assert list(response.json()) == [field]
    assert await outbox_rows(tx) == []
