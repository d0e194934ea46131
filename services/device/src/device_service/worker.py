"""The device service's worker process: `python -m device_service.worker`."""

import asyncio

from device_service.config import Settings
from device_service.consumers import HANDLERS
from device_service.models import Outbox, ProcessedEvent
from shared.worker import run_worker


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    asyncio.run(run_worker(settings, outbox=Outbox, processed=ProcessedEvent, handlers=HANDLERS))


if __name__ == "__main__":
    main()
