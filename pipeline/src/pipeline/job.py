"""One job's work: download the videos, run the processing function, upload its files.

The processing function's contract: `process(job, output_dir, videos) -> [OutputFile]`,
called in a worker thread with the trial's videos already on disk as
`<job folder>/input/Cam0.mov`, `Cam1.mov`, … (in the job's order) and an empty
`<job folder>/output` to write into. It raises `ProcessingError` for a failure users
should read about; anything else it raises is reported as an unexpected failure.
"""

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import structlog

from shared.events import (
    Event,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingJob,
    ResultFile,
    UploadedVideo,
)
from shared.messaging import is_outage
from shared.storage import Storage

log = structlog.get_logger()
SAFE_NAME = re.compile(r"[^A-Za-z0-9._]")
INPUT_FOLDER, OUTPUT_FOLDER = "input", "output"
GENERIC_FAILURE = "Processing failed unexpectedly."


@dataclass(frozen=True)
class OutputFile:
    path: Path
    tag: str
    device_id: str | None = None
    meta: dict[str, Any] | None = None


class ProcessingError(Exception):
    """A failure to report to the user: `user_message` is what the web app shows."""

    def __init__(self, user_message: str, dev_message: str = ""):
        super().__init__(user_message)
        self.user_message, self.dev_message = user_message, dev_message or user_message


Process = Callable[[ProcessingJob, Path, list[tuple[UploadedVideo, Path]]], list[OutputFile]]


def camera_name(index: int) -> str:
    """The original pipeline's name of the index-th camera of a trial: `Cam0`, `Cam1`, …"""
    return f"Cam{index}"


def result_key(trial_id: Any, path: Path) -> str:
    """`results/<trial>/<uuid4>-<name>`: the file name after the last '-', as clients parse it."""
    name = SAFE_NAME.sub("", path.name) or "result"
    return f"results/{trial_id}/{uuid4()}-{name}"


def perform(storage: Storage, process: Process, job: ProcessingJob, worker: str) -> Event:
    """Do the job (blocking: call it in a thread) and return the event that reports it."""
    ids = {"job_id": job.job_id, "trial_id": job.trial_id, "worker": worker}
    try:
        with tempfile.TemporaryDirectory(prefix="opencap-job-") as folder:
            results = _work(storage, process, job, Path(folder))
    except ProcessingError as exc:
        log.warning("job_failed", error=exc.dev_message)
        return ProcessingFailed(**ids, error_msg=exc.user_message, error_msg_dev=exc.dev_message)
    except Exception as exc:
        log.exception("job_crashed")
        return ProcessingFailed(
            **ids, error_msg=GENERIC_FAILURE, error_msg_dev=repr(exc), retry=is_outage(exc)
        )
    log.info("job_completed", results=len(results))
    return ProcessingCompleted(**ids, results=results)


def _work(storage: Storage, process: Process, job: ProcessingJob, folder: Path) -> list[ResultFile]:
    inputs, outputs = folder / INPUT_FOLDER, folder / OUTPUT_FOLDER
    inputs.mkdir()
    outputs.mkdir()
    videos = []
    for index, video in enumerate(job.videos):
        path = inputs / f"{camera_name(index)}{Path(video.key).suffix or '.mov'}"
        storage.download_file(video.key, str(path))
        videos.append((video, path))
    results = []
    for output in process(job, outputs, videos):
        key = result_key(job.trial_id, output.path)
        with output.path.open("rb") as handle:
            storage.upload_fileobj(handle, key)
        results.append(
            ResultFile(tag=output.tag, device_id=output.device_id, key=key, meta=output.meta)
        )
    return results
