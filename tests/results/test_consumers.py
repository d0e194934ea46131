"""The results service records what the pipeline produced, once, and only what exists: a
job's results replace the trial's earlier ones, and only the trial's current job counts."""

from collections import Counter
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from results_service.consumers import MissingResultObject, make_handlers
from results_service.models import Outbox, ProcessedEvent, Result
from shared.events import (
    Envelope,
    ProcessingCompleted,
    ResultFile,
    ResultsRecorded,
    TrialQueued,
    decode,
)
from shared.messaging import claim


@pytest.fixture
def on_completed(storage):
    return make_handlers(storage)[ProcessingCompleted]


def stored(storage, trial_id: UUID, name: str, data: bytes = b"{}") -> str:
    key = f"results/{trial_id}/{uuid4()}-{name}"
    storage.put_bytes(key, data, "application/octet-stream")
    return key


def completion(trial_id: UUID, results: list[ResultFile]) -> ProcessingCompleted:
    return ProcessingCompleted(job_id=uuid4(), trial_id=trial_id, worker="w-1", results=results)


def camera_results(storage, trial_id: UUID) -> list[ResultFile]:
    return [
        ResultFile(
            tag="video_facts",
            device_id="Cam0",
            key=stored(storage, trial_id, "videoFacts_Cam0.json", b'{"frame_count": 30}'),
            meta={"frame_count": 30},
        ),
        ResultFile(
            tag="thumbnail",
            device_id="Cam0",
            key=stored(storage, trial_id, "thumbnail_Cam0.jpg", b"\xff\xd8jpeg"),
        ),
    ]


async def results_of(tx, trial_id: UUID) -> list[Result]:
    query = select(Result).where(Result.trial_id == trial_id).order_by(Result.id)
    return list((await tx.scalars(query)).all())


async def recorded(tx) -> list[ResultsRecorded]:
    rows = (await tx.scalars(select(Outbox).order_by(Outbox.id))).all()
    return [decode(Envelope.model_validate(row.body)) for row in rows]


async def deliver(tx, handler, event: ProcessingCompleted, envelope_id: UUID) -> None:
    """What shared.messaging.Consumer does with one delivery, inside the test's transaction."""
    if await claim(tx, ProcessedEvent, envelope_id):
        await handler(tx, event)


async def test_completion_records_one_result_per_file(tx, storage, on_completed):
    trial_id = uuid4()
    files = camera_results(storage, trial_id)

    await on_completed(tx, completion(trial_id, files))

    rows = await results_of(tx, trial_id)
    assert [(r.tag, r.device_id, r.key, r.meta) for r in rows] == [
        ("video_facts", "Cam0", files[0].key, {"frame_count": 30}),
        ("thumbnail", "Cam0", files[1].key, None),
    ]
    assert all(r.created_at == r.updated_at for r in rows)


async def test_completion_emits_results_recorded_with_the_result_ids(tx, storage, on_completed):
    trial_id = uuid4()
    files = camera_results(storage, trial_id)

    await on_completed(tx, completion(trial_id, files))

    rows = await results_of(tx, trial_id)
    [event] = await recorded(tx)
    assert isinstance(event, ResultsRecorded)
    assert event.trial_id == trial_id and event.complete is True
    assert sorted((r.result_id, r.tag, r.key, r.meta) for r in event.results) == sorted(
        (r.id, r.tag, r.key, r.meta) for r in rows
    )
    [row] = (await tx.scalars(select(Outbox))).all()
    assert (row.routing_key, row.body["producer"]) == ("results.recorded", "results")


async def test_same_completion_delivered_twice_is_recorded_once(tx, storage, on_completed):
    trial_id = uuid4()
    event, envelope_id = completion(trial_id, camera_results(storage, trial_id)), uuid4()

    await deliver(tx, on_completed, event, envelope_id)
    await deliver(tx, on_completed, event, envelope_id)

    assert len(await results_of(tx, trial_id)) == 2
    assert len(await recorded(tx)) == 1


async def test_same_results_reported_again_do_not_duplicate_rows(tx, storage, on_completed):
    """Even past the dedupe record (a second report of the same job), rows stay unique."""
    trial_id = uuid4()
    event = completion(trial_id, camera_results(storage, trial_id))

    await on_completed(tx, event)
    await on_completed(tx, event)

    rows = await results_of(tx, trial_id)
    assert len(rows) == 2
    first, second = await recorded(tx)
    assert {r.result_id for r in second.results} == {r.result_id for r in first.results}


async def test_result_missing_from_storage_records_nothing(tx, storage, on_completed):
    trial_id = uuid4()
    files = [
        *camera_results(storage, trial_id),
        ResultFile(tag="video_facts", device_id="Cam1", key=f"results/{trial_id}/never-put.json"),
    ]

    with pytest.raises(MissingResultObject, match="never-put.json"):
        await on_completed(tx, completion(trial_id, files))

    assert await results_of(tx, trial_id) == []
    assert await recorded(tx) == []


async def test_empty_result_file_is_still_recorded(tx, storage, on_completed):
    trial_id = uuid4()
    key = stored(storage, trial_id, "log.txt", b"")

    await on_completed(tx, completion(trial_id, [ResultFile(tag="log", key=key)]))

    assert [r.key for r in await results_of(tx, trial_id)] == [key]


async def test_completion_without_results_still_reports_the_trial_complete(tx, on_completed):
    trial_id = uuid4()

    await on_completed(tx, completion(trial_id, []))

    assert await results_of(tx, trial_id) == []
    [event] = await recorded(tx)
    assert (event.trial_id, event.results, event.complete) == (trial_id, [], True)


# ── replace semantics: reprocessing, redelivery, stale jobs ─────────────────────────


def queued(trial_id: UUID, job_id: UUID, session_id: UUID | None = None) -> TrialQueued:
    return TrialQueued(trial_id=trial_id, session_id=session_id or uuid4(), job_id=job_id)


def job_output(storage, trial_id: UUID, job_id: UUID, *names: str) -> ProcessingCompleted:
    files = [
        ResultFile(tag="marker_data", device_id="all", key=stored(storage, trial_id, n))
        for n in names
    ]
    return ProcessingCompleted(job_id=job_id, trial_id=trial_id, worker="w-1", results=files)


async def test_reprocessing_replaces_the_earlier_results(tx, storage, handlers):
    trial_id, first_job, second_job = uuid4(), uuid4(), uuid4()
    await handlers[TrialQueued](tx, queued(trial_id, first_job))
    await handlers[ProcessingCompleted](
        tx, job_output(storage, trial_id, first_job, "a.trc", "b.trc")
    )
    await handlers[TrialQueued](tx, queued(trial_id, second_job))
    second = job_output(storage, trial_id, second_job, "c.trc")

    await handlers[ProcessingCompleted](tx, second)

    assert [r.key for r in await results_of(tx, trial_id)] == [second.results[0].key]
    last = (await recorded(tx))[-1]
    assert (last.job_id, last.replace, last.complete) == (second_job, True, True)
    assert [r.key for r in last.results] == [second.results[0].key]


async def test_a_completion_of_a_superseded_job_changes_nothing(tx, storage, handlers):
    trial_id, old_job, current_job = uuid4(), uuid4(), uuid4()
    await handlers[TrialQueued](tx, queued(trial_id, old_job))
    await handlers[TrialQueued](tx, queued(trial_id, current_job))
    await handlers[ProcessingCompleted](tx, job_output(storage, trial_id, current_job, "new.trc"))
    before = [(r.id, r.key) for r in await results_of(tx, trial_id)]

    await handlers[ProcessingCompleted](tx, job_output(storage, trial_id, old_job, "old.trc"))

    assert [(r.id, r.key) for r in await results_of(tx, trial_id)] == before
    assert len(await recorded(tx)) == 1


async def test_redelivered_completion_of_the_current_job_leaves_one_row_per_result(
    tx, storage, handlers
):
    """known-failures 13: the same job reported again (a new envelope, past the dedupe)."""
    trial_id, job_id = uuid4(), uuid4()
    await handlers[TrialQueued](tx, queued(trial_id, job_id))
    event = job_output(storage, trial_id, job_id, "a.trc", "b.trc")

    await deliver(tx, handlers[ProcessingCompleted], event, uuid4())
    first_ids = [r.id for r in await results_of(tx, trial_id)]
    await deliver(tx, handlers[ProcessingCompleted], event, uuid4())

    rows = await results_of(tx, trial_id)
    assert [r.id for r in rows] == first_ids
    assert Counter((r.trial_id, r.tag, r.device_id, r.key) for r in rows).most_common(1)[0][1] == 1
    first, second = await recorded(tx)
    assert [r.result_id for r in second.results] == [r.result_id for r in first.results]


async def test_a_file_listed_twice_in_a_manifest_is_one_result(tx, storage, on_completed):
    trial_id = uuid4()
    item = ResultFile(tag="ik_results", device_id="all", key=stored(storage, trial_id, "t.mot"))

    await on_completed(tx, completion(trial_id, [item, item]))

    assert len(await results_of(tx, trial_id)) == 1


async def test_completion_for_a_trial_never_queued_is_recorded(tx, storage, handlers):
    trial_id = uuid4()

    await handlers[ProcessingCompleted](tx, job_output(storage, trial_id, uuid4(), "a.trc"))

    assert len(await results_of(tx, trial_id)) == 1


async def test_a_requeue_without_a_job_id_accepts_any_later_completion(tx, storage, handlers):
    trial_id = uuid4()
    await handlers[TrialQueued](tx, queued(trial_id, uuid4()))
    await handlers[TrialQueued](tx, TrialQueued(trial_id=trial_id, session_id=uuid4()))

    await handlers[ProcessingCompleted](tx, job_output(storage, trial_id, uuid4(), "a.trc"))

    assert len(await results_of(tx, trial_id)) == 1


async def test_a_superseded_job_is_ignored_even_if_its_objects_are_gone(tx, handlers):
    """No retries or dead letters for a stale job whose objects were cleaned up."""
    trial_id = uuid4()
    await handlers[TrialQueued](tx, queued(trial_id, uuid4()))
    gone = ResultFile(tag="marker_data", key=f"results/{trial_id}/deleted.trc")

    await handlers[ProcessingCompleted](tx, completion(trial_id, [gone]))

    assert (await results_of(tx, trial_id), await recorded(tx)) == ([], [])
