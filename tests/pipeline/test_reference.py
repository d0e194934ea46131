"""The reference worker measures real videos with ffprobe, grabs thumbnails with ffmpeg and
estimates the cameras' time offsets from the motion in the pictures."""

import json
import subprocess
from uuid import uuid4

import pytest
from PIL import Image

from pipeline import reference
from pipeline.sdk import ProcessingError
from shared.events import ProcessingJob, UploadedVideo


def job_for(videos: list[UploadedVideo], trial_type: str = "dynamic") -> ProcessingJob:
    names = {"calibration": "calibration", "static": "neutral", "dynamic": "walking"}
    return ProcessingJob(
        job_id=uuid4(),
        trial_id=uuid4(),
        session_id=uuid4(),
        trial_name=names[trial_type],
        trial_type=trial_type,
        videos=videos,
    )


def uploaded() -> UploadedVideo:
    return UploadedVideo(video_id=uuid4(), device_id=uuid4(), key=f"videos/{uuid4()}.mov")


def test_probe_measures_a_clip(clips):
    facts = reference.probe(clips[0])

    assert facts["codec"] == "h264"
    assert (facts["width"], facts["height"]) == (320, 240)
    assert facts["frame_rate"] == 30
    assert facts["frame_count"] == 30
    assert facts["duration_s"] == pytest.approx(1.0, abs=0.05)
    assert facts["size_bytes"] == clips[0].stat().st_size > 0


def test_process_writes_facts_and_a_thumbnail_per_camera_then_their_offsets(clips, tmp_path):
    videos = [uploaded(), uploaded()]

    outputs = reference.process(job_for(videos), tmp_path, list(zip(videos, clips, strict=True)))

    assert [(o.tag, o.device_id, o.path.name) for o in outputs] == [
        ("video_facts", "Cam0", "videoFacts_Cam0.json"),
        ("thumbnail", "Cam0", "thumbnail_Cam0.jpg"),
        ("video_facts", "Cam1", "videoFacts_Cam1.json"),
        ("thumbnail", "Cam1", "thumbnail_Cam1.jpg"),
        ("sync_offsets", "all", "syncOffsets.json"),
    ]
    offsets = json.loads(outputs[-1].path.read_text())
    assert offsets["frame_rate"] == 30
    assert outputs[-1].meta == {c: o["seconds"] for c, o in offsets["cameras"].items()}
    # Cam1 starts 0.05 s (1.5 frames at 30 fps) after Cam0.
    assert outputs[-1].meta["Cam0"] == 0.0
    assert outputs[-1].meta["Cam1"] == pytest.approx(0.05, abs=1 / 30)
    for video, clip, facts_file in zip(videos, clips, outputs[:4:2], strict=True):
        facts = json.loads(facts_file.path.read_text())
        assert (
            facts == facts_file.meta == {"device_id": str(video.device_id), **reference.probe(clip)}
        )
    for thumbnail in outputs[1:4:2]:
        assert thumbnail.meta is None
        with Image.open(thumbnail.path) as image:
            assert (image.format, image.size) == ("JPEG", (320, 240))


@pytest.mark.parametrize(
    ("trial_type", "tag"),
    [("calibration", "calibration-img"), ("static", "neutral-img"), ("dynamic", "thumbnail")],
)
def test_each_kind_of_trial_gets_the_picture_its_web_page_waits_for(
    clips, tmp_path, trial_type, tag
):
    video = uploaded()

    outputs = reference.process(job_for([video], trial_type), tmp_path, [(video, clips[0])])

    assert [o.tag for o in outputs] == ["video_facts", tag]  # one camera: no offsets


def test_no_videos_is_the_originals_error(tmp_path):
    with pytest.raises(ProcessingError) as raised:
        reference.process(job_for([]), tmp_path, [])

    assert raised.value.user_message == (
        "No videos uploaded. Ensure phones are connected and you have stable internet connection."
    )


def test_unreadable_video_is_a_processing_error(tmp_path):
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"this is not a movie" * 100)
    video = uploaded()

    with pytest.raises(ProcessingError) as raised:
        reference.process(job_for([video]), tmp_path, [(video, broken)])

    assert raised.value.user_message == "A video could not be read."
    assert raised.value.dev_message  # ffprobe's own words, for the developers


def test_video_without_picture_is_a_processing_error(tmp_path):
    sound = tmp_path / "sound.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc", "-t", "0.2", str(sound)],
        check=True,
        capture_output=True,
    )

    with pytest.raises(ProcessingError, match="A video has no picture."):
        reference.probe(sound)
