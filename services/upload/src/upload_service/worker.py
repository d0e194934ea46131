"""The upload service's worker process: `python -m upload_service.worker`.

Outbox relay, event consumers, and the periodic upload-deadline check."""

import asyncio

from shared.worker import run_worker
from upload_service.config import Settings
from upload_service.consumers import HANDLERS
from upload_service.janitor import deadline_job
from upload_service.models import Outbox, ProcessedEvent


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    asyncio.run(
        run_worker(
            settings,
            outbox=Outbox,
            processed=ProcessedEvent,
            handlers=HANDLERS,
            periodic={deadline_job(settings): settings.deadline_check_seconds},
        )
    )


if __name__ == "__main__":
    main()
