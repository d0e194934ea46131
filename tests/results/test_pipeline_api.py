"""The stock pipeline (opencap-core) over HTTP, unchanged: it uploads each file through a
presign (key `<uuid4>-<fileName>`), then `POST /results/` with a form, and deletes a tag's
results before posting it again (reference §6.2, §6.3). Every change is announced to the
session service's trial view (`results.recorded`, `results.removed`)."""

from collections import Counter
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from results_service.models import Result
from shared.events import ResultsRecorded, ResultsRemoved
from tests.results.conftest import (
    OWNER_ID,
    caller,
    outbox_events,
    session_of,
    stored,
    trial_in,
)

CAMERAS = ("Cam0", "Cam1")


@pytest.fixture
async def trials(tx, handlers) -> dict[str, UUID]:
    session_id = await session_of(tx, handlers)
    return {
        name: await trial_in(tx, handlers, session_id, name, minute)
        for minute, name in enumerate(("calibration", "neutral", "squats"))
    }


class Pipeline:
    """What opencap-core's `postFileToTrial` and `deleteResult` do."""

    def __init__(self, client: httpx.AsyncClient, storage, headers: dict):
        self.client, self.storage, self.headers = client, storage, headers

    async def post_file(self, trial_id, tag, device_id, file_name) -> httpx.Response:
        key = stored(self.storage, file_name, f"{tag} {device_id} {file_name}".encode())
        data = {"trial": str(trial_id), "tag": tag, "device_id": device_id, "media_url": key}
        form = {name: value for name, value in data.items() if value is not None}
        return await self.client.post("/results/", data=form, headers=self.headers)

    async def delete_tag(self, trial_id, tag) -> None:
        listed = await self.client.get(
            "/results/", params={"trial": str(trial_id)}, headers=self.headers
        )
        for result in listed.json():
            if result["tag"] == tag:
                response = await self.client.delete(
                    f"/results/{result['id']}/", headers=self.headers
                )
                assert response.status_code == 204

    async def write(self, trial_id, tag, files: list[tuple[str | None, str]]) -> None:
        await self.delete_tag(trial_id, tag)
        for device_id, file_name in files:
            response = await self.post_file(trial_id, tag, device_id, file_name)
            assert response.status_code == 201, response.text


def calibration_outputs() -> dict[str, list]:
    return {
        "calibration-img": [
            (device, f"extrinsicCalib{'_altSoln' if alt else ''}_{cam}.jpg")
            for cam in CAMERAS
            for alt, device in ((False, cam), (True, f"{cam}_altSoln"))
        ],
        "camera_mapping": [("all", "mappingCamDevice.pickle")],
        "calibration_parameters_options": [
            (f"{cam}_soln{n}", f"cameraIntrinsicsExtrinsics_soln{n}.pickle")
            for cam in CAMERAS
            for n in (0, 1)
        ],
    }


def motion_outputs(trial_id: UUID, neutral: bool) -> dict[str, list]:
    outputs = {
        "video-sync": [(None, f"{trial_id}_syncdWithMocap_{cam}.mp4") for cam in CAMERAS],
        "visualizerTransforms-json": [(None, f"{trial_id}.json")],
        "main_settings": [("all", f"Settings_{trial_id}.yaml")],
        "pose_pickle": [(cam, f"{cam}_keypoints_pp.pkl") for cam in CAMERAS],
        "marker_data": [("all", f"{trial_id}.trc")],
    }
    if neutral:
        outputs["neutral-img"] = [(None, "neutralImage_Cam0.png")]
        outputs["opensim_model"] = [("all", "LaiUhlrich2022_scaled.osim")]
        outputs["session_metadata"] = [("all", "sessionMetadata.yaml")]
    else:
        outputs["ik_results"] = [("all", f"{trial_id}.mot")]
    return outputs


async def run_stock_pipeline(pipeline: Pipeline, trials: dict[str, UUID]) -> None:
    for tag, files in calibration_outputs().items():
        await pipeline.write(trials["calibration"], tag, files)
    calibration_parameters = [(cam, "cameraIntrinsicsExtrinsics.pickle") for cam in CAMERAS]
    await pipeline.write(trials["calibration"], "calibration_parameters", calibration_parameters)
    for tag, files in motion_outputs(trials["neutral"], neutral=True).items():
        await pipeline.write(trials["neutral"], tag, files)
    for tag, files in motion_outputs(trials["squats"], neutral=False).items():
        await pipeline.write(trials["squats"], tag, files)


async def rows(tx, **filters) -> list[Result]:
    stmt = select(Result).filter_by(**filters).order_by(Result.id)
    return list((await tx.scalars(stmt)).all())


async def test_the_stock_pipeline_posts_every_result_of_a_session(
    client, tx, storage, backend, trials
):
    await run_stock_pipeline(Pipeline(client, storage, backend), trials)

    calibration = await rows(tx, trial_id=trials["calibration"])
    assert Counter(r.tag for r in calibration) == {
        "calibration-img": 4,
        "camera_mapping": 1,
        "calibration_parameters_options": 4,
        "calibration_parameters": 2,
    }
    squats = await rows(tx, trial_id=trials["squats"])
    assert {(r.tag, r.device_id) for r in squats} >= {("ik_results", "all"), ("video-sync", None)}
    events = await outbox_events(tx)
    assert len(events) == len(await rows(tx)) and all(
        isinstance(e, ResultsRecorded) and (e.complete, e.replace) == (False, False) for e in events
    )


async def test_posting_a_tag_again_after_deleting_it_leaves_one_result_per_camera(
    client, tx, storage, backend, trials
):
    pipeline, squats = Pipeline(client, storage, backend), trials["squats"]
    for tag, files in motion_outputs(squats, neutral=False).items():
        await pipeline.write(squats, tag, files)
    removed_ids = [r.id for r in await rows(tx, trial_id=squats, tag="pose_pickle")]
    others = [r.id for r in await rows(tx, trial_id=squats) if r.tag != "pose_pickle"]

    await pipeline.write(squats, "pose_pickle", motion_outputs(squats, False)["pose_pickle"])

    pose = await rows(tx, trial_id=squats, tag="pose_pickle")
    assert sorted(r.device_id for r in pose) == list(CAMERAS)
    assert not {r.id for r in pose} & set(removed_ids)
    assert [r.id for r in await rows(tx, trial_id=squats) if r.tag != "pose_pickle"] == others
    removals = [e for e in await outbox_events(tx) if isinstance(e, ResultsRemoved)]
    assert [e.result_ids[0] for e in removals] == removed_ids
    assert {e.trial_id for e in removals} == {squats}


async def test_created_result_has_the_original_shape_and_a_parsable_media_url(
    client, storage, backend, trials
):
    response = await Pipeline(client, storage, backend).post_file(
        trials["neutral"], "opensim_model", "all", "LaiUhlrich2022_scaled.osim"
    )

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "id", "trial", "tag", "media", "meta", "device_id", "created_at", "updated_at"
    ]  # fmt: skip
    assert (body["trial"], body["tag"], body["device_id"]) == (
        str(trials["neutral"]), "opensim_model", "all"
    )  # fmt: skip
    url = body["media"]
    assert url[url.rfind("-") + 1 : url.rfind("?")] == "LaiUhlrich2022_scaled.osim"
    assert "Signature=" in url and "X-Amz-" not in url
    assert body["created_at"].endswith("Z")
    async with httpx.AsyncClient() as s3:
        assert (await s3.get(url)).content == b"opensim_model all LaiUhlrich2022_scaled.osim"


async def test_a_retried_post_answers_the_same_result_and_stores_one(
    client, tx, storage, backend, trials
):
    key = stored(storage, "Cam0_keypoints_pp.pkl")
    form = {
        "trial": str(trials["squats"]),
        "tag": "pose_pickle",
        "device_id": "Cam0",
        "media_url": key,
    }

    first = await client.post("/results/", data=form, headers=backend)
    second = await client.post("/results/", data=form, headers=backend)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] == second.json()["id"]
    assert len(await rows(tx, key=key)) == 1
    assert len(await outbox_events(tx)) == 1


async def test_owner_reads_the_results_of_their_trials_only(
    client, tx, handlers, storage, backend, trials
):
    pipeline = Pipeline(client, storage, backend)
    posted = (await pipeline.post_file(trials["squats"], "ik_results", "all", "s.mot")).json()
    owner = await caller(tx, handlers, OWNER_ID)

    listed = await client.get("/results/", headers=owner)
    one = await client.get(f"/results/{posted['id']}/", headers=owner)

    assert [r["id"] for r in listed.json()] == [posted["id"]]
    assert one.status_code == 200 and one.json()["media"].startswith("http")
