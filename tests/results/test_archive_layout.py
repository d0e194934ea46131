"""The archive layout's rules (reference §8.1) as plain unit tests: no database, no S3."""

import pickle
from uuid import UUID

from results_service.archive import (
    ResultRef,
    SessionData,
    TrialData,
    VideoRef,
    layout,
    subject_layout,
)

SESSION = UUID("5e000000-0000-4000-8000-000000000001")
ROOT = f"OpenCapData_{SESSION}"
PHONE_A = UUID("de1ce000-0000-4000-8000-00000000000a")
PHONE_B = UUID("de1ce000-0000-4000-8000-00000000000b")


def calibration(*results: tuple[str, str, str]) -> TrialData:
    return TrialData("calibration", [ResultRef(*r) for r in results])


OPTIONS = [
    ("calibration_parameters_options", f"Cam{c}_soln{s}", f"k-{c}{s}.pickle")
    for c in (0, 1)
    for s in (0, 1)
]
IMAGES = [
    ("calibration-img", device, f"k-{device}.jpg")
    for device in ("Cam0", "Cam0_altSoln", "Cam1", "Cam1_altSoln")
]


def test_the_chosen_solution_of_each_camera_is_its_calibration():
    data = SessionData(
        SESSION, [], calibration(*OPTIONS, *IMAGES), calibration_choice={"Cam0": 0, "Cam1": 1}
    )

    entries = layout(data)

    assert entries[f"{ROOT}/Videos/Cam0/cameraIntrinsicsExtrinsics.pickle"] == "k-00.pickle"
    assert entries[f"{ROOT}/Videos/Cam1/cameraIntrinsicsExtrinsics.pickle"] == "k-11.pickle"
    assert entries[f"{ROOT}/CalibrationImages/calib_imgCam0.jpg"] == "k-Cam0.jpg"
    assert entries[f"{ROOT}/CalibrationImages/calib_imgCam1.jpg"] == "k-Cam1_altSoln.jpg"


def test_without_a_known_choice_every_camera_uses_solution_0():
    entries = layout(SessionData(SESSION, [], calibration(*OPTIONS, *IMAGES)))

    assert entries[f"{ROOT}/Videos/Cam1/cameraIntrinsicsExtrinsics.pickle"] == "k-10.pickle"
    assert entries[f"{ROOT}/CalibrationImages/calib_imgCam1.jpg"] == "k-Cam1.jpg"


def test_trial_names_lose_their_spaces_and_unsafe_names_are_left_out():
    trials = [
        TrialData("my squats", [ResultRef("marker_data", "all", "k-1.trc")]),
        TrialData("../up", [ResultRef("marker_data", "all", "k-2.trc")]),
        TrialData(None, [ResultRef("marker_data", "all", "k-3.trc")]),
        TrialData("跑步", [ResultRef("ik_results", "all", "k-4.mot")]),
    ]

    entries = layout(SessionData(SESSION, trials))

    assert {name for name in entries if "/MarkerData/" in name or "/Kinematics/" in name} == {
        f"{ROOT}/MarkerData/mysquats.trc",
        f"{ROOT}/OpenSimData/Kinematics/跑步.mot",
    }


def test_camera_mapping_is_merged_across_trials_with_the_first_index_kept():
    trials = [
        TrialData("neutral", videos=[VideoRef(PHONE_A, "a.mov"), VideoRef(PHONE_B, "b.mov")]),
        TrialData("walk", videos=[VideoRef(PHONE_B, "c.mov")]),
    ]

    entries = layout(SessionData(SESSION, trials))

    mapping = pickle.loads(entries[f"{ROOT}/Videos/mappingCamDevice.pickle"])
    assert mapping == {PHONE_A.hex.upper(): 0, PHONE_B.hex.upper(): 1}
    assert entries[f"{ROOT}/Videos/Cam0/InputMedia/walk/walk.mov"] == "c.mov"


def test_sync_videos_are_placed_by_the_camera_in_their_file_name():
    trial = TrialData(
        "walk",
        [
            ResultRef("video-sync", None, "u-walk_syncdWithMocap_Cam1.mp4"),
            ResultRef("video-sync", "Cam2", "u-nocamera.avi"),
            ResultRef("pose_pickle", "../x", "u-bad.pkl"),
        ],
    )

    entries = layout(SessionData(SESSION, [trial]))

    assert entries[f"{ROOT}/Videos/Cam1/InputMedia/walk/walk_sync.mp4"].endswith("Cam1.mp4")
    assert f"{ROOT}/Videos/u-nocamera/InputMedia/walk/walk_sync.avi" in entries
    assert not any("OutputPkl" in name for name in entries)


def test_the_model_is_named_after_the_last_dash_and_lai_models_get_geometry():
    neutral = TrialData(
        "neutral",
        [
            ResultRef("opensim_model", "all", "0a1b-c2d3-LaiUhlrich2022_scaled.osim"),
            ResultRef("session_metadata", "all", "u-sessionMetadata.yaml"),
        ],
    )
    data = SessionData(SESSION, [neutral], neutral=neutral)

    entries = layout(data, ["geo/LaiArnold/femur.vtp", "geo/LaiArnold/notes.txt"])

    assert set(entries) >= {
        f"{ROOT}/OpenSimData/Model/LaiUhlrich2022_scaled.osim",
        f"{ROOT}/OpenSimData/Model/Geometry/femur.vtp",
        f"{ROOT}/sessionMetadata.yaml",
        f"{ROOT}/README.txt",
    }
    assert not any(name.endswith("notes.txt") for name in entries)


def test_an_empty_session_has_only_the_readme():
    assert list(layout(SessionData(SESSION, []))) == [f"{ROOT}/README.txt"]


def test_a_subject_archive_holds_each_sessions_folder_unchanged_inside_its_own():
    other = UUID("5e000000-0000-4000-8000-000000000002")
    sessions = [
        SessionData(SESSION, [TrialData("walk", [ResultRef("marker_data", "all", "k-1.trc")])]),
        SessionData(other, [TrialData("run", [ResultRef("marker_data", "all", "k-2.trc")])]),
    ]

    entries = subject_layout(7, sessions)

    expected = {
        f"OpenCapData_Subject_7/{path}": source
        for data in sessions
        for path, source in layout(data).items()
    }
    assert entries == expected
    assert entries[f"OpenCapData_Subject_7/OpenCapData_{other}/MarkerData/run.trc"] == "k-2.trc"
