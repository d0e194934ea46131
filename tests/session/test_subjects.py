"""Subjects, the people measured, as the web app's subject pages and the pipeline use them
(reference §2.5, §4.5; clients.md §1.1), and the analysis stubs the web app calls."""

import pytest
from sqlalchemy import func, select

from session_service.models import Session, Subject, SubjectTag
from shared.db import utcnow
from tests.session.conftest import make_session, make_subject, outbox_rows

SUBJECT_KEYS = [
    "id", "name", "weight", "height", "age", "birth_year", "gender", "gender_display",
    "sex_at_birth", "sex_display", "characteristics", "subject_tags", "created_at",
    "updated_at", "trashed", "trashed_at",
]  # fmt: skip
YEAR_RANGE = ["Ensure this value is between 1900 and today's year."]


def new_subject(**changes) -> dict:
    """What the web app's new-subject dialog sends."""
    return {
        "id": "",
        "name": "Ada",
        "weight": 70,
        "height": 1.8,
        "birth_year": 1990,
        "sex_at_birth": "woman",
        "gender": "non-binary",
        "subject_tags": ["healthy", "runner"],
        "characteristics": "left knee",
    } | changes


async def subjects_page(client, headers, **params) -> dict:
    response = await client.get("/subjects/", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def names(page: dict) -> list[str]:
    return [s["name"] for s in page["subjects"]]


# ── create ──────────────────────────────────────────────────────────────────────────


async def test_a_new_subject_answers_the_subject_shape(client, as_alice):
    response = await client.post("/subjects/", json=new_subject(), headers=as_alice)

    assert response.status_code == 201
    body = response.json()
    assert list(body) == SUBJECT_KEYS
    assert body | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0,
        "name": "Ada",
        "weight": 70.0,
        "height": 1.8,
        "age": utcnow().year - 1990,
        "birth_year": 1990,
        "gender": "non-binary",
        "gender_display": "Non-Binary/Non-Conforming",
        "sex_at_birth": "woman",
        "sex_display": "Female",
        "characteristics": "left knee",
        "subject_tags": ["healthy", "runner"],
        "created_at": "",
        "updated_at": "",
        "trashed": False,
        "trashed_at": None,
    }
    assert isinstance(body["id"], int) and body["created_at"].endswith("Z")


async def test_a_put_without_a_measure_or_birth_year_keeps_the_stored_ones(
    client, tx, alice, as_alice
):
    subject = await make_subject(tx, alice, "Ada", weight=61.5, height=1.7, birth_year=1990)

    response = await client.put(
        f"/subjects/{subject.id}/", json={"name": "Ada L."}, headers=as_alice
    )

    body = response.json()
    assert (response.status_code, body["name"]) == (200, "Ada L.")
    assert (body["weight"], body["height"], body["birth_year"]) == (61.5, 1.7, 1990)


async def test_a_subject_needs_only_a_name_and_gets_the_originals_defaults(client, as_alice):
    response = await client.post("/subjects/", json={"name": "Bo"}, headers=as_alice)

    assert response.status_code == 201
    body = response.json()
    assert (body["gender_display"], body["sex_display"], body["subject_tags"]) == (None, None, [])
    assert (body["weight"], body["height"], body["characteristics"]) == (0.0, 0.0, "")
    assert (body["birth_year"], body["age"]) == (utcnow().year, 0)
    page = await subjects_page(client, as_alice, simple="true")
    assert page["subjects"][0]["display_name"] == f"Bo (0.0 Kg, 0.0 m, {utcnow().year})"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"birth_year": 1899}, {"birth_year": YEAR_RANGE}),
        ({"birth_year": utcnow().year + 1}, {"birth_year": YEAR_RANGE}),
        ({"birth_year": "nineteen"}, {"birth_year": ["A valid integer is required."]}),
        ({"gender": "robot"}, {"gender": ['"robot" is not a valid choice.']}),
        ({"sex_at_birth": "female"}, {"sex_at_birth": ['"female" is not a valid choice.']}),
        ({"weight": -1}, {"weight": ["Ensure this value is greater than or equal to 0."]}),
        ({"height": "tall"}, {"height": ["A valid number is required."]}),
        ({"height": 10**400}, {"height": ["A valid number is required."]}),
        ({"weight": "Infinity"}, {"weight": ["A valid number is required."]}),
        ({"birth_year": 10**400}, {"birth_year": ["A valid integer is required."]}),
        ({"birth_year": 1990.7}, {"birth_year": ["A valid integer is required."]}),
        ({"birth_year": True}, {"birth_year": ["A valid integer is required."]}),
        ({"name": ""}, {"name": ["This field is required."]}),
        ({"name": None}, {"name": ["This field is required."]}),
        ({"name": "x" * 129}, {"name": ["Ensure this field has no more than 128 characters."]}),
        ({"subject_tags": "healthy"}, {"subject_tags": ["Expected a list of strings."]}),
    ],
)
async def test_an_invalid_subject_is_refused_with_field_errors(
    client, tx, as_alice, changes, errors
):
    response = await client.post("/subjects/", json=new_subject(**changes), headers=as_alice)

    assert (response.status_code, response.json()) == (400, errors)
    assert await tx.scalar(select(func.count()).select_from(Subject)) == 0
    assert await tx.scalar(select(func.count()).select_from(SubjectTag)) == 0


async def test_a_missing_name_is_refused(client, tx, as_alice):
    body = new_subject()
    del body["name"]

    response = await client.post("/subjects/", json=body, headers=as_alice)

    assert (response.status_code, response.json()) == (400, {"name": ["This field is required."]})


# ── the subject list ────────────────────────────────────────────────────────────────


@pytest.fixture
async def three_subjects(tx, alice, bob):
    """Alice's Ada, Bert, Carl (and a trashed Dora); one of Bob's."""
    made = {}
    for name, weight, sex, gender in [
        ("Carl", 60.0, "man", "man"),
        ("Ada", 80.0, "woman", "woman"),
        ("Bert", 70.0, "intersect", "transgender"),
    ]:
        made[name] = await make_subject(
            tx,
            alice,
            name,
            weight=weight,
            height=1.7,
            birth_year=1990,
            sex_at_birth=sex,
            gender=gender,
        )
    made["Dora"] = await make_subject(tx, alice, "Dora", trashed=True, trashed_at=utcnow())
    await make_subject(tx, bob, "Bob's")
    return made


async def test_the_simple_list_gives_display_names(client, as_alice, three_subjects):
    page = await subjects_page(client, as_alice, simple="true", start=0, quantity=40)

    assert page == {
        "subjects": [
            {"id": three_subjects[name].id, "display_name": f"{name} ({w} Kg, 1.7 m, 1990)"}
            for name, w in [("Ada", 80.0), ("Bert", 70.0), ("Carl", 60.0)]
        ],
        "total": 4,
    }


async def test_the_full_list_has_the_subject_shape(client, as_alice, three_subjects):
    page = await subjects_page(client, as_alice)

    assert names(page) == ["Ada", "Bert", "Carl"]
    assert all(list(s) == SUBJECT_KEYS for s in page["subjects"])
    assert page["subjects"][0]["sex_display"] == "Female"


async def test_search_finds_subjects_by_part_of_the_name(client, as_alice, three_subjects):
    page = await subjects_page(client, as_alice, search="ER", simple="true")

    assert [s["id"] for s in page["subjects"]] == [three_subjects["Bert"].id]
    assert page["total"] == 4  # the count of all the user's subjects, as the original


async def test_trashed_subjects_show_only_when_asked(client, as_alice, three_subjects):
    page = await subjects_page(client, as_alice, include_trashed="true")

    assert names(page) == ["Ada", "Bert", "Carl", "Dora"]
    assert page["subjects"][-1]["trashed"] is True


@pytest.mark.parametrize(
    ("sort", "descending", "order"),
    [
        ("name", "false", ["Ada", "Bert", "Carl"]),
        ("name", "true", ["Carl", "Bert", "Ada"]),
        ("weight", "true", ["Ada", "Bert", "Carl"]),
        ("sex_display", "false", ["Bert", "Carl", "Ada"]),  # intersect, man, woman
        ("gender_display", "true", ["Ada", "Bert", "Carl"]),  # woman, transgender, man
    ],
)
async def test_the_list_sorts_by_one_column(
    client, as_alice, three_subjects, sort, descending, order
):
    params = {"sort[]": sort, "sort_desc[]": descending, "start": 0, "quantity": 40}

    page = await subjects_page(client, as_alice, **params)

    assert names(page) == order


async def test_the_list_is_paged_and_minus_one_means_all(client, as_alice, three_subjects):
    second = await subjects_page(client, as_alice, start=1, quantity=1)
    everything = await subjects_page(client, as_alice, start=0, quantity=-1)

    assert (names(second), second["total"]) == (["Bert"], 4)
    assert names(everything) == ["Ada", "Bert", "Carl"]


@pytest.mark.parametrize("params", [{"quantity": "all"}, {"start": "first"}])
async def test_a_page_that_is_not_a_number_is_refused(client, as_alice, params):
    response = await client.get("/subjects/", params=params, headers=as_alice)

    assert response.status_code == 400


# ── read, change, trash, remove ─────────────────────────────────────────────────────


async def test_put_replaces_the_subject_and_its_tags(client, tx, alice, as_alice):
    created = (await client.post("/subjects/", json=new_subject(), headers=as_alice)).json()
    edited = created | {
        "name": "Ada L",
        "weight": 72.5,
        "gender": "woman",
        "subject_tags": ["rehab"],
    }

    response = await client.put(f"/subjects/{created['id']}/", json=edited, headers=as_alice)

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["weight"], body["gender_display"]) == ("Ada L", 72.5, "Woman")
    assert body["subject_tags"] == ["rehab"]
    read = (await client.get(f"/subjects/{created['id']}/", headers=as_alice)).json()
    assert read == body


async def test_patch_changes_only_the_given_fields(client, as_alice):
    created = (await client.post("/subjects/", json=new_subject(), headers=as_alice)).json()

    response = await client.patch(
        f"/subjects/{created['id']}/", json={"weight": 80}, headers=as_alice
    )

    body = response.json()
    assert body["weight"] == 80.0
    unchanged = ("name", "height", "birth_year", "gender", "sex_at_birth", "subject_tags")
    assert {k: body[k] for k in unchanged} == {k: created[k] for k in unchanged}


async def test_an_invalid_change_leaves_the_subject_as_it_was(client, tx, alice, as_alice):
    subject = await make_subject(tx, alice, "Ada", birth_year=1990)

    response = await client.patch(
        f"/subjects/{subject.id}/", json={"birth_year": 1800}, headers=as_alice
    )

    assert (response.status_code, response.json()) == (400, {"birth_year": YEAR_RANGE})
    await tx.refresh(subject)
    assert subject.birth_year == 1990


@pytest.mark.parametrize("subject_id", ["theirs", "0", "abc", "99999999999999999999"])
async def test_a_subject_not_the_callers_is_not_found(client, tx, as_alice, bob, subject_id):
    theirs = await make_subject(tx, bob, "Bo")
    subject_id = str(theirs.id) if subject_id == "theirs" else subject_id

    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"json": {"name": "Mine now"}} if method in ("PUT", "PATCH") else {}
        response = await client.request(
            method, f"/subjects/{subject_id}/", headers=as_alice, **body
        )

        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    await tx.refresh(theirs)
    assert theirs.name == "Bo"


async def test_the_pipeline_reads_any_subject(client, tx, bob, as_pipeline):
    theirs = await make_subject(tx, bob, "Bo", weight=80.0, height=1.9)

    response = await client.get(f"/subjects/{theirs.id}/", headers=as_pipeline)

    assert response.status_code == 200
    assert (response.json()["weight"], response.json()["height"]) == (80.0, 1.9)


async def test_trash_and_restore_a_subject(client, tx, alice, as_alice):
    subject = await make_subject(tx, alice, "Ada")

    trashed = (await client.post(f"/subjects/{subject.id}/trash/", headers=as_alice)).json()
    restored = (await client.post(f"/subjects/{subject.id}/restore/", headers=as_alice)).json()

    assert list(trashed) == SUBJECT_KEYS
    assert trashed["trashed"] is True and trashed["trashed_at"].endswith("Z")
    assert (restored["trashed"], restored["trashed_at"]) == (False, None)


@pytest.mark.parametrize(
    ("method", "path", "answer"),
    [("POST", "/subjects/{}/permanent_remove/", (200, {})), ("DELETE", "/subjects/{}/", (204,))],
)
async def test_removing_a_subject_keeps_its_sessions_without_a_subject(
    client, tx, alice, as_alice, method, path, answer
):
    subject = await make_subject(tx, alice, "Ada")
    session = await make_session(tx, alice, subject_id=subject.id)

    response = await client.request(method, path.format(subject.id), headers=as_alice)

    assert (response.status_code, *([response.json()] if response.content else [])) == answer
    assert await tx.scalar(select(Subject.id).where(Subject.id == subject.id)) is None
    subject_of_session = select(Session.subject_id).where(Session.id == session.id)
    assert await tx.scalar(subject_of_session.execution_options(populate_existing=True)) is None
    assert (await client.get(f"/sessions/{session.id}/", headers=as_alice)).json()[
        "subject"
    ] is None


# ── subject tags ────────────────────────────────────────────────────────────────────


async def test_a_subjects_tags_are_listed(client, tx, alice, as_alice):
    created = (await client.post("/subjects/", json=new_subject(), headers=as_alice)).json()

    response = await client.get(
        f"/subject-tags/{created['id']}/get_tags_subject/", headers=as_alice
    )

    assert [(t["tag"], t["subject_id"]) for t in response.json()] == [
        ("healthy", created["id"]),
        ("runner", created["id"]),
    ]
    assert all(isinstance(t["id"], int) for t in response.json())


@pytest.mark.parametrize("subject_id", ["missing", "theirs", "abc"])
async def test_tags_of_a_missing_subject_are_a_404_with_a_bare_string(
    client, tx, as_alice, bob, subject_id
):
    theirs = await make_subject(tx, bob, "Bo")
    subject_id = {"missing": str(theirs.id + 1000), "theirs": str(theirs.id)}.get(
        subject_id, subject_id
    )

    response = await client.get(f"/subject-tags/{subject_id}/get_tags_subject/", headers=as_alice)

    assert response.status_code == 404
    assert isinstance(response.json(), str) and response.json()


async def test_a_tag_is_added_to_an_own_subject_only(client, tx, alice, as_alice, bob):
    mine, theirs = await make_subject(tx, alice, "Ada"), await make_subject(tx, bob, "Bo")

    added = await client.post(
        "/subject-tags/", json={"tag": " tall ", "subject": mine.id}, headers=as_alice
    )
    refused = await client.post(
        "/subject-tags/", json={"tag": "x", "subject": theirs.id}, headers=as_alice
    )
    listed = await client.get("/subject-tags/", headers=as_alice)

    assert (added.status_code, added.json()) == (201, {"tag": "tall", "subject": mine.id})
    assert refused.status_code == 404
    assert listed.json() == [{"tag": "tall", "subject": mine.id}]


# ── the analysis features this backend does not offer (clients.md §5) ───────────────


@pytest.mark.parametrize(
    ("path", "empty"),
    [
        ("/analysis-functions/", []),
        ("/analysis-results/pending/", {}),
        ("/analysis-results/states/", {}),
        ("/analysis-dashboards/", []),
    ],
)
async def test_analysis_pages_get_empty_answers(client, tx, as_alice, path, empty):
    response = await client.get(path, headers=as_alice)

    assert (response.status_code, response.json()) == (200, empty)
    assert await outbox_rows(tx) == []
