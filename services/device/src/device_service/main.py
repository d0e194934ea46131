"""The device service's API process: `uvicorn device_service.main:create_app --factory`.

The app holds the read model (`app.state.read_model`); at startup it subscribes to the
events, loads the database and keeps re-reading recent changes (`feed.py`, `snapshot.py`).
"""

import asyncio
import gc
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from device_service.api import router
from device_service.config import Settings
from device_service.feed import Feed
from device_service.poll import ROUTE, PollFastPath, StatusPoll
from device_service.read_model import ReadModel
from device_service.snapshot import Resync
from shared.app import create_service_app


class DeviceApp:
    """The device API as uvicorn runs it: the phones' poll answered by a bare ASGI handler
    before FastAPI (whose own request handling costs more than the poll), everything else
    by the FastAPI app, whose attributes (`state`, `router`, ...) this object passes on."""

    def __init__(self, app: FastAPI, poll: StatusPoll):
        self.app = app
        self.handle = PollFastPath(app, poll)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


class Replica:
    """What the API process runs beside its requests: the read model's subscription, its
    startup load and its periodic re-read, and the presence it tells other replicas."""

    def __init__(self, settings: Settings, read_model: ReadModel):
        self.settings, self.read_model = settings, read_model
        self.feed = Feed(settings.amqp_url, read_model, settings.presence_seconds)
        self.tasks: list[asyncio.Task] = []

    async def start(self, app: FastAPI) -> None:
        settings, feed = self.settings, self.feed
        self.read_model.db = app.state.db
        feed.resync = Resync(
            self.read_model,
            app.state.db,
            settings.read_model_resync_seconds,
            settings.read_model_resync_overlap_seconds,
        )
        await feed.start()  # listen first: nothing published during the load is lost
        await feed.resync.load(timedelta(days=settings.read_model_window_days))
        gc.freeze()  # what was loaded lives long: keep it out of the collector's full passes
        self.tasks = [asyncio.create_task(job) for job in (feed.resync.run(), feed.tell_presence())]

    async def stop(self, app: FastAPI) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.feed.close()


def create_app(settings: Settings | None = None) -> DeviceApp:
    settings = settings or Settings()
    read_model = ReadModel()
    replica = Replica(settings, read_model)
    app = create_service_app(
        settings,
        [router],
        on_startup=replica.start,
        on_shutdown=replica.stop,
        quiet_routes=frozenset({ROUTE}),
    )
    app.state.read_model = read_model
    app.state.poll = StatusPoll(read_model, settings.public_base, settings.long_poll_max_seconds)
    return DeviceApp(app, app.state.poll)
