"""Keeping a job's lease: a heartbeat every quarter of the lease while the worker works.

The session service holds the lease a granted claim gave; each `processing.heartbeat`
renews it, and a trial whose heartbeats stop goes back to the queue. A heartbeat that
cannot be sent (the broker is away) is logged and the next one is tried on time: three
more chances before the lease runs out.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

log = structlog.get_logger()

Beat = Callable[[], Awaitable[None]]


def interval_for(lease_seconds: float) -> float:
    """Seconds between heartbeats for a lease (0: the lease needs none)."""
    return lease_seconds / 4 if lease_seconds > 0 else 0.0


@contextlib.asynccontextmanager
async def heartbeats(beat: Beat, interval: float) -> AsyncIterator[None]:
    """Call `beat()` every `interval` seconds while the block runs (never if interval is 0)."""
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(_beat_every(beat, interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _beat_every(beat: Beat, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await beat()
        except Exception as exc:
            log.warning("heartbeat_failed", error=repr(exc))
