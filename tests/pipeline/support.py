"""The test's side of RabbitMQ for the worker SDK: it queues jobs, answers claims the way
the session service does (a tiny stand-in for its claim server) and reads the reports."""

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import aio_pika
import pytest

from pipeline.sdk import Worker
from shared.db import utcnow
from shared.events import (
    CLAIMS_QUEUE,
    JOB_QUEUES,
    JOBS_EXCHANGE,
    ClaimReply,
    ClaimRequest,
    Envelope,
    Event,
    ProcessingJob,
    UploadedVideo,
    decode,
)
from shared.messaging import publish_envelope

FINAL = ("processing.completed", "processing.failed")


def kind_of(job: ProcessingJob) -> str:
    """The queue the session service puts a job on."""
    if job.is_mono:
        return "mono"
    return "setup" if job.trial_type in ("calibration", "static") else "dynamic"


class Broker:
    """Queues jobs, reads the pipeline's reports (every `processing.*` event)."""

    def __init__(self, channel, reports):
        self.channel, self.reports = channel, reports

    async def submit(self, job: ProcessingJob, kind: str | None = None) -> None:
        envelope = Envelope.wrap(
            job, producer="session", occurred_at=utcnow(), correlation_id="corr-7"
        )
        jobs = await self.channel.get_exchange(JOBS_EXCHANGE)
        await publish_envelope(jobs, envelope, kind or kind_of(job))

    async def report(self, timeout: float = 30.0) -> tuple[Envelope, Event]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            message = await self.reports.get(fail=False, no_ack=True)
            if message is not None:
                envelope = Envelope.model_validate_json(message.body)
                assert message.routing_key == envelope.type
                return envelope, decode(envelope)
            await asyncio.sleep(0.02)
        pytest.fail(f"no report from the worker within {timeout} s")

    async def reports_until_final(self) -> list[Event]:
        """Every report up to and including a `processing.completed` or `.failed`."""
        events = []
        while not events or events[-1].type not in FINAL:
            events.append((await self.report())[1])
        return events

    async def no_more_reports(self) -> bool:
        return await self.reports.get(fail=False) is None

    async def jobs_waiting(self, kind: str = "dynamic") -> int:
        """Jobs ready in a queue (an unacknowledged one counts once its channel is gone)."""
        declared = await self.channel.declare_queue(JOB_QUEUES[kind], passive=True)
        return declared.declaration_result.message_count


def granted(lease_seconds: int = 60) -> Callable[[ClaimRequest], ClaimReply]:
    return lambda request: ClaimReply(granted=True, lease_seconds=lease_seconds)


class ClaimResponder:
    """Answers each claim on CLAIMS_QUEUE with `decide(request)`; None means stay silent."""

    def __init__(self, channel, decide: Callable[[ClaimRequest], ClaimReply | None]):
        self.channel, self.decide = channel, decide
        self.requests: list[tuple[ClaimRequest, str]] = []  # with their correlation ids

    async def start(self) -> "ClaimResponder":
        queue = await self.channel.declare_queue(CLAIMS_QUEUE, durable=True)
        await queue.purge()
        await queue.consume(self._answer)
        return self

    async def _answer(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            request = ClaimRequest.model_validate_json(message.body)
            self.requests.append((request, message.correlation_id))
            reply = self.decide(request)
            if reply is not None:
                answer = aio_pika.Message(
                    reply.model_dump_json().encode(), correlation_id=message.correlation_id
                )
                await self.channel.default_exchange.publish(answer, routing_key=message.reply_to)

    async def until_asked(self, times: int, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.requests) < times:
            assert loop.time() < deadline, f"{len(self.requests)} claims, expected {times}"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task]:
    """Run `worker` as a task, then stop it the way SIGTERM does and wait until it is done."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stopping.set()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            # If it failed early, give pytest its Ctrl-C back.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def put_videos(storage, clips: list[Path], trial_id: UUID) -> list[UploadedVideo]:
    videos = []
    for clip in clips:
        video = UploadedVideo(
            video_id=uuid4(),
            device_id=uuid4(),
            key=f"videos/{trial_id}/{uuid4()}.mov",
            parameters={"model": "iPhone13,3"},
        )
        storage.put_bytes(video.key, clip.read_bytes(), "video/quicktime")
        videos.append(video)
    return videos


def job_with(
    trial_id: UUID, videos: list[UploadedVideo], trial_type: str = "dynamic", **fields
) -> ProcessingJob:
    names = {"calibration": "calibration", "static": "neutral", "dynamic": "walking"}
    return ProcessingJob(
        job_id=uuid4(),
        trial_id=trial_id,
        session_id=uuid4(),
        trial_name=names[trial_type],
        trial_type=trial_type,
        videos=videos,
        **fields,
    )


def unacknowledged(amqp_url: str, queue: str) -> int:
    """Messages of `queue` delivered and not yet acknowledged (only rabbitmqctl tells)."""
    vhost = urlsplit(amqp_url).path.lstrip("/") or "/"
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    ).stdout
    counts = dict(line.split("\t") for line in listed.splitlines() if "\t" in line)
    return int(counts[queue])


def _broker_env(expression: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", "eval", expression],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    return done.stdout.strip()


@contextlib.contextmanager
def short_consumer_timeout(milliseconds: int):
    """The broker's consumer timeout, shortened for the channels opened meanwhile and
    checked every 0.2 s (instead of every minute); its settings come back afterwards."""
    changes = {"consumer_timeout": milliseconds, "channel_tick_interval": 200}
    before = {key: _broker_env(f"application:get_env(rabbit, {key}).") for key in changes}
    try:
        for key, value in changes.items():
            _broker_env(f"application:set_env(rabbit, {key}, {value}).")
        yield
    finally:
        for key, value in before.items():  # "{ok,60000}", or "undefined"
            if value.startswith("{ok,"):
                _broker_env(f"application:set_env(rabbit, {key}, {value[4:-1]}).")
            else:
                _broker_env(f"application:unset_env(rabbit, {key}).")


async def held_delivery_is_cut(amqp_url: str, within: float = 5.0) -> bool:
    """Whether the broker closes a channel that holds a delivery unacknowledged."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"held"), routing_key=queue.name)
        await queue.get(no_ack=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.closed(), within)
        return channel.is_closed
