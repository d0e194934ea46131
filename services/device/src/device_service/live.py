"""What the web app can watch instead of polling blindly: the phones connected to a
session (last poll, model, whether it is a camera of the latest trial and has uploaded)
and a server-sent-events stream of the session's device-visible state.

Both answer the session's owner (anyone, for a public session), and even so never show a
phone's device id nor its video slot: those two are what lets a phone upload into its
slot without credentials. A phone is shown as `phone N` (N in the order of first polls)
with a tag, the start of sha256(session id + device id), which tells phones apart but
cannot be turned back into the device id. The order is this replica's view (replicas
share first polls with their presence); the tag is the same everywhere, always.
"""

import asyncio
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID

from device_service.poll import StatusPoll, etag_of
from device_service.views import SessionView, until_set

TAG_LENGTH = 6  # hex digits
HEARTBEAT_SECONDS = 15.0
TICK_SECONDS = 1.0  # presence (last poll) changes without waking anyone: look this often
RECHECK_SECONDS = 5.0  # a stream open because the session is public: is it still?


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def phone_models(view: SessionView) -> dict[UUID, str]:
    """Each phone's model, from its latest upload in this session."""
    models: dict[UUID, str] = {}
    for trial in sorted(view.trials.values(), key=lambda t: t.started_at):
        models.update((s.device_id, s.model) for s in trial.slots.values() if s.model)
    return models


def phone_tag(session_id: UUID, device_id: UUID) -> str:
    """A short name for a phone in a session that does not reveal its device id."""
    return hashlib.sha256(f"{session_id}{device_id}".encode()).hexdigest()[:TAG_LENGTH]


def devices_of(view: SessionView, now: float, connected_seconds: float) -> dict:
    """The phones polling this session or holding a slot in its latest trial, in the
    order of their first poll (phones never seen polling last, by tag)."""
    trial = view.latest
    slots = trial.slots if trial is not None else {}
    models = phone_models(view)
    tags = {d: phone_tag(view.id, d) for d in set(view.seen) | set(slots)}
    order = sorted(tags, key=lambda d: (view.first_seen.get(d, math.inf), tags[d]))
    devices = []
    for number, device_id in enumerate(order, start=1):
        seen, slot = view.seen.get(device_id), slots.get(device_id)
        devices.append(
            {
                "label": f"phone {number}",
                "tag": tags[device_id],
                "last_seen": iso(seen),
                "connected": seen is not None and now - seen <= connected_seconds,
                "model": models.get(device_id),
                "in_trial": slot is not None,
                "uploaded": slot is not None and slot.uploaded,
            }
        )
    return {
        "trial": trial.path if trial is not None else None,
        "n_connected": sum(1 for d in devices if d["connected"]),
        "devices": devices,
    }


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def sse(event: str, body: bytes, event_id: str | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + body + b"\n\n"


async def session_stream(
    poll: StatusPoll,
    view: SessionView,
    connected_seconds: float,
    allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """`status` (the web app's status answer) and `devices` events, each when it changes;
    it ends when the session is deleted, or when `allowed` (asked every few seconds) says
    the watcher may no longer watch (reconnecting then finds a 404 or a 401)."""
    loop = asyncio.get_running_loop()
    yield b"retry: 1000\n\n"
    sent: dict[str, bytes] = {}
    quiet_since = checked = loop.time()
    while not view.deleted:
        if allowed is not None and loop.time() - checked >= RECHECK_SECONDS:
            if not await allowed():
                return
            checked = loop.time()
        changed, out = view.changed, []
        current = {
            "status": poll.render(view, None),
            "devices": compact(devices_of(view, time.time(), connected_seconds)),
        }
        for name, body in current.items():
            if sent.get(name) != body:
                out.append(sse(name, body, etag_of(body) if name == "status" else None))
                sent[name] = body
        if out or loop.time() - quiet_since >= HEARTBEAT_SECONDS:
            yield b"".join(out) or b": keep-alive\n\n"
            quiet_since = loop.time()
        await until_set(changed, TICK_SECONDS)
