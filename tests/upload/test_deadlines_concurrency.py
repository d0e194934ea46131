"""Several upload workers checking deadlines at once page through every overdue trial and
announce each exactly once. These tests commit, and delete their rows at the end."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_sessionmaker, transactions, utcnow
from tests.upload.conftest import Trial, joined_trial
from upload_service import consumers
from upload_service.config import Settings
from upload_service.janitor import time_out_overdue
from upload_service.models import Outbox, UploadTrial, Video

TRIALS = 11


@pytest.fixture
async def overdue(engine: AsyncEngine) -> AsyncIterator[list[Trial]]:
    """Committed trials whose camera sets became final, none of their videos uploaded."""
    db = create_sessionmaker(engine)
    trials = []
    for _ in range(TRIALS):
        async with db() as tx, tx.begin():
            trial = await joined_trial(tx, phones=2)
            await consumers.on_cameras_final(tx, trial.final)
        trials.append(trial)
    yield trials
    async with db() as tx, tx.begin():
        ids = [trial.trial_id for trial in trials]
        await tx.execute(delete(Video).where(Video.trial_id.in_(ids)))
        await tx.execute(delete(UploadTrial).where(UploadTrial.id.in_(ids)))
        of_trials = Outbox.body["data"]["trial_id"].astext.in_([str(i) for i in ids])
        await tx.execute(delete(Outbox).where(of_trials))


async def timed_out(engine: AsyncEngine, trials: list[Trial]) -> Counter:
    async with create_sessionmaker(engine)() as tx:
        stmt = select(Outbox.body).where(Outbox.routing_key == "upload.timed_out")
        bodies = (await tx.scalars(stmt)).all()
    ours = {str(trial.trial_id) for trial in trials}
    return Counter(b["data"]["trial_id"] for b in bodies if b["data"]["trial_id"] in ours)


async def test_three_workers_at_once_time_out_every_trial_exactly_once(
    engine, overdue, settings: Settings
):
    paging = settings.model_copy(update={"deadline_batch_size": 2})
    later = utcnow() + timedelta(hours=1)
    workers = [transactions(create_sessionmaker(engine)) for _ in range(3)]

    counts = await asyncio.gather(*(time_out_overdue(w, paging, later) for w in workers))
    again = await time_out_overdue(workers[0], paging, later)

    assert sum(counts) >= TRIALS and again == 0
    assert await timed_out(engine, overdue) == {str(t.trial_id): 1 for t in overdue}


async def test_one_worker_pages_through_more_trials_than_a_batch(engine, overdue, settings):
    paging = settings.model_copy(update={"deadline_batch_size": 3})
    later = utcnow() + timedelta(hours=1)

    await time_out_overdue(transactions(create_sessionmaker(engine)), paging, later)

    assert await timed_out(engine, overdue) == {str(t.trial_id): 1 for t in overdue}
