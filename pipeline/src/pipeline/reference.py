"""The reference pipeline worker: real facts about every video of a trial.

For each camera (in the job's order, named `Cam0`, `Cam1`, … as the original pipeline
names them) it measures the video with ffprobe (codec, resolution, frame rate, frame
count, duration) and grabs a picture from the middle with ffmpeg; with two cameras or
more, it estimates the time offset of each camera from Cam0 from the motion seen in the
pictures (`sync.py`). It stands where the GPU pose-estimation pipeline stands, with the
same inputs and the same kind of outputs.

Run it with `python -m pipeline.reference` (settings from the environment, see
`PipelineSettings`). With PIPELINE_COMMAND set it runs that command on each job instead
(`command.py`): the way a real pipeline plugs in.
"""

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.command import command_process
from pipeline.job import camera_name
from pipeline.sdk import OutputFile, PipelineSettings, ProcessingError, run
from pipeline.sync import sync_offsets
from shared.events import ProcessingJob, UploadedVideo


def probe(path: Path) -> dict[str, Any]:
    """Measure a video file with ffprobe (frames are counted, not estimated)."""
    command = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,width,height,avg_frame_rate,r_frame_rate,nb_read_frames:format=duration",
        "-of",
        "json",
        str(path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise ProcessingError("A video could not be read.", done.stderr.strip()[-500:])
    data = json.loads(done.stdout)
    if not data.get("streams"):
        raise ProcessingError("A video has no picture.", f"no video stream in {path.name}")
    stream = data["streams"][0]
    rate = stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "0/1"
    frame_rate = float(Fraction(rate)) if Fraction(rate).denominator else 0.0
    return {
        "codec": stream.get("codec_name"),
        "width": int(stream.get("width", 0)),
        "height": int(stream.get("height", 0)),
        "frame_rate": round(frame_rate, 3),
        "frame_count": int(stream.get("nb_read_frames", 0)),
        "duration_s": round(float(data.get("format", {}).get("duration", 0.0)), 3),
        "size_bytes": path.stat().st_size,
    }


def thumbnail(path: Path, duration: float, out: Path) -> None:
    command = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-ss",
        f"{duration / 2:.3f}",
        "-i",
        str(path),
        "-frames:v",
        "1",
        "-vf",
        "scale=320:-2",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.exists():
        raise ProcessingError("A thumbnail could not be made.", done.stderr.strip()[-500:])


# The picture each kind of trial shows in the web app: the calibration page waits for
# `calibration-img`, the neutral page for `neutral-img` (reference §5.3, §6.4).
IMAGE_TAGS = {"calibration": "calibration-img", "static": "neutral-img", "dynamic": "thumbnail"}
DEFAULT_FRAME_RATE = 30.0  # for a video whose frame rate ffprobe cannot tell


def process(
    job: ProcessingJob, workdir: Path, videos: list[tuple[UploadedVideo, Path]]
) -> list[OutputFile]:
    if not videos:
        raise ProcessingError(
            "No videos uploaded. Ensure phones are connected and you have stable internet "
            "connection.",
            "No videos uploaded.",
        )
    outputs: list[OutputFile] = []
    for index, (video, path) in enumerate(videos):
        outputs += camera_outputs(job, camera_name(index), video, path, workdir)
    if len(videos) > 1:
        frame_rate = outputs[0].meta["frame_rate"] or DEFAULT_FRAME_RATE
        outputs.append(sync_output([path for _, path in videos], frame_rate, workdir))
    return outputs


def camera_outputs(
    job: ProcessingJob, camera: str, video: UploadedVideo, path: Path, workdir: Path
) -> list[OutputFile]:
    """The camera's facts (a JSON file, also its meta) and its picture."""
    facts = {"device_id": str(video.device_id), **probe(path)}
    facts_file = workdir / f"videoFacts_{camera}.json"
    facts_file.write_text(json.dumps(facts, indent=2))
    picture = workdir / f"thumbnail_{camera}.jpg"
    thumbnail(path, facts["duration_s"], picture)
    return [
        OutputFile(facts_file, "video_facts", camera, facts),
        OutputFile(picture, IMAGE_TAGS.get(job.trial_type, "thumbnail"), camera),
    ]


def sync_output(paths: list[Path], frame_rate: float, workdir: Path) -> OutputFile:
    """`sync_offsets` (device `all`): the file has the details, the meta each camera's
    offset from Cam0 in seconds (None where the motion tells nothing)."""
    try:
        offsets = sync_offsets(paths, frame_rate)
    except (ValueError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError("The videos could not be synchronized.", str(exc)) from exc
    out = workdir / "syncOffsets.json"
    out.write_text(json.dumps(offsets, indent=2))
    meta = {camera: offset["seconds"] for camera, offset in offsets["cameras"].items()}
    return OutputFile(out, "sync_offsets", "all", meta)


def main() -> None:
    settings = PipelineSettings()
    if settings.pipeline_command:
        timeout = settings.pipeline_command_timeout_seconds or None
        run(command_process(settings.pipeline_command, timeout), settings)
    else:
        run(process, settings)


if __name__ == "__main__":
    main()
