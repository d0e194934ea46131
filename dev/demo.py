"""The main job: one three-camera trial from recording to results, on real video files.

    python -m dev.demo          (or `make demo`)

It starts the local stack if it is not running (and stops it again at the end), makes
three cameras' H.264 clips of a moving scene, then plays the web app and three iPhones
through the gateway exactly as the real clients call it: log in, new session, decode the
QR code, phones polling once a second, record, stop, uploads, processing, results. It
prints the timeline and the results, and exits non-zero if anything fails.
"""

import argparse
import asyncio
import secrets
import sys
import time
import uuid

import httpx
from sqlalchemy import select

from dev.clients import Phone, Timeline, WebApp
from dev.layout import DEV, Layout
from dev.stack import Stack
from dev.videos import LAG_SECONDS, make_clips
from shared.db import create_engine, create_sessionmaker


async def ensure_user(layout: Layout, username: str, email: str) -> str:
    """Create (or reset) an account as an operator would; returns its new password."""
    from session_service.admin import create_user
    from session_service.auth import hash_password
    from session_service.models import User

    password = secrets.token_urlsafe(18)
    engine = create_engine(layout.database_url("session"), pool_size=1)
    try:
        async with create_sessionmaker(engine)() as tx, tx.begin():
            user = (await tx.scalars(select(User).where(User.username == username))).first()
            if user is None:
                await create_user(tx, username, password, email)
            else:
                user.password_hash, user.email = hash_password(password), email
    finally:
        await engine.dispose()
    return password


async def record_trial(
    layout: Layout, cameras: int, seconds: float, echo: bool = True
) -> tuple[dict, Timeline, list[Phone]]:
    """Play the web app and `cameras` phones through one trial; returns the final trial."""
    timeline = Timeline(echo=echo)
    clips = make_clips(layout.run_dir / "clips", cameras, seconds=seconds + 0.5)
    timeline.add("demo", f"made {cameras} H.264 clips of {seconds + 0.5:.1f} s ({clips[0].parent})")
    web = WebApp(layout.gateway_url, timeline)
    email = "demo@example.org"
    await web.login("demo", await ensure_user(layout, "demo", email), email, layout.maildir)
    session, qr_url = await web.new_session()
    stop = asyncio.Event()
    phones = [
        Phone(f"phone{i + 1}", str(uuid.uuid4()).upper(), clip, qr_url, timeline, layout.ca_file)
        for i, clip in enumerate(clips)
    ]
    polling = [asyncio.create_task(phone.run(stop)) for phone in phones]
    timeline.add("demo", f"{cameras} phones scanned the QR code and poll once a second")
    try:
        await asyncio.sleep(1.5)
        trial = await web.record(session["id"], "walk")
        await web.wait_for_cameras(session["id"], cameras)
        await asyncio.sleep(seconds)
        await web.stop(session["id"])
        trial = await web.wait_for_trial(trial["id"])
        await asyncio.sleep(1.2)  # one more poll: the phones see the session ready again
    finally:
        stop.set()
        await asyncio.gather(*polling)
        await web.close()
    return trial, timeline, phones


def phase(timeline: Timeline, start: str, end: str) -> str:
    """Seconds from the first timeline entry containing `start` to the last containing `end`."""
    first = next(t for t, _, text in timeline.entries if start in text)
    last = max(t for t, _, text in timeline.entries if end in text)
    return f"{last - first:.2f} s"


def report(trial: dict, timeline: Timeline, phones: list[Phone]) -> bool:
    print(f"\nTrial {trial['name']} ({trial['id']}): {trial['status']}")
    if trial["status"] == "error":
        print(f"  error: {(trial.get('meta') or {}).get('error_msg')}")
    facts = sorted(
        (r for r in trial["results"] if r["tag"] == "video_facts"), key=lambda r: r["device_id"]
    )
    thumbs = {r["device_id"]: r["media"] for r in trial["results"] if r["tag"] == "thumbnail"}
    offsets = next((r["meta"] for r in trial["results"] if r["tag"] == "sync_offsets"), {}) or {}
    print(f"  {len(trial['videos'])} videos, {len(trial['results'])} results")
    lags = built_in_lags(facts, phones)
    print(
        f"  {'camera':<6} {'phone':<37} {'codec':<6} {'size':<8} {'fps':>5} {'frames':>6} "
        f"{'seconds':>7} {'offset':>7} {'built in':>8}  thumbnail"
    )
    for result in facts:
        m, camera = result["meta"], result["device_id"]
        offset = offsets.get(camera, 0.0 if camera == "Cam0" else None)
        shown = "-" if offset is None else f"{offset:+.3f}"
        print(
            f"  {camera:<6} {m['device_id']:<37} {m['codec']:<6} {m['width']}x{m['height']:<4} "
            f"{m['frame_rate']:>5} {m['frame_count']:>6} {m['duration_s']:>7} {shown:>7} "
            f"{lags.get(camera, 0.0):>+8.3f}  {thumbs.get(camera, '-').split('?')[0]}"
        )
    print(
        "  (offset: seconds each camera's clip lags camera 0, estimated from the motion;"
        "\n   built in: the lag the demo gave that phone's clip, minus camera 0's)"
    )
    if trial["status"] == "done":
        print(
            f"  record -> all cameras connected: {phase(timeline, 'record', 'cameras connected')}"
        )
        print(f"  stop -> every video uploaded:    {phase(timeline, 'stop:', 'uploaded')}")
        print(f"  stop -> trial done:              {phase(timeline, 'stop:', 'trial is done')}")
    problems = [f"{p.name}: {e}" for p in phones for e in p.errors]
    problems += [
        f"{camera}'s offset {offsets.get(camera)} is not its built-in lag {lag:+.3f}"
        for camera, lag in lags.items()
        if camera != "Cam0" and not synced(offsets.get(camera), lag)
    ]
    problems += [f"{p.name} did not upload" for p in phones if not p.uploaded.is_set()]
    problems += [f"{p.name} ended at {p.previous!r}" for p in phones if p.previous != "ready"]
    if trial["status"] != "done" or len(facts) != len(phones):
        problems.append(f"trial {trial['status']}: {len(facts)} of {len(phones)} cameras measured")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    return not problems


SYNC_TOLERANCE = 0.025  # seconds: 1.5 frames at 60 fps


def synced(offset: float | None, lag: float) -> bool:
    return offset is not None and abs(offset - lag) <= SYNC_TOLERANCE


def built_in_lags(facts: list[dict], phones: list[Phone]) -> dict[str, float]:
    """Per camera, the lag the demo built into its phone's clip relative to camera 0's
    (which camera a phone becomes depends on the order the phones joined)."""
    lag_of = {p.device_id.lower(): LAG_SECONDS * i for i, p in enumerate(phones)}
    lags = {r["device_id"]: lag_of.get(r["meta"]["device_id"].lower(), 0.0) for r in facts}
    return {camera: lag - lags.get("Cam0", 0.0) for camera, lag in lags.items()}


def gateway_up(layout: Layout) -> bool:
    try:
        return httpx.get(f"{layout.gateway_url}/health/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the recording")
    args = parser.parse_args()
    stack = Stack(DEV)
    started_here = not gateway_up(DEV)
    began = time.monotonic()
    try:
        if started_here:
            print("Starting the local stack (S3, services, workers, pipeline worker, gateway)...")
            stack.prepare()
            stack.start()
        trial, timeline, phones = asyncio.run(record_trial(DEV, args.cameras, args.seconds))
        ok = report(trial, timeline, phones)
    except Exception as exc:
        print(f"\nDEMO FAILED: {exc!r}", file=sys.stderr)
        ok = False
    finally:
        if started_here:
            stack.stop()
    print(f"\n{'OK' if ok else 'FAILED'} in {time.monotonic() - began:.1f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
