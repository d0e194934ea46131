"""Fixtures of the pipeline's tests: real clips made with ffmpeg (once per run), the worker's
settings, and the test's side of RabbitMQ (jobs in, claims answered, reports out)."""

from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from dev.videos import make_clip
from pipeline.sdk import PipelineSettings
from shared.events import EVENTS_EXCHANGE
from shared.messaging import declare_events, declare_jobs
from tests.pipeline.support import Broker, ClaimResponder, granted

SECONDS, FPS, SIZE = 1.0, 30, (320, 240)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list[Path]:
    """Two cameras' clips: 1.0 s at 30 fps, 320x240, H.264 in a .mov."""
    folder = tmp_path_factory.mktemp("clips")
    return [
        make_clip(
            folder / f"camera{camera}.mov", camera=camera, seconds=SECONDS, fps=FPS, size=SIZE
        )
        for camera in range(2)
    ]


@pytest.fixture
def settings(s3_settings, amqp_url) -> PipelineSettings:
    return PipelineSettings(
        **s3_settings.model_dump(),
        amqp_url=amqp_url,
        worker_name="pytest-worker",
        log_json=False,
        metrics_port=0,
        poll_seconds=0.05,
        claim_timeout_seconds=5.0,
        claim_attempts=2,
    )


@pytest.fixture
async def broker(amqp_url) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await declare_events(channel)
    for queue in (await declare_jobs(channel)).values():
        await queue.purge()
    reports = await channel.declare_queue(exclusive=True, auto_delete=True)
    await reports.bind(EVENTS_EXCHANGE, routing_key="processing.*")
    yield Broker(channel, reports)
    await connection.close()


@pytest.fixture
async def claims(broker) -> ClaimResponder:
    """The session service's claim server, granting every claim a 60 s lease unless the
    test sets `claims.decide` to another rule."""
    return await ClaimResponder(broker.channel, granted(60)).start()
