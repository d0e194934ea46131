"""The upload service's worker process: `python -m upload_service.worker`.

Outbox relay, event consumers, and the periodic jobs: the upload-deadline check and the
removal of old upload keys that were never used."""

import asyncio

from shared.storage import Storage
from shared.worker import run_worker
from upload_service.config import Settings
from upload_service.consumers import handlers
from upload_service.janitor import deadline_job, unused_keys_job
from upload_service.models import Outbox, ProcessedEvent


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    asyncio.run(
        run_worker(
            settings,
            outbox=Outbox,
            processed=ProcessedEvent,
            handlers=handlers(Storage(settings)),
            periodic={
                deadline_job(settings): settings.deadline_check_seconds,
                unused_keys_job(settings): settings.unused_key_check_seconds,
            },
        )
    )


if __name__ == "__main__":
    main()
