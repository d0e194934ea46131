"""The layout of a session archive (the original's `zipsession_v2`, reference §8.1).

    OpenCapData_<session_id>/
      Videos/Cam<i>/InputMedia/<trial>/<trial>.mov          neutral and dynamic trials
      Videos/<CamX>/InputMedia/<trial>/<trial>_sync.<ext>   video-sync (camera from file name)
      Videos/<CamX>/OutputPkl/<trial>_keypoints.pkl         pose_pickle (folder = device_id)
      Videos/<CamX>/cameraIntrinsicsExtrinsics.pickle       the chosen calibration solution
      Videos/mappingCamDevice.pickle                        {DEVICEIDHEX: i}, first trial wins
      MarkerData/<trial>.trc                                marker_data
      OpenSimData/Model/<name after last '-'>               the neutral trial's opensim_model
      OpenSimData/Model/Geometry/<name>.vtp                 LaiArnold geometry for "Lai" models
      OpenSimData/Kinematics/<trial>.mot                    ik_results
      CalibrationImages/calib_img<CamX>.<ext>               calibration-img of the chosen solution
      sessionMetadata.yaml                                  the neutral trial's session_metadata
      README.txt

A subject's archive wraps the archive folder of each of its sessions:
`OpenCapData_Subject_<subject_id>/OpenCapData_<session_id>/…` (the original's
`download_subject_archive`).

`<trial>` is the trial name without spaces. Anything missing is left out, as are names that
would not be a single safe path segment. `layout` is pure: it maps archive paths to S3 keys
(or to the bytes of the files it makes itself); `zipstream` writes them.
"""

import pickle
import re
from dataclasses import dataclass, field
from uuid import UUID

README = """OpenCap data
============

This archive holds the data of one OpenCap session (https://www.opencap.ai):

Videos/Cam<i>/InputMedia/<trial>/   the recorded video of each camera (<trial>.mov) and the
                                    synchronized video (<trial>_sync.mp4)
Videos/Cam<i>/OutputPkl/            2D keypoints detected in each video
Videos/Cam<i>/cameraIntrinsicsExtrinsics.pickle   the camera's calibration
Videos/mappingCamDevice.pickle      which phone (device id) recorded as which camera
MarkerData/                         3D marker trajectories (.trc) of each trial
OpenSimData/Model/                  the OpenSim model scaled to the subject (and its geometry)
OpenSimData/Kinematics/             joint kinematics (.mot) of each trial
CalibrationImages/                  the detected calibration checkerboard of each camera
sessionMetadata.yaml                the subject's and the session's settings

The .trc, .mot and .osim files open in OpenSim (https://opensim.stanford.edu).
"""

CAMERA_SOLUTION = re.compile(r"^(?P<camera>.+)_soln(?P<solution>\d+)$")


@dataclass(frozen=True)
class ResultRef:
    tag: str | None
    device_id: str | None
    key: str


@dataclass(frozen=True)
class VideoRef:
    device_id: UUID
    key: str


@dataclass(frozen=True)
class TrialData:
    name: str | None
    results: list[ResultRef] = field(default_factory=list)
    videos: list[VideoRef] = field(default_factory=list)

    def tagged(self, tag: str) -> list[ResultRef]:
        return [r for r in self.results if r.tag == tag]

    def first(self, tag: str, device_id: str | None = None) -> ResultRef | None:
        found = [r for r in self.tagged(tag) if device_id is None or r.device_id == device_id]
        return found[0] if found else None


@dataclass(frozen=True)
class SessionData:
    session_id: UUID
    # The neutral and dynamic trials (every trial not named "calibration"), oldest first.
    trials: list[TrialData]
    calibration: TrialData | None = None
    # The calibration trial's meta.calibration ({"Cam0": 0, ...}); None: not known.
    calibration_choice: dict | None = None
    neutral: TrialData | None = None


Entries = dict[str, str | bytes]


def segment(name: object) -> str | None:
    """`name` as one path segment (spaces stripped), or None if it cannot be one."""
    if not isinstance(name, str):
        return None
    name = name.replace(" ", "")
    if name in ("", ".", "..") or any(c in name for c in "/\\\x00") or not name.isprintable():
        return None
    return name


def file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def extension(key: str) -> str | None:
    stem, dot, ext = file_name(key).rpartition(".")
    return segment(ext) if dot and stem else None


def root_of(session_id: UUID) -> str:
    return f"OpenCapData_{session_id}"


def subject_root_of(subject_id: int) -> str:
    return f"OpenCapData_Subject_{subject_id}"


def subject_layout(
    subject_id: int, sessions: list[SessionData], geometry_keys: list[str] | tuple = ()
) -> Entries:
    """Every file of the subject's archive: each session's, inside the subject's folder."""
    root, entries = subject_root_of(subject_id), {}
    for data in sessions:
        entries |= {
            f"{root}/{path}": source for path, source in layout(data, geometry_keys).items()
        }
    return entries


def layout(data: SessionData, geometry_keys: list[str] | tuple = ()) -> Entries:
    """Every file of the session's archive: archive path -> S3 key or file content."""
    root, entries = root_of(data.session_id), {}
    if data.calibration is not None:
        choice = solutions(data.calibration, data.calibration_choice)
        entries |= calibration_files(root, data.calibration, choice)
    mapping: dict[str, int] = {}
    for trial in data.trials:
        entries |= trial_files(root, trial, mapping)
    if data.trials:
        entries[f"{root}/Videos/mappingCamDevice.pickle"] = pickle.dumps(mapping)
    if data.neutral is not None:
        entries |= neutral_files(root, data.neutral, geometry_keys)
    entries[f"{root}/README.txt"] = README.encode()
    return entries


def solutions(calibration: TrialData, choice: dict | None) -> dict[str, int]:
    """The calibration solution of each camera: the pipeline's choice when known, else
    solution 0 of every camera that has calibration options."""
    if choice:
        return {
            cam: value
            for cam, value in choice.items()
            if isinstance(value, int) and not isinstance(value, bool)
        }
    cameras = {}
    for result in calibration.tagged("calibration_parameters_options"):
        match = CAMERA_SOLUTION.match(result.device_id or "")
        if match:
            cameras.setdefault(match["camera"], 0)
    return dict(sorted(cameras.items()))


def calibration_files(root: str, calibration: TrialData, choice: dict[str, int]) -> Entries:
    entries = {}
    for camera, solution in choice.items():
        folder = segment(camera)
        option = calibration.first("calibration_parameters_options", f"{camera}_soln{solution}")
        if folder and option:
            entries[f"{root}/Videos/{folder}/cameraIntrinsicsExtrinsics.pickle"] = option.key
    for camera, solution in choice.items():
        if solution not in (0, 1):
            break  # as the original: a choice it cannot read ends the calibration images
        device_id = camera if solution == 0 else f"{camera}_altSoln"
        image = calibration.first("calibration-img", device_id)
        folder = segment(camera)
        if folder and image:
            ext = extension(image.key)
            name = f"calib_img{folder}.{ext}" if ext else f"calib_img{folder}"
            entries[f"{root}/CalibrationImages/{name}"] = image.key
    return entries


def trial_files(root: str, trial: TrialData, mapping: dict[str, int]) -> Entries:
    """A neutral or dynamic trial's files; adds its phones to `mapping` (first one wins)."""
    name = segment(trial.name)
    if name is None:
        return {}
    entries = {}
    for index, video in enumerate(trial.videos):
        entries[f"{root}/Videos/Cam{index}/InputMedia/{name}/{name}.mov"] = video.key
        mapping.setdefault(video.device_id.hex.upper(), index)
    for result in trial.tagged("video-sync"):
        camera, ext = sync_camera(result)
        if camera and ext:
            entries[f"{root}/Videos/{camera}/InputMedia/{name}/{name}_sync.{ext}"] = result.key
    for result in trial.tagged("pose_pickle"):
        camera = segment(result.device_id)
        if camera:
            entries[f"{root}/Videos/{camera}/OutputPkl/{name}_keypoints.pkl"] = result.key
    for result in trial.tagged("marker_data"):
        entries[f"{root}/MarkerData/{name}.trc"] = result.key
    for result in trial.tagged("ik_results"):
        entries[f"{root}/OpenSimData/Kinematics/{name}.mot"] = result.key
    return entries


def sync_camera(result: ResultRef) -> tuple[str | None, str | None]:
    """The camera of a synchronized video, from its file name (`…_syncd_Cam0.mp4`), or
    its device_id; and the file's extension."""
    stem = file_name(result.key).rpartition(".")[0] or file_name(result.key)
    camera = segment(stem.rsplit("_", 1)[-1]) or segment(result.device_id)
    return camera, extension(result.key)


def model_name(neutral: TrialData | None) -> str | None:
    """The OpenSim model's file name: what follows the last '-' of its key."""
    model = neutral.first("opensim_model") if neutral else None
    return segment(file_name(model.key).rsplit("-", 1)[-1]) if model else None


def needs_geometry(*sessions: SessionData) -> bool:
    return any("Lai" in (model_name(data.neutral) or "") for data in sessions)


def neutral_files(root: str, neutral: TrialData, geometry_keys: list[str] | tuple) -> Entries:
    entries = {}
    model = neutral.first("opensim_model")
    name = model_name(neutral)
    if model and name:
        entries[f"{root}/OpenSimData/Model/{name}"] = model.key
        if "Lai" in name:
            for key in geometry_keys:
                vtp = segment(file_name(key))
                if vtp and vtp.endswith(".vtp"):
                    entries[f"{root}/OpenSimData/Model/Geometry/{vtp}"] = key
    metadata = neutral.first("session_metadata")
    if metadata:
        entries[f"{root}/sessionMetadata.yaml"] = metadata.key
    return entries
