"""An external command as the processing function: how a real pipeline plugs in.

The command line (PIPELINE_COMMAND; split as a POSIX shell would, run without a shell) is
run once per job, in the job folder, with two more arguments: the input folder and the
output folder. The environment also names them: OPENCAP_INPUT_DIR, OPENCAP_OUTPUT_DIR and
OPENCAP_JOB_FILE.

    input/Cam0.mov, Cam1.mov, …   the trial's videos, in the job's order
    input/job.json                the job: job_id, trial_id, session_id, trial_name,
                                  trial_type (calibration | static | dynamic), attempt,
                                  is_mono, and videos: [{camera, file, video_id,
                                  device_id, key, parameters}, …]
    output/                       empty; the command writes its files here, and
    output/manifest.json          the list of results to post:
                                  [{"file": "<path in output/>", "tag": "marker_data",
                                    "device_id": "all" | "Cam0" | null, "meta": {…} | null}]
    output/error.json             optional, when it fails: {"error_msg": "<what users
                                  see>", "error_msg_dev": "<for developers>"}

Exit status 0: the files of the manifest are uploaded and reported (`processing.completed`).
Any other status: `processing.failed`, with error.json's messages if the command wrote it,
else a generic message and the tail of its stderr. Its stdout goes to the worker's own.
The command runs in a session of its own, so a SIGTERM sent to the worker's process group
does not cut it, even one sent while it is being started (`launch.py`): the worker finishes
the job before it stops.
"""

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pipeline.job import (
    GENERIC_FAILURE,
    INPUT_FOLDER,
    OutputFile,
    Process,
    ProcessingError,
    camera_name,
)
from pipeline.launch import STOP_SIGNALS
from shared.events import ProcessingJob, UploadedVideo

STDERR_TAIL = 2000  # characters of the command's stderr kept in the failure report


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    file: str = Field(min_length=1)
    tag: str = Field(min_length=1)
    device_id: str | None = None
    meta: dict[str, Any] | None = None


MANIFEST = TypeAdapter(list[ManifestEntry])


def command_process(command: str, timeout: float | None = None) -> Process:
    """The processing function that runs `command` on each job (see the module's doc)."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("the pipeline command is empty")

    def process(
        job: ProcessingJob, outputs: Path, videos: list[tuple[UploadedVideo, Path]]
    ) -> list[OutputFile]:
        inputs = outputs.parent / INPUT_FOLDER
        job_file = write_job_file(job, videos, inputs)
        run_command(argv, inputs, outputs, job_file, timeout)
        return read_manifest(outputs)

    return process


def write_job_file(
    job: ProcessingJob, videos: list[tuple[UploadedVideo, Path]], inputs: Path
) -> Path:
    described = job.model_dump(mode="json", exclude={"videos"})
    described["videos"] = [
        {"camera": camera_name(index), "file": path.name, **video.model_dump(mode="json")}
        for index, (video, path) in enumerate(videos)
    ]
    inputs.mkdir(exist_ok=True)
    job_file = inputs / "job.json"
    job_file.write_text(json.dumps(described, indent=2))
    return job_file


def run_command(
    argv: list[str], inputs: Path, outputs: Path, job_file: Path, timeout: float | None
) -> None:
    env = {
        **os.environ,
        "OPENCAP_INPUT_DIR": str(inputs),
        "OPENCAP_OUTPUT_DIR": str(outputs),
        "OPENCAP_JOB_FILE": str(job_file),
    }
    stderr_file = outputs.parent / "command.stderr"
    with stderr_file.open("wb") as stderr:
        status = _wait([*argv, str(inputs), str(outputs)], env, outputs.parent, stderr, timeout)
    if status != 0:
        tail = stderr_file.read_text(errors="replace")[-STDERR_TAIL:].strip()
        raise failure(outputs, f"{argv[0]} exited with status {status}: {tail}")


def _wait(argv: list[str], env: dict, cwd: Path, stderr: Any, timeout: float | None) -> int:
    launch = [sys.executable, "-m", "pipeline.launch", *argv]
    try:
        with blocked(STOP_SIGNALS):  # until the child is in its own session (launch.py)
            proc = subprocess.Popen(
                launch,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
    except OSError as exc:
        raise ProcessingError(GENERIC_FAILURE, f"the pipeline command cannot start: {exc}") from exc
    with proc:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ProcessingError(
                "Processing took too long.", f"{argv[0]} was stopped after {timeout:g} s"
            ) from None


@contextlib.contextmanager
def blocked(signals: set[signal.Signals]) -> Iterator[None]:
    """`signals` blocked in this thread (the process's other threads still take them)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def failure(outputs: Path, dev_message: str) -> ProcessingError:
    """The error to report for a failed command: its own error.json messages if it wrote them."""
    try:
        written = json.loads((outputs / "error.json").read_text())
        user_message = str(written["error_msg"]).strip()
    except (OSError, ValueError, TypeError, KeyError):
        return ProcessingError(GENERIC_FAILURE, dev_message)
    if not user_message:
        return ProcessingError(GENERIC_FAILURE, dev_message)
    return ProcessingError(user_message, str(written.get("error_msg_dev") or dev_message))


def read_manifest(outputs: Path) -> list[OutputFile]:
    manifest = outputs / "manifest.json"
    try:
        entries = MANIFEST.validate_json(manifest.read_bytes())
    except OSError:
        raise ProcessingError(
            GENERIC_FAILURE, "the pipeline command wrote no manifest.json"
        ) from None
    except ValidationError as exc:
        raise ProcessingError(GENERIC_FAILURE, f"manifest.json is not valid: {exc}") from None
    return [_output_file(outputs, entry) for entry in entries]


def _output_file(outputs: Path, entry: ManifestEntry) -> OutputFile:
    path = (outputs / entry.file).resolve()
    if not path.is_relative_to(outputs.resolve()) or not path.is_file():
        raise ProcessingError(
            GENERIC_FAILURE,
            f"manifest.json names {entry.file!r}: no such file in the output folder",
        )
    return OutputFile(path, entry.tag, entry.device_id, entry.meta)
