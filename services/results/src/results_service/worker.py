"""The results service's worker process: `python -m results_service.worker`."""

import asyncio

from results_service.config import Settings
from results_service.consumers import make_handlers
from results_service.models import Outbox, ProcessedEvent
from shared.storage import Storage
from shared.worker import run_worker


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    handlers = make_handlers(Storage(settings))
    asyncio.run(run_worker(settings, outbox=Outbox, processed=ProcessedEvent, handlers=handlers))


if __name__ == "__main__":
    main()
