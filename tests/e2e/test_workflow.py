"""The whole system as processes (services, workers, gateway, S3 endpoint, the reference
pipeline worker), driven through the gateway the way the real web app and phones call it."""

import subprocess

import httpx
import pytest

from dev.demo import record_trial
from dev.layout import TEST


def frame_count(path) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


async def test_three_phones_record_upload_and_get_results(stack):
    trial, timeline, phones = await record_trial(TEST, cameras=3, seconds=1.5, echo=False)

    assert trial["status"] == "done", timeline.render()
    assert [p.errors for p in phones] == [[], [], []]
    assert all(p.uploaded.is_set() and p.previous == "ready" for p in phones)
    assert len(trial["videos"]) == 3
    clips = {phone.device_id.lower(): phone.video for phone in phones}
    async with httpx.AsyncClient(timeout=30) as http:
        for video in trial["videos"]:
            stored = await http.get(video["video"])
            assert stored.content == clips[video["device_id"]].read_bytes()
        facts = [r for r in trial["results"] if r["tag"] == "video_facts"]
        assert sorted(r["device_id"] for r in facts) == ["Cam0", "Cam1", "Cam2"]
        for result in facts:
            clip = clips[result["meta"]["device_id"]]
            assert result["meta"]["frame_count"] == frame_count(clip)
            assert result["meta"]["codec"] == "h264"
        thumbnails = [r for r in trial["results"] if r["tag"] == "thumbnail"]
        assert len(thumbnails) == 3
        for result in thumbnails:
            assert (await http.get(result["media"])).content[:2] == b"\xff\xd8"  # a JPEG


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/sessions/00000000-0000-0000-0000-000000000000/status/", 404),
        ("GET", "/sessions/00000000-0000-0000-0000-000000000000/status/?device_id=nope", 400),
        ("GET", "/sessions/not-a-uuid/status/", 404),
        ("GET", "/sessions/new/", 403),
        ("GET", "/trials/not-a-uuid/", 404),
        ("GET", "/sessions/00000000-0000-0000-0000-000000000000/get_presigned_url/", 404),
        ("PATCH", "/videos/00000000-0000-0000-0000-000000000000/", 404),
        ("GET", "/no/such/route/", 404),
    ],
)
async def test_bad_requests_get_a_clear_4xx_json_answer(gateway, method, path, status):
    response = await gateway.request(method, path)

    assert response.status_code == status
    assert isinstance(response.json(), dict) and response.json()


async def test_a_forged_upload_is_refused(gateway):
    fields = {"key": "x.mov", "AWSAccessKeyId": "X", "policy": "e30=", "signature": "forged"}
    files = {"file": ("x.mov", b"not really a video", "video/mp4")}

    response = await gateway.post("/uploads/", data=fields, files=files)

    assert response.status_code == 403
    assert "signature" in response.json()["detail"]
