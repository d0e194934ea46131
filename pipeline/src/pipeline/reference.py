"""The reference pipeline worker: real facts about every video of a trial.

For each camera (in the job's order, named `Cam0`, `Cam1`, … as the original pipeline
names them) it measures the video with ffprobe (codec, resolution, frame rate, frame
count, duration) and grabs a thumbnail from the middle with ffmpeg. It stands where the
GPU pose-estimation pipeline stands, with the same inputs and the same kind of outputs.

Run it with `python -m pipeline.reference` (settings from the environment, see
`PipelineSettings`).
"""

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.sdk import OutputFile, ProcessingError, run
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
        camera = f"Cam{index}"
        facts = {"device_id": str(video.device_id), **probe(path)}
        facts_file = workdir / f"videoFacts_{camera}.json"
        facts_file.write_text(json.dumps(facts, indent=2))
        thumb = workdir / f"thumbnail_{camera}.jpg"
        thumbnail(path, facts["duration_s"], thumb)
        outputs += [
            OutputFile(facts_file, "video_facts", camera, facts),
            OutputFile(thumb, IMAGE_TAGS.get(job.trial_type, "thumbnail"), camera),
        ]
    return outputs


def main() -> None:
    run(process)


if __name__ == "__main__":
    main()
