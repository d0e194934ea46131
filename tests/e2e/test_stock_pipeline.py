"""The stock pipeline (opencap-core) over HTTP, unchanged, beside the queue's workers: it
dequeues a trial, reads it, posts a result file the way `postFileToTrial` does and marks
the trial done. The reference worker, paused meanwhile, then finds the trial taken and
drops its job: one trial, one worker (reference §6, known-failures 11)."""

import asyncio
import os
import signal
import uuid

import httpx

from dev.clients import Phone, Timeline, WebApp
from dev.demo import ensure_user
from dev.layout import TEST
from dev.videos import make_clips


async def backend_token(stack) -> str:
    from session_service import admin
    from session_service.config import Settings

    await ensure_user(TEST, "pipeline", "pipeline@example.org")
    settings = Settings(database_url=TEST.database_url("session"))
    await admin.run(admin.parser().parse_args(["add-group", "pipeline", "backend"]), settings)
    return await admin.run(admin.parser().parse_args(["mint-token", "pipeline"]), settings)


async def recorded_trial(web: WebApp, tmp_path) -> dict:
    """A trial recorded by two phones, stopped, with both videos uploaded."""
    email = f"user{uuid.uuid4().hex[:6]}@example.org"
    await web.login(
        email.split("@")[0],
        await ensure_user(TEST, email.split("@")[0], email),
        email,
        TEST.maildir,
    )
    session, qr_url = await web.new_session()
    stop = asyncio.Event()
    phones = [
        Phone(f"phone{i}", str(uuid.uuid4()), clip, qr_url, web.timeline, TEST.ca_file)
        for i, clip in enumerate(make_clips(tmp_path, 2, seconds=1.0))
    ]
    polling = [asyncio.create_task(p.run(stop)) for p in phones]
    try:
        await asyncio.sleep(1.2)
        trial = await web.record(session["id"], "walk")
        await web.wait_for_cameras(session["id"], 2)
        await web.stop(session["id"])
        await asyncio.wait_for(asyncio.gather(*(p.uploaded.wait() for p in phones)), 30)
    finally:
        stop.set()
        await asyncio.gather(*polling)
    return trial


async def dequeue(api: httpx.AsyncClient, tries: int = 40) -> dict:
    for _ in range(tries):  # the trial is queued once the upload service saw both videos
        response = await api.get("trials/dequeue/", params={"workerType": "dynamic"})
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 404, response.text
        await asyncio.sleep(0.25)
    raise AssertionError("nothing to dequeue")


async def post_result(api: httpx.AsyncClient, trial_id: str) -> dict:
    """opencap-core's postFileToTrial: presign without a token, POST the file, POST /results/."""
    anonymous = httpx.AsyncClient(base_url=str(api.base_url), timeout=30)
    async with anonymous:
        presigned = (
            await anonymous.request(
                "GET", "sessions/null/get_presigned_url/", data={"fileName": "walk.mot"}
            )
        ).json()
        uploaded = await anonymous.post(
            presigned["url"].replace(TEST.public_url, TEST.gateway_url),
            data=presigned["fields"],
            files={"file": ("walk.mot", b"nRows=1\nendheader\n")},
        )
    assert uploaded.status_code == 204, uploaded.text
    created = await api.post(
        "results/",
        data={
            "trial": trial_id,
            "tag": "ik_results",
            "device_id": "all",
            "media_url": presigned["fields"]["key"],
        },
    )
    assert created.status_code == 201, created.text
    return created.json()


def pipeline_pid(stack) -> int:
    return stack.pids()["pipeline"]


async def test_the_stock_pipeline_processes_a_trial_the_queue_worker_then_leaves_alone(
    stack, tmp_path
):
    web = WebApp(TEST.gateway_url, Timeline())
    token = await backend_token(stack)
    api = httpx.AsyncClient(
        base_url=f"{TEST.gateway_url}/", timeout=30, headers={"Authorization": f"Token {token}"}
    )
    os.kill(pipeline_pid(stack), signal.SIGSTOP)
    try:
        trial = await recorded_trial(web, tmp_path)
        taken = await dequeue(api)
        assert (taken["id"], taken["status"], taken["processed_count"]) == (
            trial["id"],
            "processing",
            1,
        )
        assert len(taken["videos"]) == 2 and all("?" in v["video"] for v in taken["videos"])
        await api.patch(f"trials/{trial['id']}/", data={"git_commit": "abc123", "hostname": "gpu"})
        result = await post_result(api, trial["id"])
        done = await api.patch(
            f"trials/{trial['id']}/", data={"status": "done", "processed_duration": "0:00:42.5"}
        )
        assert done.status_code == 200 and done.json()["status"] == "done"
    finally:
        os.kill(pipeline_pid(stack), signal.SIGCONT)
    await asyncio.sleep(2)  # the reference worker takes the stale job and is refused

    final = (await api.get(f"trials/{trial['id']}/")).json()
    await api.aclose()
    await web.close()
    assert (final["status"], final["processed_count"], final["hostname"]) == ("done", 1, "gpu")
    assert final["processed_duration"] == "00:00:42.500000"
    assert [(r["id"], r["tag"]) for r in final["results"]] == [(result["id"], "ik_results")]
    media = final["results"][0]["media"]
    assert media[media.rfind("-") + 1 : media.rfind("?")] == "walk.mot"  # as opencap-core reads it
