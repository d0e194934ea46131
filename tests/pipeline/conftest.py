"""Fixtures of the pipeline's tests: real clips made with ffmpeg (once per run)."""

from pathlib import Path

import pytest

from dev.videos import make_clip

SECONDS, FPS, SIZE = 1.0, 30, (320, 240)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list[Path]:
    """Two cameras' clips: 1.0 s at 30 fps, 320x240, H.264 in a .mov."""
    folder = tmp_path_factory.mktemp("clips")
    return [
        make_clip(
            folder / f"camera{camera}.mov", camera=camera, seconds=SECONDS, fps=FPS, size=SIZE
        )
        for camera in range(2)
    ]
