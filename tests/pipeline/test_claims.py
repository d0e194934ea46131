"""Claims: a worker works on a job only with the session service's yes, acknowledges the job
at once and keeps its lease with heartbeats; a no drops the job; silence puts it back."""

import asyncio
import shutil
import threading
from uuid import uuid4

import pytest
from prometheus_client import REGISTRY

from pipeline.sdk import OutputFile, Worker
from shared.events import (
    JOB_QUEUES,
    ClaimReply,
    ProcessingCompleted,
    ProcessingHeartbeat,
    ProcessingStarted,
)
from tests.pipeline.support import (
    granted,
    held_delivery_is_cut,
    job_with,
    running,
    short_consumer_timeout,
    unacknowledged,
)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Recorder:
    """A processing function that records its calls and, if told to, waits for `release`."""

    def __init__(self, hold: bool = False):
        self.calls: list = []
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, job, workdir, videos) -> list[OutputFile]:
        self.calls.append(job.job_id)
        assert self.release.wait(30), "the test never released the job"
        return []


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl")
async def test_granted_job_is_acked_at_once_and_heartbeats_keep_its_lease(
    settings, broker, claims, amqp_url
):
    claims.decide = granted(lease_seconds=1)  # a heartbeat every 0.25 s
    job = job_with(uuid4(), [])
    await broker.submit(job)
    process = Recorder(hold=True)
    claimed_before = metric("pipeline_jobs_total", outcome="claimed")

    async with running(Worker(settings, process)):
        _, started = await broker.report()
        # Under way: the broker holds nothing of the job any more, delivered or not.
        assert unacknowledged(amqp_url, JOB_QUEUES["dynamic"]) == 0
        assert await broker.jobs_waiting() == 0
        assert metric("pipeline_current_job") == 1
        beats = [(await broker.report())[1] for _ in range(2)]
        process.release.set()
        rest = await broker.reports_until_final()

    ids = {"job_id": job.job_id, "trial_id": job.trial_id, "worker": "pytest-worker"}
    assert started == ProcessingStarted(**ids)
    assert beats == [ProcessingHeartbeat(**ids)] * 2
    assert set(rest[:-1]) <= {ProcessingHeartbeat(**ids)}
    assert rest[-1] == ProcessingCompleted(**ids, results=[])
    assert metric("pipeline_jobs_total", outcome="claimed") == claimed_before + 1
    assert metric("pipeline_current_job") == 0


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl")
async def test_a_job_longer_than_the_brokers_consumer_timeout_runs_once_to_its_end(
    settings, broker, claims, amqp_url
):
    """Known-failures 13: a delivery held unacknowledged past the consumer timeout is cut
    and redelivered; the worker acknowledges at its claim, so nothing is held."""
    claims.decide = granted(lease_seconds=1)
    job = job_with(uuid4(), [])
    await broker.submit(job)
    process = Recorder(hold=True)

    with short_consumer_timeout(1000):
        assert await held_delivery_is_cut(amqp_url)  # the shortened timeout bites
        async with running(Worker(settings, process)):
            await broker.report()  # started
            await asyncio.sleep(3)  # three consumer timeouts into the job
            process.release.set()
            final = (await broker.reports_until_final())[-1]

    ids = {"job_id": job.job_id, "trial_id": job.trial_id, "worker": "pytest-worker"}
    assert final == ProcessingCompleted(**ids, results=[])
    assert process.calls == [job.job_id]
    assert await broker.no_more_reports()
    assert await broker.jobs_waiting() == 0


async def test_refused_claim_drops_the_job_unprocessed(settings, broker, claims):
    claims.decide = lambda request: ClaimReply(granted=False, reason="held by gpu-2")
    job = job_with(uuid4(), [])
    await broker.submit(job)
    process = Recorder()

    async with running(Worker(settings, process)):
        await claims.until_asked(1)

    assert [request.job_id for request, _ in claims.requests] == [job.job_id]
    assert process.calls == []
    assert await broker.no_more_reports()
    assert await broker.jobs_waiting() == 0  # acknowledged, so gone for good


async def test_unanswered_claim_puts_the_job_back_unprocessed(settings, broker, claims):
    claims.decide = lambda request: None  # the session service is restarting
    job = job_with(uuid4(), [])
    await broker.submit(job)
    process = Recorder()
    settings = settings.model_copy(update={"claim_timeout_seconds": 0.2, "claim_attempts": 2})

    async with running(Worker(settings, process)):
        await claims.until_asked(3)  # two tries, then the job is back and taken again

    first, second, third = claims.requests[:3]
    assert {request.job_id for request, _ in claims.requests} == {job.job_id}
    assert first[1] == second[1] != third[1]  # one claim's retries share a correlation id
    assert process.calls == []
    assert await broker.no_more_reports()
    assert await broker.jobs_waiting() == 1


async def test_job_put_back_is_processed_once_the_session_service_answers(settings, broker, claims):
    claims.decide = lambda request: granted()(request) if len(claims.requests) > 2 else None
    job = job_with(uuid4(), [])
    await broker.submit(job)
    process = Recorder()
    settings = settings.model_copy(update={"claim_timeout_seconds": 0.2, "claim_attempts": 2})

    async with running(Worker(settings, process)):
        events = await broker.reports_until_final()

    assert len(claims.requests) == 3
    assert process.calls == [job.job_id]
    assert [event.type for event in events] == ["processing.started", "processing.completed"]
    assert await broker.jobs_waiting() == 0
