"""Input the database cannot hold is a 400 or 404, never a 500: text with a NUL character
(PostgreSQL text and JSONB refuse it) and ids beyond the integer columns' range."""

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
