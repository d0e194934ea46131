"""Session archives end to end: the web app asks (`async-download`), the worker streams the
zip into S3, the web app polls `on-ready` until it gets the link; the zip has exactly the
original's layout (reference §8.1, test_zipsession)."""

import io
import pickle
import zipfile
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select

from results_service import archives
from results_service.config import Settings
from results_service.models import Archive
from shared.events import ProcessingCompleted, ResultFile, TrialMetaUpdated
from shared.storage import Storage
from tests.results.conftest import (
    OTHER_ID,
    OWNER_ID,
    caller,
    deliver,
    in_savepoints,
    session_of,
    stored,
    trial_in,
    uploaded_video,
)

CAMERAS = ("Cam0", "Cam1")
CAMERA_DEVICES = ("Cam0", "Cam0_altSoln", "Cam1", "Cam1_altSoln")
PHONES = (uuid4(), uuid4())


@pytest.fixture
def geometry_settings(settings: Settings, storage: Storage) -> Settings:
    prefix = f"geometries-{uuid4()}/LaiArnold/"
    for name in ("femur_r.vtp", "pelvis.vtp"):
        storage.put_bytes(prefix + name, b"<VTKFile/>", "application/xml")
    return settings.model_copy(update={"archive_geometry_prefix": prefix})


async def completed(tx, handlers, storage, trial_id, files) -> dict[tuple, str]:
    """The pipeline's job for the trial reported these (tag, device, file name), each
    stored with distinct content; their keys by (tag, device, file name)."""
    keys = {f: stored(storage, f[2], f"{trial_id} {f}".encode()) for f in files}
    results = [
        ResultFile(tag=tag, device_id=device, key=keys[tag, device, name])
        for tag, device, name in files
    ]
    event = ProcessingCompleted(job_id=uuid4(), trial_id=trial_id, worker="w", results=results)
    await deliver(tx, handlers, event)
    return keys


def object_bytes(storage: Storage, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def calibration_files() -> list[tuple]:
    images = [("calibration-img", d, f"extrinsicCalib_{d}.jpg") for d in CAMERA_DEVICES]
    options = [
        (
            "calibration_parameters_options",
            f"{c}_soln{n}",
            f"cameraIntrinsicsExtrinsics_soln{n}.pickle",
        )
        for c in CAMERAS
        for n in (0, 1)
    ]
    return [*images, ("camera_mapping", "all", "mappingCamDevice.pickle"), *options]


def motion_files(trial_name: str, neutral: bool) -> list[tuple]:
    files = [
        *[("video-sync", None, f"{trial_name}_syncdWithMocap_{c}.mp4") for c in CAMERAS],
        *[("pose_pickle", c, f"{c}_keypoints_pp.pkl") for c in CAMERAS],
        ("marker_data", "all", f"{trial_name}.trc"),
        ("main_settings", "all", f"Settings_{trial_name}.yaml"),
        ("visualizerTransforms-json", None, f"{trial_name}.json"),
    ]
    if neutral:
        return [
            *files,
            ("neutral-img", None, "neutralImage.png"),
            ("opensim_model", "all", "LaiUhlrich2022_scaled.osim"),
            ("session_metadata", "all", "sessionMetadata.yaml"),
        ]
    return [*files, ("ik_results", "all", f"{trial_name}.mot")]


async def recorded_trial(tx, handlers, storage, session_id, name, minute, files) -> dict:
    trial_id = await trial_in(tx, handlers, session_id, name, minute)
    for phone in PHONES:
        await uploaded_video(tx, handlers, storage, session_id, trial_id, phone)
    return await completed(tx, handlers, storage, trial_id, files)


@pytest.fixture
async def session(tx, handlers, storage) -> tuple[UUID, dict]:
    """A session with a calibration (the pipeline chose Cam0 solution 0, Cam1 solution 1),
    a neutral and a dynamic trial named "my squats", each recorded by two phones."""
    session_id = await session_of(tx, handlers, OWNER_ID)
    calibration_id = await trial_in(tx, handlers, session_id, "calibration", 0)
    keys = await completed(tx, handlers, storage, calibration_id, calibration_files())
    choice = TrialMetaUpdated(
        trial_id=calibration_id, session_id=session_id, meta={"calibration": {"Cam0": 0, "Cam1": 1}}
    )
    await deliver(tx, handlers, choice)
    keys |= await recorded_trial(
        tx, handlers, storage, session_id, "neutral", 1, motion_files("neutral", True)
    )
    keys |= await recorded_trial(
        tx, handlers, storage, session_id, "my squats", 2, motion_files("my squats", False)
    )
    return session_id, keys


def expected_names(session_id: UUID) -> list[str]:
    root = f"OpenCapData_{session_id}"
    per_camera = [
        f"Videos/{cam}/{path}"
        for cam in CAMERAS
        for trial in ("neutral", "mysquats")
        for path in (
            f"InputMedia/{trial}/{trial}.mov",
            f"InputMedia/{trial}/{trial}_sync.mp4",
            f"OutputPkl/{trial}_keypoints.pkl",
        )
    ]
    return sorted(
        f"{root}/{path}"
        for path in [
            *per_camera,
            "Videos/Cam0/cameraIntrinsicsExtrinsics.pickle",
            "Videos/Cam1/cameraIntrinsicsExtrinsics.pickle",
            "Videos/mappingCamDevice.pickle",
            "CalibrationImages/calib_imgCam0.jpg",
            "CalibrationImages/calib_imgCam1.jpg",
            "MarkerData/neutral.trc",
            "MarkerData/mysquats.trc",
            "OpenSimData/Kinematics/mysquats.mot",
            "OpenSimData/Model/LaiUhlrich2022_scaled.osim",
            "OpenSimData/Model/Geometry/femur_r.vtp",
            "OpenSimData/Model/Geometry/pelvis.vtp",
            "sessionMetadata.yaml",
            "README.txt",
        ]
    )


async def download(client, tx, storage, settings, session_id, headers) -> zipfile.ZipFile:
    """Ask for the archive, let the worker build it, poll until ready; the zip from S3."""
    asked = await client.get(f"/sessions/{session_id}/async-download/", headers=headers)
    task_id = asked.json()["task_id"]
    poll = f"/logs/{task_id}/on-ready/"
    assert (await client.get(poll, headers=headers)).status_code == 202
    assert await archives.build_next(in_savepoints(tx), storage, settings)
    ready = await client.get(poll, headers=headers)
    assert ready.status_code == 200, ready.text
    async with httpx.AsyncClient() as s3:
        body = (await s3.get(ready.json()["url"])).content
    return zipfile.ZipFile(io.BytesIO(body))


async def test_archive_has_exactly_the_original_layout(
    client, tx, handlers, storage, geometry_settings, session
):
    session_id, keys = session
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await download(client, tx, storage, geometry_settings, session_id, owner)

    assert sorted(archive.namelist()) == expected_names(session_id)
    root = f"OpenCapData_{session_id}"
    options = (
        "calibration_parameters_options",
        "Cam1_soln1",
        "cameraIntrinsicsExtrinsics_soln1.pickle",
    )
    image = "calibration-img", "Cam1_altSoln", "extrinsicCalib_Cam1_altSoln.jpg"
    sync = "video-sync", None, "my squats_syncdWithMocap_Cam1.mp4"
    for name, source in [
        ("Videos/Cam1/cameraIntrinsicsExtrinsics.pickle", options),
        ("CalibrationImages/calib_imgCam1.jpg", image),
        ("Videos/Cam1/InputMedia/mysquats/mysquats_sync.mp4", sync),
    ]:
        assert archive.read(f"{root}/{name}") == object_bytes(storage, keys[source]), name
    mapping = pickle.loads(archive.read(f"{root}/Videos/mappingCamDevice.pickle"))
    assert mapping == {PHONES[0].hex.upper(): 0, PHONES[1].hex.upper(): 1}


async def test_archive_is_stored_under_archives_with_a_unique_name(
    client, tx, handlers, storage, settings, session
):
    session_id, _ = session
    owner = await caller(tx, handlers, OWNER_ID)

    await download(client, tx, storage, settings, session_id, owner)

    [task] = (await tx.scalars(select(Archive))).all()
    prefix = f"archives/OpenCapData_{session_id}_"
    assert task.key.startswith(prefix) and task.key.endswith(".zip")
    assert UUID(task.key.removeprefix(prefix).removesuffix(".zip"))
    assert storage.size(task.key) > 0


async def test_pieces_missing_from_storage_are_skipped(client, tx, handlers, storage, settings):
    session_id = await session_of(tx, handlers, OWNER_ID)
    trial_id = await trial_in(tx, handlers, session_id, "walk", 0)
    files = [("ik_results", "all", "walk.mot"), ("marker_data", "all", "walk.trc")]
    gone = (await completed(tx, handlers, storage, trial_id, files))[files[1]]
    storage.client.delete_object(Bucket=storage.bucket, Key=gone)
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await download(client, tx, storage, settings, session_id, owner)

    root = f"OpenCapData_{session_id}"
    assert sorted(archive.namelist()) == [
        f"{root}/OpenSimData/Kinematics/walk.mot",
        f"{root}/README.txt",
        f"{root}/Videos/mappingCamDevice.pickle",
    ]


async def test_a_new_subject_session_uses_the_calibration_of_its_calibrated_session(
    client, tx, handlers, storage, settings
):
    """Through `sessionWithCalibration`; with no known choice, each camera's solution 0."""
    parent = await session_of(tx, handlers, OWNER_ID)
    calibration_id = await trial_in(tx, handlers, parent, "calibration", 0)
    keys = await completed(tx, handlers, storage, calibration_id, calibration_files())
    child = await session_of(tx, handlers, OWNER_ID, calibration_session_id=parent)
    await recorded_trial(tx, handlers, storage, child, "neutral", 1, motion_files("neutral", True))
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await download(client, tx, storage, settings, child, owner)

    root = f"OpenCapData_{child}"
    options = (
        "calibration_parameters_options",
        "Cam1_soln0",
        "cameraIntrinsicsExtrinsics_soln0.pickle",
    )
    image = "calibration-img", "Cam0", "extrinsicCalib_Cam0.jpg"
    calibration = archive.read(f"{root}/Videos/Cam1/cameraIntrinsicsExtrinsics.pickle")
    assert calibration == object_bytes(storage, keys[options])
    picture = archive.read(f"{root}/CalibrationImages/calib_imgCam0.jpg")
    assert picture == object_bytes(storage, keys[image])


async def test_a_calibration_link_into_another_users_session_is_not_followed(
    client, tx, handlers, storage, settings
):
    """A user sets their session's sessionWithCalibration to another user's session: their
    archive holds none of that user's calibration images or camera parameters."""
    foreign = await session_of(tx, handlers, OTHER_ID)
    calibration_id = await trial_in(tx, handlers, foreign, "calibration", 0)
    await completed(tx, handlers, storage, calibration_id, calibration_files())
    mine = await session_of(tx, handlers, OWNER_ID, calibration_session_id=foreign)
    await recorded_trial(tx, handlers, storage, mine, "neutral", 1, motion_files("neutral", True))
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await download(client, tx, storage, settings, mine, owner)

    names = archive.namelist()
    assert f"OpenCapData_{mine}/MarkerData/neutral.trc" in names
    assert not [n for n in names if "CalibrationImages" in n or "cameraIntrinsics" in n]


async def test_a_calibration_link_through_another_users_session_stops_there(
    client, tx, handlers, storage, settings
):
    """Own session -> another user's (no calibration) -> own calibrated one: not followed
    either (the other user's link is theirs to set)."""
    own_root = await session_of(tx, handlers, OWNER_ID)
    calibration_id = await trial_in(tx, handlers, own_root, "calibration", 0)
    await completed(tx, handlers, storage, calibration_id, calibration_files())
    foreign = await session_of(tx, handlers, OTHER_ID, calibration_session_id=own_root)
    mine = await session_of(tx, handlers, OWNER_ID, calibration_session_id=foreign)
    owner = await caller(tx, handlers, OWNER_ID)

    archive = await download(client, tx, storage, settings, mine, owner)

    assert not [n for n in archive.namelist() if "CalibrationImages" in n]
