"""Simulated clients that call the API exactly as the real ones do.

`WebApp` follows opencap-viewer's calls (token auth, every path with its trailing slash);
`Phone` follows the stock iPhone app (reference/clients.md §2): it polls the status URL
decoded from the QR code once a second without waiting for the previous poll, starts
recording on `recording`, and on `uploading` asks for a presigned policy, posts the
four fields and the file, then PATCHes its video slot with JSON. Both write what they
do into a shared `Timeline`.
"""

import asyncio
import contextlib
import io
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from dev.mail import verification_code


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    entries: list[tuple[float, str, str]] = field(default_factory=list)
    echo: bool = False

    def add(self, actor: str, text: str) -> None:
        entry = (time.monotonic() - self.started, actor, text)
        self.entries.append(entry)
        if self.echo:
            print(f"  {entry[0]:7.2f}s  {actor:<7} {text}", flush=True)

    def render(self) -> str:
        return "\n".join(f"{t:7.2f}s  {actor:<7} {text}" for t, actor, text in self.entries)


def decode_qr(png: bytes) -> str:
    """The text of the QR code in a PNG image."""
    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    if not found:
        raise ValueError("no QR code found in the image")
    return found[0].text


class WebApp:
    """The researcher's browser: opencap-viewer's calls for one recording session."""

    def __init__(self, base_url: str, timeline: Timeline):
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", timeout=30)
        self.timeline = timeline

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /{path} -> {response.status_code}: {response.text}")
        return response.json()

    async def login(self, username: str, password: str, email: str, maildir: Path) -> dict:
        """Log in, then pass the e-mail code step the way a user does: the Verify page asks
        for a code, which is read from the mail the service sent."""
        sent_after = time.time() - 1
        body = await self.call("POST", "login/", json={"username": username, "password": password})
        self.http.headers["Authorization"] = f"Token {body['token']}"
        self.timeline.add("web", f"logged in as {username} (user {body['user_id']})")
        if body["otp_challenge_sent"]:
            code = await asyncio.to_thread(verification_code, maildir, email, sent_after)
            await self.call("POST", "verify/", json={"otp_token": code, "remember_device": True})
            self.timeline.add("web", f"entered the e-mailed code {code}")
        return body

    async def new_session(self) -> tuple[dict, str]:
        """Create a session, fetch its QR image and decode it as a phone would."""
        session = (await self.call("GET", "sessions/new/"))[0]
        self.timeline.add("web", f"new session {session['id']}")
        qr = await self.call("GET", f"sessions/{session['id']}/get_qr/")
        image = await self.http.get(qr["qr"])
        image.raise_for_status()
        status_url = decode_qr(image.content)
        self.timeline.add("web", f"QR code ({len(image.content)} B PNG) reads {status_url}")
        return session, status_url

    async def status(self, session_id: str) -> dict:
        return await self.call("GET", f"sessions/{session_id}/status/")

    async def record(self, session_id: str, name: str) -> dict:
        trial = await self.call("GET", f"sessions/{session_id}/record/", params={"name": name})
        self.timeline.add("web", f"record {name!r}: trial {trial['id']} is {trial['status']}")
        return trial

    async def wait_for_cameras(self, session_id: str, cameras: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while (await self.status(session_id))["n_cameras_connected"] < cameras:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {cameras} cameras connected after {timeout} s")
            await asyncio.sleep(0.5)
        self.timeline.add("web", f"{cameras} cameras connected")

    async def stop(self, session_id: str) -> dict:
        trial = await self.call("GET", f"sessions/{session_id}/stop/")
        self.timeline.add("web", f"stop: trial is {trial['status']}")
        return trial

    async def wait_for_trial(self, trial_id: str, timeout: float = 120) -> dict:
        """Poll the trial until it is done or failed (the web app's 2 s / 5 s refreshes)."""
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            trial = await self.call("GET", f"trials/{trial_id}/")
            if trial["status"] != seen:
                seen = trial["status"]
                self.timeline.add("web", f"trial is {seen}")
            if seen in ("done", "error"):
                return trial
            if time.monotonic() > deadline:
                raise TimeoutError(f"trial still {seen} after {timeout} s")
            await asyncio.sleep(0.5)


def api_url(qr_url: str) -> str:
    """Where the stock iOS app sends its video PATCH: `https://` + the QR host, port dropped
    (an http QR, which only test setups use, keeps its address)."""
    parts = urlsplit(qr_url)
    return f"https://{parts.hostname}" if parts.scheme == "https" else f"http://{parts.netloc}"


class Phone:
    """One iPhone running the stock app, after scanning the session's QR code."""

    def __init__(
        self,
        name: str,
        device_id: str,
        video: Path,
        qr_url: str,
        timeline: Timeline,
        ca: Path | None = None,
    ):
        """`ca`: the certificate authority the phone trusts (the local CA for local runs)."""
        self.name, self.device_id, self.video, self.timeline = name, device_id, video, timeline
        self.status_url = f"{qr_url}?device_id={device_id}"
        self.presign_url = qr_url.replace("/status", "") + "get_presigned_url/"
        self.api_url = api_url(qr_url)
        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        self.http = httpx.AsyncClient(timeout=60, verify=verify)
        self.previous = "ready"
        self.video_link: str | None = None
        self.upload: asyncio.Task | None = None
        self.uploaded = asyncio.Event()
        self.polls = 0
        self.recordings = 0
        self.uploads = 0
        self.errors: list[str] = []

    async def run(self, until: asyncio.Event) -> None:
        """Poll once a second (overlapping, as the iOS timer does) until `until` is set."""
        inflight: set[asyncio.Task] = set()
        while not until.is_set():
            task = asyncio.create_task(self.poll())
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), 1.0)
        for task in [*inflight, *([self.upload] if self.upload else [])]:
            task.cancel()
        await self.http.aclose()

    async def poll(self) -> None:
        try:
            response = await self.http.get(self.status_url)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.errors.append(f"poll failed: {exc!r}")
            return
        self.polls += 1
        if response.status_code != 200:
            self.errors.append(f"poll answered {response.status_code}: {response.text}")
            return
        self.react(body)

    def react(self, body: dict) -> None:
        status = body["status"]
        if isinstance(body.get("video"), str):
            self.video_link = body["video"]
        if status != self.previous and status == "recording":
            self.upload, self.recordings = None, self.recordings + 1
            self.uploaded.clear()
            self.timeline.add(
                self.name, f"recording at {body['framerate']} fps ({self.video_link})"
            )
        if status != self.previous and status == "uploading" and self.upload is None:
            self.timeline.add(self.name, "stopped recording, uploading")
            self.upload = asyncio.create_task(self.send_video())
        if self.previous == "uploading" and status == "ready" and self.upload:
            self.upload.cancel()
        if isinstance(body.get("newSessionURL"), str):
            self.status_url = f"{body['newSessionURL']}?device_id={self.device_id}"
        self.previous = status

    async def send_video(self) -> None:
        try:
            credentials = (await self.http.get(self.presign_url)).json()
            fields, url = credentials["fields"], credentials["url"]
            files = {"file": (fields["key"], self.video.read_bytes(), "video/mp4")}
            posted = await self.http.post(url, data=fields, files=files)
            posted.raise_for_status()
            body = {
                "video_url": fields["key"],
                "parameters": {"fov": "68.2", "model": "iPhone14,2", "max_framerate": 240},
            }
            patched = await self.http.patch(f"{self.api_url}{self.video_link}", json=body)
            patched.raise_for_status()
        except Exception as exc:
            self.errors.append(f"upload failed: {exc!r}")
            self.timeline.add(self.name, f"upload FAILED: {exc!r}")
            return
        size = self.video.stat().st_size
        self.uploads += 1
        self.timeline.add(
            self.name,
            f"uploaded {size / 1e6:.2f} MB ({posted.status_code}) and "
            f"attached it ({patched.status_code})",
        )
        self.uploaded.set()
