"""Camera time offsets from the pictures: the lags the synthetic cameras were filmed with
(camera N starts N * 0.05 s after Cam0) come back out of the motion in their videos."""

import subprocess
from pathlib import Path

import pytest

from dev.videos import make_clip
from pipeline.sync import grayscale_frames, motion_energy, sync_offsets

FPS = 60


@pytest.fixture(scope="module")
def clips60(tmp_path_factory) -> list[Path]:
    """Three cameras, 2 s at 60 fps: Cam1 is 3 frames behind Cam0, Cam2 6 frames."""
    folder = tmp_path_factory.mktemp("clips60")
    return [
        make_clip(folder / f"cam{camera}.mov", camera=camera, seconds=2.0, fps=FPS, size=(320, 240))
        for camera in range(3)
    ]


def test_offsets_recover_the_lag_each_camera_was_filmed_with(clips60):
    offsets = sync_offsets(clips60, FPS)

    cameras = offsets["cameras"]
    assert cameras["Cam0"] == {"frames": 0, "seconds": 0.0, "correlation": 1.0}
    for camera, frames in (("Cam1", 3), ("Cam2", 6)):
        assert cameras[camera]["frames"] == pytest.approx(frames, abs=1)
        assert cameras[camera]["seconds"] == pytest.approx(frames / FPS, abs=1 / FPS)
        assert cameras[camera]["correlation"] > 0.5


def test_offsets_do_not_depend_on_which_camera_comes_first(clips60):
    offsets = sync_offsets([clips60[2], clips60[0]], FPS)

    assert offsets["cameras"]["Cam1"]["frames"] == pytest.approx(-6, abs=1)


def test_the_scene_moves_at_a_varying_speed(clips60):
    energy = motion_energy(grayscale_frames(clips60[0], FPS))

    assert len(energy) == 2 * FPS - 1
    assert energy.std() > 0.25 * energy.mean() > 0  # not the flat signal of a steady motion


def test_a_still_scene_gives_no_offset_rather_than_a_wrong_one(tmp_path):
    still = []
    for camera in range(2):
        path = tmp_path / f"still{camera}.mov"
        source = f"color=c=gray:s=160x120:r={FPS}:d=1"
        command = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-c:v", "libx264"]
        subprocess.run([*command, str(path)], check=True, capture_output=True)
        still.append(path)

    offsets = sync_offsets(still, FPS)

    assert offsets["cameras"]["Cam1"] == {"frames": None, "seconds": None, "correlation": None}
