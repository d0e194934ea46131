"""The reference worker as the process that deployments run (`python -m pipeline.reference`):
settings from the environment, metrics on METRICS_PORT, an external PIPELINE_COMMAND, and a
SIGTERM to its process group while a job is under way."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from uuid import uuid4

import httpx

from shared.events import ProcessingCompleted, ProcessingStarted
from tests.conftest import ROOT
from tests.pipeline.support import job_with, put_videos

# Says it runs, waits until the test lets it go (its own two arguments come first, the
# SDK's two folders after them), then posts one file.
PIPELINE = """
import json, pathlib, sys, time
running, go, inputs, outputs = map(pathlib.Path, sys.argv[1:5])
running.touch()
while not go.exists():
    time.sleep(0.02)
(outputs / "cameras.txt").write_text(" ".join(sorted(p.name for p in inputs.iterdir())))
manifest = [{"file": "cameras.txt", "tag": "cameras", "device_id": "all", "meta": {"n": 1}}]
(outputs / "manifest.json").write_text(json.dumps(manifest))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def scrape(port: int, process: subprocess.Popen, timeout: float = 30.0) -> str:
    """The worker's metrics page, once it serves one (it does once connected)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            assert process.poll() is None, "the worker exited"
            try:
                return (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                assert loop.time() < deadline, "no metrics endpoint"
                await asyncio.sleep(0.1)


async def until_exists(path: Path, process: subprocess.Popen, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(path.exists):
        assert process.poll() is None, "the worker exited"
        assert loop.time() < deadline, f"no {path.name}"
        await asyncio.sleep(0.02)


def worker_process(
    settings, tmp_path: Path, port: int, running: Path, go: Path
) -> subprocess.Popen:
    command = tmp_path / "pipeline.py"
    command.write_text(textwrap.dedent(PIPELINE))
    env = {
        **os.environ,
        "AMQP_URL": settings.amqp_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "S3_BUCKET": settings.s3_bucket,
        "WORKER_NAME": "gpu-7",
        "WORKER_TYPE": "dynamic",
        "POLL_SECONDS": "0.05",
        "METRICS_PORT": str(port),
        "PIPELINE_COMMAND": f"{sys.executable} {command} {running} {go}",
        "LOG_JSON": "false",
    }
    argv = [sys.executable, "-m", "pipeline.reference"]
    return subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)


async def test_sigterm_to_the_workers_group_lets_the_command_finish_the_job(
    settings, broker, claims, storage, clips, tmp_path
):
    trial_id = uuid4()
    job = job_with(trial_id, put_videos(storage, clips, trial_id))
    await broker.submit(job)
    port, running, go = free_port(), tmp_path / "running", tmp_path / "go"
    worker = worker_process(settings, tmp_path, port, running, go)
    try:
        _, started = await broker.report()
        during = await scrape(port, worker)
        await until_exists(running, worker)
        os.killpg(worker.pid, signal.SIGTERM)  # as `dev.stack down` and container stops do
        await asyncio.sleep(0.2)  # (a command that died of it would have reported by now)
        go.touch()
        _, completed = await broker.report()
        exit_status = await asyncio.to_thread(worker.wait, 30)
    finally:
        go.touch()
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert started == ProcessingStarted(job_id=job.job_id, trial_id=trial_id, worker="gpu-7")
    assert "pipeline_current_job 1.0" in during
    assert 'pipeline_jobs_total{outcome="claimed"} 1.0' in during
    assert isinstance(completed, ProcessingCompleted)
    ((result),) = completed.results
    assert (result.tag, result.device_id, result.meta) == ("cameras", "all", {"n": 1})
    assert storage.client.get_object(Bucket=storage.bucket, Key=result.key)["Body"].read() == (
        b"Cam0.mov Cam1.mov job.json"
    )
    assert exit_status == 0
