"""Which jobs a worker takes, in which order, and how it stops."""

import asyncio
import os
import signal
import threading
from uuid import uuid4

import pytest
from pydantic import ValidationError

from pipeline.sdk import OutputFile, PipelineSettings, Worker
from shared.events import WORKER_TYPES, ProcessingCompleted, ProcessingStarted
from tests.pipeline.support import job_with, running


def nothing(job, workdir, videos) -> list[OutputFile]:
    return []


async def test_calibration_and_neutral_jobs_go_before_a_dynamic_job_queued_earlier(
    settings, broker, claims
):
    walking = job_with(uuid4(), [], "dynamic")
    calibration = job_with(uuid4(), [], "calibration")
    neutral = job_with(uuid4(), [], "static")
    for job in (walking, calibration, neutral):
        await broker.submit(job)

    async with running(Worker(settings, nothing)):
        events = [event for _ in range(3) for event in await broker.reports_until_final()]

    started = [event.job_id for event in events if isinstance(event, ProcessingStarted)]
    assert started == [calibration.job_id, neutral.job_id, walking.job_id]


def one_job_per_queue() -> dict:
    return {
        "setup": job_with(uuid4(), [], "calibration"),
        "dynamic": job_with(uuid4(), [], "dynamic"),
        "mono": job_with(uuid4(), [], "dynamic", is_mono=True),
    }


def test_an_unknown_worker_type_is_refused_at_start(settings):
    with pytest.raises(ValidationError, match="WORKER_TYPE must be among: all, calibration, dyn"):
        PipelineSettings(**settings.model_dump(exclude={"worker_type"}), worker_type="gpu")


@pytest.mark.parametrize("worker_type", list(WORKER_TYPES))
async def test_a_worker_takes_only_the_jobs_of_its_type(settings, broker, claims, worker_type):
    jobs = one_job_per_queue()
    for job in jobs.values():
        await broker.submit(job)
    kinds = WORKER_TYPES[worker_type]

    async with running(Worker(settings.model_copy(update={"worker_type": worker_type}), nothing)):
        completed = [(await broker.reports_until_final())[-1] for _ in kinds]

    assert {event.job_id for event in completed} == {jobs[kind].job_id for kind in kinds}
    assert {request.job_id for request, _ in claims.requests} == {jobs[k].job_id for k in kinds}
    for kind in jobs:
        assert await broker.jobs_waiting(kind) == (0 if kind in kinds else 1)


async def test_sigterm_during_a_job_finishes_it_and_takes_no_other(settings, broker, claims):
    release = threading.Event()

    def slow(job, workdir, videos) -> list[OutputFile]:
        assert release.wait(30), "the test never released the job"
        return []

    first, second = job_with(uuid4(), []), job_with(uuid4(), [])
    await broker.submit(first)
    await broker.submit(second)
    worker = Worker(settings, slow)
    task = asyncio.create_task(worker.run())
    try:
        _, started = await broker.report()
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's own handler catches it
        await asyncio.wait_for(worker.stopping.wait(), 30)
        release.set()
        _, completed = await broker.report()
        await asyncio.wait_for(task, 30)  # it stops by itself once the job is reported
    finally:
        release.set()
        worker.stopping.set()
        await asyncio.wait_for(task, 30)

    assert started.job_id == completed.job_id == first.job_id
    assert isinstance(completed, ProcessingCompleted)
    assert [request.job_id for request, _ in claims.requests] == [first.job_id]
    assert await broker.jobs_waiting() == 1


def test_a_worker_may_take_several_kinds_of_jobs_in_order():
    from pipeline.sdk import job_kinds

    assert job_kinds("all,mono") == ["setup", "dynamic", "mono"]
    assert job_kinds("calibration,all") == ["setup", "dynamic"]
