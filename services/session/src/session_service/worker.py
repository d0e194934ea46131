"""The session service's worker process: `python -m session_service.worker`."""

import asyncio

from session_service.config import Settings
from session_service.consumers import HANDLERS
from session_service.models import Outbox, ProcessedEvent
from shared.messaging import declare_jobs
from shared.worker import run_worker


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    asyncio.run(
        run_worker(
            settings,
            outbox=Outbox,
            processed=ProcessedEvent,
            handlers=HANDLERS,
            declare=declare_jobs,
        )
    )


if __name__ == "__main__":
    main()
