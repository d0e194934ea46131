"""The results service records what the pipeline produced, once, and only what exists."""

from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from results_service.consumers import MissingResultObject, make_handlers
from results_service.models import Outbox, ProcessedEvent, Result
from shared.events import Envelope, ProcessingCompleted, ResultFile, ResultsRecorded, decode
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
