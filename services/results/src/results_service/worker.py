"""The results service's worker process: `python -m results_service.worker`.

Outbox relay, event consumers (results, projections, identities), and the periodic jobs
that build requested session archives and delete expired ones."""

import asyncio

from results_service.archives import archive_job, cleanup_job
from results_service.config import Settings
from results_service.consumers import make_handlers
from results_service.models import Outbox, ProcessedEvent
from shared.storage import Storage
from shared.worker import run_worker


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    storage = Storage(settings)
    periodic = {
        archive_job(storage, settings): settings.archive_poll_seconds,
        cleanup_job(storage, settings): settings.archive_cleanup_seconds,
    }
    asyncio.run(
        run_worker(
            settings,
            outbox=Outbox,
            processed=ProcessedEvent,
            handlers=make_handlers(storage),
            periodic=periodic,
        )
    )


if __name__ == "__main__":
    main()
