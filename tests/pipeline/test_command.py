"""An external command as the pipeline: videos and job.json in, its manifest's files out,
its own words (or its stderr) when it fails."""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from uuid import uuid4

import pytest

from pipeline.command import command_process
from pipeline.job import OutputFile, ProcessingError
from pipeline.sdk import Worker
from shared.events import ProcessingFailed, UploadedVideo
from tests.pipeline.support import job_with, put_videos, running

# Writes a result per video and a manifest describing them; checks what it was handed.
PIPELINE = """
import json, os, pathlib, sys
inputs, outputs = map(pathlib.Path, sys.argv[1:3])
assert str(inputs) == os.environ["OPENCAP_INPUT_DIR"], "input folder"
assert str(outputs) == os.environ["OPENCAP_OUTPUT_DIR"], "output folder"
job = json.loads(pathlib.Path(os.environ["OPENCAP_JOB_FILE"]).read_text())
manifest = []
for video in job["videos"]:
    size = (inputs / video["file"]).stat().st_size
    name = f"size_{video['camera']}.txt"
    (outputs / name).write_text(str(size))
    manifest.append({"file": name, "tag": "video_size", "device_id": video["camera"],
                     "meta": {"bytes": size, "device": video["device_id"]}})
(outputs / "sub").mkdir()
(outputs / "sub" / "summary.json").write_text(json.dumps(job))
manifest.append({"file": "sub/summary.json", "tag": "summary", "device_id": "all"})
(outputs / "manifest.json").write_text(json.dumps(manifest))
"""


def script(tmp_path: Path, source: str) -> str:
    path = tmp_path / f"pipeline_{uuid4().hex[:6]}.py"
    path.write_text(textwrap.dedent(source))
    return f"{sys.executable} {path}"


def job_folder(tmp_path: Path, clips: list[Path]) -> tuple:
    """A job with its videos laid out as the SDK lays them out, and its output folder."""
    (tmp_path / "input").mkdir()
    (tmp_path / "output").mkdir()
    videos = []
    for index, clip in enumerate(clips):
        video = UploadedVideo(video_id=uuid4(), device_id=uuid4(), key=f"videos/{uuid4()}.mov")
        path = tmp_path / "input" / f"Cam{index}.mov"
        path.write_bytes(clip.read_bytes())
        videos.append((video, path))
    job = job_with(uuid4(), [video for video, _ in videos], "static", attempt=2)
    return job, tmp_path / "output", videos


def test_command_gets_the_videos_and_the_job_and_its_manifest_is_the_result(tmp_path, clips):
    job, outputs, videos = job_folder(tmp_path, clips)

    results = command_process(script(tmp_path, PIPELINE))(job, outputs, videos)

    assert results == [
        OutputFile(
            outputs / f"size_Cam{i}.txt",
            "video_size",
            f"Cam{i}",
            {"bytes": clip.stat().st_size, "device": str(video.device_id)},
        )
        for i, ((video, _), clip) in enumerate(zip(videos, clips, strict=True))
    ] + [OutputFile(outputs / "sub" / "summary.json", "summary", "all")]
    described = json.loads(results[-1].path.read_text())
    assert described["trial_id"] == str(job.trial_id)
    assert (described["trial_type"], described["attempt"]) == ("static", 2)
    assert [(v["camera"], v["file"]) for v in described["videos"]] == [
        ("Cam0", "Cam0.mov"),
        ("Cam1", "Cam1.mov"),
    ]


def test_failing_command_reports_the_tail_of_its_stderr(tmp_path, clips):
    job, outputs, videos = job_folder(tmp_path, clips[:1])
    failing = """
        import sys
        for line in range(2000):
            print(f"progress {line}", file=sys.stderr)
        print("CUDA out of memory", file=sys.stderr)
        sys.exit(3)
    """

    with pytest.raises(ProcessingError) as raised:
        command_process(script(tmp_path, failing))(job, outputs, videos)

    assert raised.value.user_message == "Processing failed unexpectedly."
    assert "exited with status 3" in raised.value.dev_message
    assert raised.value.dev_message.endswith("CUDA out of memory")
    assert "progress 0\n" not in raised.value.dev_message  # the tail, not the whole of it


def test_failing_command_can_say_what_users_see(tmp_path, clips):
    job, outputs, videos = job_folder(tmp_path, clips[:1])
    failing = """
        import json, pathlib, sys
        error = {"error_msg": "Checkerboard not found.", "error_msg_dev": "0 corners in Cam0"}
        (pathlib.Path(sys.argv[2]) / "error.json").write_text(json.dumps(error))
        sys.exit(1)
    """

    with pytest.raises(ProcessingError) as raised:
        command_process(script(tmp_path, failing))(job, outputs, videos)

    assert (raised.value.user_message, raised.value.dev_message) == (
        "Checkerboard not found.",
        "0 corners in Cam0",
    )


@pytest.mark.parametrize(
    ("manifest", "complaint"),
    [
        (None, "wrote no manifest.json"),
        ('[{"file": "a.txt"}]', "manifest.json is not valid"),
        ('[{"file": "../input/job.json", "tag": "x"}]', "no such file in the output folder"),
        ('[{"file": "missing.txt", "tag": "x"}]', "no such file in the output folder"),
    ],
)
def test_a_bad_manifest_fails_the_job(tmp_path, clips, manifest, complaint):
    job, outputs, videos = job_folder(tmp_path, clips[:1])
    writer = f"""
        import pathlib, sys
        (pathlib.Path(sys.argv[2]) / "a.txt").write_text("a")
        manifest = {manifest!r}
        if manifest is not None:
            (pathlib.Path(sys.argv[2]) / "manifest.json").write_text(manifest)
    """

    with pytest.raises(ProcessingError) as raised:
        command_process(script(tmp_path, writer))(job, outputs, videos)

    assert complaint in raised.value.dev_message


def test_missing_command_fails_the_job(tmp_path, clips):
    job, outputs, videos = job_folder(tmp_path, clips[:1])
    missing = tmp_path / "no-such-pipeline"

    with pytest.raises(ProcessingError, match="Processing failed unexpectedly.") as raised:
        command_process(str(missing))(job, outputs, videos)

    assert f"cannot run {missing}: No such file or directory" in raised.value.dev_message


# Blocks SIGTERM, has one sent to it (it stays pending: as when the worker's group is
# signalled while the command is being started), then becomes the launcher.
PENDING_THEN_LAUNCH = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
os.kill(os.getpid(), signal.SIGTERM)
launch = [sys.executable, "-m", "pipeline.launch"]
os.execv(sys.executable, [*launch, "cat", "/proc/self/status"])
"""


def test_a_stop_signal_pending_at_start_does_not_reach_the_command():
    # `cat` prints the signal state it was started with: pending, blocked, ignored.
    ran = subprocess.run(
        [sys.executable, "-c", PENDING_THEN_LAUNCH], capture_output=True, text=True, timeout=30
    )

    assert ran.returncode == 0, ran.stderr
    status = dict(line.split(":\t", 1) for line in ran.stdout.splitlines())
    signals = [signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ]
    for field in ("SigPnd", "ShdPnd", "SigBlk", "SigIgn"):
        mask = int(status[field], 16)
        assert [sig.name for sig in signals if mask >> (sig - 1) & 1] == [], field


async def test_worker_reports_a_failing_command_as_failed(
    settings, broker, claims, storage, clips, tmp_path
):
    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips[:1], trial_id))
    await broker.submit(job)
    crashing = "import sys; sys.exit('pose estimation crashed on frame 12')"

    async with running(Worker(settings, command_process(script(tmp_path, crashing)))):
        events = await broker.reports_until_final()

    assert events[0].type == "processing.started"
    assert isinstance(events[-1], ProcessingFailed)
    assert events[-1].error_msg == "Processing failed unexpectedly."
    assert events[-1].error_msg_dev.endswith("pose estimation crashed on frame 12")
