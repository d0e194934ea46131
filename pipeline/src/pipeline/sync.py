"""Time offsets between cameras, estimated from the pictures alone.

Phones start recording at slightly different moments. Each camera's video is decoded by
ffmpeg as a small grayscale frame sequence (raw frames on a pipe, resampled to Cam0's
frame rate); its motion energy is the mean absolute difference between consecutive frames
(how much moves, frame by frame). The lag that best correlates a camera's motion energy
with Cam0's (Pearson correlation over the overlap, lags up to MAX_LAG_SECONDS, refined
below a frame by a parabola through the peak) is that camera's offset.

Offset of CamN = the moment, on Cam0's clock, of CamN's first frame: positive when CamN
started later than Cam0. CamN's frame k shows what Cam0's frame k + offset * fps shows.
"""

import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.job import camera_name

FRAME_SIZE = (96, 64)  # width, height of the decoded frames: motion, not detail
MAX_SECONDS = 60.0  # of each video decoded
MAX_LAG_SECONDS = 1.0
MIN_OVERLAP = 10  # frames of motion energy two cameras must share at a lag


def grayscale_frames(path: Path, fps: float, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """The video's frames as an array (frames, height, width) of 8-bit gray levels."""
    width, height = FRAME_SIZE
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-t", f"{max_seconds:g}", "-an"]
    command += ["-vf", f"fps={fps:g},scale={width}:{height},format=gray"]
    command += ["-f", "rawvideo", "-pix_fmt", "gray", "-"]
    done = subprocess.run(command, capture_output=True, timeout=600)
    if done.returncode != 0:
        raise ValueError(done.stderr.decode(errors="replace").strip()[-500:])
    frames = np.frombuffer(done.stdout, dtype=np.uint8)
    return frames[: frames.size - frames.size % (width * height)].reshape(-1, height, width)


def motion_energy(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each frame from the one before (one value fewer)."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2))


def correlation_at(reference: np.ndarray, signal: np.ndarray, lag: int) -> float:
    """Pearson correlation of reference[t + lag] with signal[t] over their overlap."""
    start, stop = max(0, -lag), min(len(signal), len(reference) - lag)
    if stop - start < MIN_OVERLAP:
        return float("nan")
    x = reference[start + lag : stop + lag] - reference[start + lag : stop + lag].mean()
    y = signal[start:stop] - signal[start:stop].mean()
    scale = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / scale) if scale > 1e-9 else float("nan")


def best_lag(reference: np.ndarray, signal: np.ndarray, max_lag: int) -> tuple[float, float]:
    """(lag in frames, refined below a frame; its correlation); NaNs if none can be told."""
    lags = np.arange(-max_lag, max_lag + 1)
    scores = np.array([correlation_at(reference, signal, int(lag)) for lag in lags])
    if np.all(np.isnan(scores)):
        return float("nan"), float("nan")
    peak = int(np.nanargmax(scores))
    return float(lags[peak]) + _parabola_vertex(scores, peak), float(scores[peak])


def _parabola_vertex(scores: np.ndarray, peak: int) -> float:
    """Where, within half a step of `peak`, a parabola through it and its neighbours peaks."""
    if peak == 0 or peak == len(scores) - 1:
        return 0.0
    before, at, after = scores[peak - 1], scores[peak], scores[peak + 1]
    curvature = before - 2 * at + after
    if np.isnan(curvature) or curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))


def sync_offsets(paths: list[Path], fps: float) -> dict[str, Any]:
    """Each camera's offset from Cam0 (see the module's doc) in frames and seconds, with the
    correlation that supports it (near 1: clear; near 0: no shared motion, no estimate)."""
    signals = [motion_energy(grayscale_frames(path, fps)) for path in paths]
    max_lag = max(1, round(MAX_LAG_SECONDS * fps))
    cameras: dict[str, Any] = {camera_name(0): {"frames": 0, "seconds": 0.0, "correlation": 1.0}}
    for index, signal in enumerate(signals[1:], start=1):
        cameras[camera_name(index)] = _offset(*best_lag(signals[0], signal, max_lag), fps)
    return {"reference": "Cam0", "frame_rate": fps, "method": "motion-energy", "cameras": cameras}


def _offset(lag: float, score: float, fps: float) -> dict[str, Any]:
    if np.isnan(lag):
        return {"frames": None, "seconds": None, "correlation": None}
    return {"frames": round(lag), "seconds": round(lag / fps, 4), "correlation": round(score, 3)}
