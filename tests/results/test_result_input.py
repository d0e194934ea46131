"""What `POST /results/` accepts besides the stock pipeline's form: JSON bodies, `meta` as
JSON text, a multipart `media` file; and the clear 400 every bad input gets (nothing is
stored then)."""

import httpx
import pytest
from sqlalchemy import func, select

from results_service.models import Result
from tests.results.conftest import session_of, stored, trial_in


@pytest.fixture
async def trials(tx, handlers) -> dict:
    return {"squats": await trial_in(tx, handlers, await session_of(tx, handlers), "squats")}


async def stored_rows(tx) -> int:
    return await tx.scalar(select(func.count()).select_from(Result))


async def test_the_same_media_posted_as_another_result_is_refused(
    client, tx, storage, backend, trials
):
    key = stored(storage, "a.trc")
    form = {
        "trial": str(trials["squats"]),
        "tag": "marker_data",
        "device_id": "all",
        "media_url": key,
    }
    assert (await client.post("/results/", data=form, headers=backend)).status_code == 201

    response = await client.post("/results/", data={**form, "tag": "ik_results"}, headers=backend)

    assert response.status_code == 400
    assert response.json() == {"media_url": ["This media is already attached to another result."]}


async def test_json_body_with_meta_is_accepted(client, storage, backend, trials):
    key = stored(storage, "facts.json")
    body = {
        "trial": str(trials["squats"]),
        "tag": "video_facts",
        "media_url": key,
        "meta": {"n": 1},
    }

    response = await client.post("/results/", json=body, headers=backend)

    assert response.status_code == 201
    assert (response.json()["meta"], response.json()["device_id"]) == ({"n": 1}, None)


async def test_form_meta_as_json_text_is_parsed(client, storage, backend, trials):
    key = stored(storage, "facts.json")
    form = {"trial": str(trials["squats"]), "tag": "x", "media_url": key, "meta": '{"fps": 60}'}

    response = await client.post("/results/", data=form, headers=backend)

    assert response.json()["meta"] == {"fps": 60}


async def test_a_multipart_media_file_is_stored_under_a_pipeline_style_key(
    client, storage, backend, trials
):
    form = {"trial": str(trials["squats"]), "tag": "ik_results", "device_id": "all"}
    files = {"media": ("squats.mot", b"nRows=1\nendheader\n", "text/plain")}

    response = await client.post("/results/", data=form, files=files, headers=backend)

    assert response.status_code == 201, response.text
    url = response.json()["media"]
    assert url[url.rfind("-") + 1 : url.rfind("?")] == "squats.mot"
    async with httpx.AsyncClient() as s3:
        assert (await s3.get(url)).content == b"nRows=1\nendheader\n"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"trial": None}, "trial", "This field is required."),
        ({"trial": "not-a-uuid"}, "trial", '"not-a-uuid" is not a valid UUID.'),
        ({"media_url": None}, "media_url", "This field is required."),
        ({"media_url": "never-uploaded.trc"}, "media_url", "No stored object has this key."),
        ({"tag": "t" * 33}, "tag", "Ensure this field has no more than 32 characters."),
        ({"device_id": "d" * 37}, "device_id", "Ensure this field has no more than 36 characters."),
        ({"device_id": "Cam\x000"}, "device_id", "Null characters are not allowed."),
        ({"meta": "{not json"}, "meta", "Value must be valid JSON."),
    ],
)
async def test_bad_input_gets_a_field_error_and_stores_nothing(
    client, tx, storage, backend, trials, change, field, message
):
    form = {"trial": str(trials["squats"]), "tag": "marker_data", "device_id": "all"}
    form["media_url"] = stored(storage, "a.trc")
    form = {k: v for k, v in {**form, **change}.items() if v is not None}

    response = await client.post("/results/", data=form, headers=backend)

    assert response.status_code == 400
    assert response.json() == {field: [message]}
    assert await stored_rows(tx) == 0


async def test_a_trial_this_service_never_heard_of_is_refused(client, storage, backend):
    trial_id = "7a000000-0000-4000-8000-0000000000ff"
    form = {"trial": trial_id, "tag": "x", "media_url": stored(storage, "a.trc")}

    response = await client.post("/results/", data=form, headers=backend)

    assert response.status_code == 400
    assert response.json() == {"trial": [f'Invalid pk "{trial_id}" - object does not exist.']}


@pytest.mark.parametrize("body", ["[1, 2]", "{broken"])
async def test_a_json_body_that_is_not_an_object_is_a_400(client, backend, body):
    headers = {**backend, "Content-Type": "application/json"}

    response = await client.post("/results/", content=body, headers=headers)

    assert response.status_code == 400 and "detail" in response.json()
