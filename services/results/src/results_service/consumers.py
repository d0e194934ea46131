"""Event handlers of the results service: record what the pipeline produced."""

import asyncio

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.models import Outbox, Result
from shared.db import utcnow
from shared.events import ProcessingCompleted, RecordedResult, ResultsRecorded
from shared.outbox import record
from shared.storage import Storage

PRODUCER = "results"


class MissingResultObject(Exception):
    pass


def make_handlers(storage: Storage) -> dict:
    async def on_processing_completed(tx: AsyncSession, event: ProcessingCompleted) -> None:
        """Store the results once every object they name is verified in storage."""
        for item in event.results:
            if await asyncio.to_thread(storage.size, item.key) is None:
                raise MissingResultObject(f"result object {item.key!r} is not in storage")
        now = utcnow()
        for item in event.results:
            stmt = insert(Result).values(
                trial_id=event.trial_id,
                tag=item.tag[:32],
                device_id=item.device_id,
                key=item.key,
                meta=item.meta,
                created_at=now,
                updated_at=now,
            )
            await tx.execute(stmt.on_conflict_do_nothing(index_elements=[Result.key]))
        keys = [item.key for item in event.results]
        rows = (await tx.scalars(select(Result).where(Result.key.in_(keys)))).all()
        recorded = [
            RecordedResult(
                result_id=r.id, tag=r.tag or "", device_id=r.device_id, key=r.key, meta=r.meta
            )
            for r in rows
        ]
        event_out = ResultsRecorded(trial_id=event.trial_id, results=recorded, complete=True)
        record(tx, Outbox, event_out, producer=PRODUCER)

    return {ProcessingCompleted: on_processing_completed}
