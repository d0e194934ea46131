"""Processing as the session service runs it: one job per trial on the queue of its kind,
one worker at a time (a claim and a lease), the stock pipeline's HTTP dequeue over the same
state, lapsed leases, reprocessing (known-failures 11, 12, 13, 16)."""

import asyncio
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import select, update

from session_service import consumers, processing
from session_service.models import Outbox, Result, Session, Trial, User, Video
from shared.db import utcnow
from shared.events import (
    ClaimRequest,
    ProcessingCompleted,
    ProcessingFailed,
    ProcessingHeartbeat,
    RecordedResult,
    ResultsRecorded,
    UploadedVideo,
    VideosReceived,
)
from tests.session.conftest import auth_headers, make_user


async def stopped_trial(tx, owner: User, name: str = "walk", *, mono: bool = False) -> Trial:
    """A stopped trial of `owner` with two uploaded videos, queued like the consumer does."""
    now = utcnow()
    session = Session(
        id=uuid4(),
        user_id=owner.id,
        meta=None,
        public=False,
        is_mono=mono,
        status="init",
        trashed=False,
        created_at=now,
        updated_at=now,
    )
    trial = Trial(
        id=uuid4(),
        session_id=session.id,
        name=name,
        status="stopped",
        meta=None,
        processed_count=0,
        attempts=0,
        trashed=False,
        created_at=now,
        updated_at=now,
    )
    tx.add_all([session, trial])
    await tx.flush()
    videos = []
    for _ in range(2):
        video = Video(
            id=uuid4(),
            trial_id=trial.id,
            device_id=uuid4(),
            key=f"{uuid4()}.mov",
            parameters={},
            created_at=now,
            updated_at=now,
        )
        tx.add(video)
        videos.append(UploadedVideo(video_id=video.id, device_id=video.device_id, key=video.key))
    await tx.flush()
    await consumers.on_videos_received(
        tx, VideosReceived(trial_id=trial.id, session_id=session.id, videos=videos)
    )
    return trial


def request_for(trial: Trial, worker: str = "gpu-1") -> ClaimRequest:
    return ClaimRequest(job_id=trial.job_id, trial_id=trial.id, worker=worker)


async def jobs(tx) -> list[Outbox]:
    stmt = select(Outbox).where(Outbox.exchange == "processing").order_by(Outbox.id)
    return list((await tx.scalars(stmt)).all())


class TestQueue:
    async def test_each_kind_of_trial_goes_to_its_queue_with_its_priority(self, tx, alice):
        boss = await make_user(tx, "boss", groups=["priority"])
        await stopped_trial(tx, alice, "calibration")
        await stopped_trial(tx, alice, "walk")
        await stopped_trial(tx, boss, "run")
        await stopped_trial(tx, alice, "jump", mono=True)

        found = [(j.routing_key, j.priority, j.body["data"]["trial_name"]) for j in await jobs(tx)]

        assert found == [
            ("setup", 7, "calibration"),
            ("dynamic", 3, "walk"),
            ("dynamic", 5, "run"),
            ("mono", 3, "jump"),
        ]


class TestClaim:
    async def test_one_worker_gets_the_trial_and_another_is_refused(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)

        first = await processing.claim(tx, request_for(trial, "gpu-1"), settings)
        second = await processing.claim(tx, request_for(trial, "gpu-2"), settings)
        again = await processing.claim(tx, request_for(trial, "gpu-1"), settings)

        assert (first.granted, first.lease_seconds) == (True, settings.processing_lease_seconds)
        assert (second.granted, again.granted) == (False, True)
        assert (trial.status, trial.lease_holder, trial.processed_count) == (
            "processing",
            "gpu-1",
            1,
        )

    async def test_a_stale_job_is_refused(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        stale = ClaimRequest(job_id=uuid4(), trial_id=trial.id, worker="gpu-1")

        reply = await processing.claim(tx, stale, settings)

        assert not reply.granted and "no longer current" in reply.reason
        assert trial.status == "stopped"

    async def test_heartbeats_renew_only_the_holders_lease(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        await processing.claim(tx, request_for(trial), settings)
        trial.lease_expires_at = utcnow() + timedelta(seconds=5)
        on_heartbeat = consumers.make_on_heartbeat(settings)

        await on_heartbeat(
            tx, ProcessingHeartbeat(job_id=trial.job_id, trial_id=trial.id, worker="intruder")
        )
        assert trial.lease_expires_at < utcnow() + timedelta(seconds=10)
        await on_heartbeat(
            tx, ProcessingHeartbeat(job_id=trial.job_id, trial_id=trial.id, worker="gpu-1")
        )
        assert trial.lease_expires_at > utcnow() + timedelta(seconds=60)


class TestCompletedWork:
    async def test_a_reported_completion_holds_the_lease_while_results_are_recorded(
        self, tx, alice, settings
    ):
        """Heartbeats stop with the worker's report; a results service that lags must not
        make its trial look abandoned."""
        trial = await stopped_trial(tx, alice)
        await processing.claim(tx, request_for(trial), settings)
        on_completed = consumers.make_on_completed(settings)
        soon = utcnow() + timedelta(seconds=5)
        trial.lease_expires_at = soon

        stale = ProcessingCompleted(job_id=uuid4(), trial_id=trial.id, worker="gpu-1", results=[])
        await on_completed(tx, stale)
        assert trial.lease_expires_at == soon
        current = stale.model_copy(update={"job_id": trial.job_id})
        await on_completed(tx, current)

        held = trial.lease_expires_at - utcnow()
        assert held > timedelta(seconds=settings.results_lease_seconds - 60)
        assert trial.status == "processing"
        assert await processing.requeue_lapsed(tx, settings) == 0


class TestRetryableFailures:
    """A job that failed for no fault of the trial (the object store out of reach) is
    tried again, like a dead worker's, within the attempts allowed."""

    async def test_it_goes_back_on_the_queue_then_fails_after_n_attempts(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        on_failed = consumers.make_on_failed(settings)
        for attempt in range(1, settings.processing_max_attempts + 1):
            assert (await processing.claim(tx, request_for(trial), settings)).granted
            failed = ProcessingFailed(
                job_id=trial.job_id,
                trial_id=trial.id,
                worker="gpu-1",
                error_msg="Processing failed unexpectedly.",
                error_msg_dev="EndpointConnectionError(...)",
                retry=True,
            )

            await on_failed(tx, failed)

            expected = "stopped" if attempt < settings.processing_max_attempts else "error"
            assert (trial.status, trial.attempts) == (expected, attempt)
        assert trial.meta["error_msg"] == "Processing failed unexpectedly."
        assert len(await jobs(tx)) == settings.processing_max_attempts

    async def test_a_failure_in_the_trial_is_final_at_once(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        await processing.claim(tx, request_for(trial), settings)

        await consumers.make_on_failed(settings)(
            tx,
            ProcessingFailed(
                job_id=trial.job_id, trial_id=trial.id, worker="gpu-1", error_msg="No board."
            ),
        )

        assert (trial.status, trial.meta["error_msg"]) == ("error", "No board.")
        assert len(await jobs(tx)) == 1  # the first job only


class TestLapsedLeases:
    async def test_a_dead_workers_trial_is_queued_again_then_failed_after_n_attempts(
        self, tx, alice, settings
    ):
        trial = await stopped_trial(tx, alice)
        for attempt in range(1, settings.processing_max_attempts + 1):
            assert (await processing.claim(tx, request_for(trial), settings)).granted
            trial.lease_expires_at = utcnow() - timedelta(seconds=1)  # the worker died

            assert await processing.requeue_lapsed(tx, settings) == 1

            expected = "stopped" if attempt < settings.processing_max_attempts else "error"
            assert (trial.status, trial.attempts) == (expected, attempt)
        assert "failed 3 times" in trial.meta["error_msg"]
        assert len(await jobs(tx)) == settings.processing_max_attempts
        assert trial.processed_count == settings.processing_max_attempts

    async def test_a_live_lease_is_left_alone(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        await processing.claim(tx, request_for(trial), settings)

        assert await processing.requeue_lapsed(tx, settings) == 0
        assert trial.status == "processing"


class TestLostJobs:
    """Known-failures 15: a job lost in the broker must not leave its trial waiting."""

    EMPTY = {"processing.dynamic", "processing.setup", "processing.mono"}

    @staticmethod
    def sent_long_ago(settings, *trials) -> None:
        for trial in trials:
            trial.job_sent_at = utcnow() - timedelta(seconds=settings.resend_unclaimed_seconds + 1)

    async def test_an_unclaimed_job_its_queue_no_longer_holds_is_sent_again_with_its_id(
        self, tx, alice, settings
    ):
        trial = await stopped_trial(tx, alice)
        fresh = await stopped_trial(tx, alice, "run")
        claimed = await stopped_trial(tx, alice, "jump")
        await processing.claim(tx, request_for(claimed), settings)
        self.sent_long_ago(settings, trial, claimed)
        before = await jobs(tx)

        assert await processing.resend_lost_jobs(tx, settings, self.EMPTY) == 1
        assert await processing.resend_lost_jobs(tx, settings, self.EMPTY) == 0  # sent now

        [again] = [j for j in await jobs(tx) if j not in before]
        first = next(j for j in before if j.body["data"]["trial_id"] == str(trial.id))
        assert (again.routing_key, again.priority) == (first.routing_key, first.priority)
        assert again.body["data"]["job_id"] == str(trial.job_id)
        assert again.body["data"]["videos"] == first.body["data"]["videos"]
        assert again.body["data"]["videos"]
        assert (trial.status, trial.job_resends, trial.queued_at < trial.job_sent_at) == (
            "stopped",
            1,
            True,
        )
        assert (fresh.status, claimed.status) == ("stopped", "processing")

    async def test_a_job_still_waiting_in_its_queue_is_left_there(self, tx, alice, settings):
        """A backlog: its queue holds jobs, so this one may just be waiting its turn."""
        trial = await stopped_trial(tx, alice)
        self.sent_long_ago(settings, trial)
        before = await jobs(tx)

        busy = self.EMPTY - {"processing.dynamic"}
        assert await processing.resend_lost_jobs(tx, settings, busy) == 0

        assert await jobs(tx) == before

    async def test_jobs_waiting_in_a_busy_queue_do_not_hold_up_those_of_an_empty_one(
        self, tx, alice, settings
    ):
        waiting = [await stopped_trial(tx, alice, f"walk{n}") for n in range(3)]
        lost = await stopped_trial(tx, alice, "calibration")
        self.sent_long_ago(settings, *waiting, lost)

        handled = await processing.resend_lost_jobs(tx, settings, {"processing.setup"}, limit=2)

        assert (handled, lost.job_resends) == (1, 1)
        assert [t.job_resends for t in waiting] == [0, 0, 0]

    async def test_a_job_lost_every_time_fails_its_trial_after_the_last_resend(
        self, tx, alice, settings
    ):
        trial = await stopped_trial(tx, alice)
        for _ in range(settings.max_job_resends):
            self.sent_long_ago(settings, trial)
            assert await processing.resend_lost_jobs(tx, settings, self.EMPTY) == 1
        assert trial.status == "stopped"

        self.sent_long_ago(settings, trial)
        assert await processing.resend_lost_jobs(tx, settings, self.EMPTY) == 1

        assert (trial.status, trial.meta["error_msg"]) == ("error", processing.NEVER_TAKEN)
        assert len(await jobs(tx)) == 1 + settings.max_job_resends


class TestCompletion:
    async def test_results_of_the_current_job_finish_the_trial(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        await processing.claim(tx, request_for(trial), settings)

        stale = ResultsRecorded(trial_id=trial.id, results=[], complete=True, job_id=uuid4())
        await consumers.on_results_recorded(tx, stale)
        assert trial.status == "processing"
        current = ResultsRecorded(
            trial_id=trial.id,
            complete=True,
            job_id=trial.job_id,
            replace=True,
            results=[RecordedResult(result_id=7, tag="ik_results", key="results/x-a.mot")],
        )
        await consumers.on_results_recorded(tx, current)

        assert (trial.status, trial.lease_holder) == ("done", None)

    async def test_a_failure_of_a_stale_job_changes_nothing(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        await processing.claim(tx, request_for(trial), settings)

        await consumers.make_on_failed(settings)(
            tx, ProcessingFailed(job_id=uuid4(), trial_id=trial.id, worker="old", error_msg="boom")
        )

        assert trial.status == "processing"

    async def test_replacing_results_drop_the_old_ones(self, tx, alice, settings):
        trial = await stopped_trial(tx, alice)
        old = RecordedResult(result_id=1, tag="ik_results", key="results/a-old.mot")
        new = RecordedResult(result_id=2, tag="ik_results", key="results/b-new.mot")
        await consumers.on_results_recorded(
            tx, ResultsRecorded(trial_id=trial.id, results=[old], complete=False)
        )

        await consumers.on_results_recorded(
            tx, ResultsRecorded(trial_id=trial.id, results=[new], complete=False, replace=True)
        )

        keys = (await tx.scalars(select(Result.key).where(Result.trial_id == trial.id))).all()
        assert keys == ["results/b-new.mot"]


class TestHttpPipeline:
    async def test_dequeue_notes_the_workers_address_as_the_gateway_saw_it(self, client, tx, alice):
        headers = await auth_headers(tx, await make_user(tx, "pipeline", groups=["backend"]))
        await stopped_trial(tx, alice)
        claimed = {**headers, "X-Forwarded-For": "claimed-by-client, 10.0.0.9"}

        response = await client.get("/trials/dequeue/", headers=claimed)

        assert response.json()["server"] == "10.0.0.9"

    async def test_dequeue_gives_calibration_first_then_fresh_trials_then_reprocessing(
        self, client, tx, alice, settings
    ):
        backend = await make_user(tx, "pipeline", groups=["backend"])
        headers = await auth_headers(tx, backend)
        finished = await stopped_trial(tx, alice, "old")
        finished.status = "done"
        await processing.reprocess(tx, finished)
        walk = await stopped_trial(tx, alice, "walk")
        calibration = await stopped_trial(tx, alice, "calibration")

        names = []
        for _ in range(3):
            response = await client.get("/trials/dequeue/?workerType=all", headers=headers)
            assert response.status_code == 200, response.text
            names.append((response.json()["name"], response.json()["status"]))
        empty = await client.get("/trials/dequeue/", headers=headers)

        assert names == [
            ("calibration", "processing"),
            ("walk", "processing"),
            ("old", "processing"),
        ]
        assert (empty.status_code, empty.json()) == (404, {"detail": "Not found."})
        assert (walk.processed_count, calibration.processed_count, finished.processed_count) == (
            1,
            1,
            1,
        )

    async def test_worker_types_and_mono_are_kept_apart(self, client, tx, alice):
        headers = await auth_headers(tx, await make_user(tx, "pipeline", groups=["backend"]))
        await stopped_trial(tx, alice, "walk")
        await stopped_trial(tx, alice, "jump", mono=True)

        calibration_only = await client.get(
            "/trials/dequeue/?workerType=calibration", headers=headers
        )
        mono = await client.get("/trials/dequeue/?isMono=True", headers=headers)
        dynamic = await client.get("/trials/dequeue/?workerType=dynamic", headers=headers)

        assert calibration_only.status_code == 404
        assert (mono.json()["name"], dynamic.json()["name"]) == ("jump", "walk")

    async def test_only_the_pipeline_may_dequeue(self, client, tx, as_alice):
        response = await client.get("/trials/dequeue/", headers=as_alice)

        assert response.status_code == 403

    async def test_trials_with_status_counts_as_the_autoscaler_asks(self, client, tx, alice):
        headers = await auth_headers(tx, await make_user(tx, "pipeline", groups=["backend"]))
        trial = await stopped_trial(tx, alice, "walk")
        trial.status = "recording"

        newer = await client.get(
            "/trials/get_trials_with_status/?status=recording&hoursSinceUpdate=0.0333"
            "&justNumber=1&relativeTime=newer",
            headers=headers,
        )
        older = await client.get(
            "/trials/get_trials_with_status/?status=recording&hoursSinceUpdate=1", headers=headers
        )

        assert newer.json() == {"nTrials": 1}
        assert older.json() == []

    async def test_a_reprocess_request_queues_a_finished_trial_once(
        self, client, tx, alice, as_alice
    ):
        trial = await stopped_trial(tx, alice, "walk")
        trial.status = "error"
        trial.meta = {"error_msg": "sync failed"}

        response = await client.patch(
            f"/trials/{trial.id}/", json={"status": "reprocess"}, headers=as_alice
        )
        again = await client.patch(
            f"/trials/{trial.id}/", json={"status": "reprocess"}, headers=as_alice
        )

        assert response.status_code == again.status_code == 200
        assert response.json()["status"] == "reprocess"
        assert [j.priority for j in await jobs(tx)] == [3, 1]


async def test_ten_concurrent_dequeues_hand_the_trial_to_exactly_one_worker(committed, settings):
    async with committed() as tx, tx.begin():
        owner = await make_user(tx, f"race-{uuid4().hex[:6]}")
        trial = await stopped_trial(tx, owner)

    async def take(worker: str):
        async with committed() as tx, tx.begin():
            taken = await processing.dequeue(tx, {}, worker, settings)
            return taken.id if taken else None

    taken = await asyncio.gather(*(take(f"10.0.0.{i}") for i in range(10)))

    assert [t for t in taken if t] == [trial.id]
    async with committed() as tx:
        row = await tx.get(Trial, trial.id)
        assert (row.status, row.processed_count) == ("processing", 1)
        await tx.execute(update(Trial).where(Trial.id == trial.id).values(status="done"))


async def test_a_late_heartbeat_never_shortens_a_lease(tx, alice, settings):
    trial = await stopped_trial(tx, alice)
    await processing.claim(tx, request_for(trial), settings)
    long = utcnow() + timedelta(seconds=settings.results_lease_seconds)
    trial.lease_expires_at = long  # a completion is being recorded

    await consumers.make_on_heartbeat(settings)(
        tx, ProcessingHeartbeat(job_id=trial.job_id, trial_id=trial.id, worker="gpu-1")
    )

    assert trial.lease_expires_at == long
