"""HTTP edge of the device service: the status poll (browsers' route; phones are served by
`poll.PollFastPath` before FastAPI), the live devices list and the session stream."""

import time
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from device_service.live import devices_of, session_stream
from device_service.models import ApiToken, ApiUser
from device_service.poll import StatusPoll
from device_service.service import require_watcher, still_public
from device_service.views import SessionView
from shared.db import Tx
from shared.errors import NotFound
from shared.identity import caller

router = APIRouter()


async def watched_session(
    request: Request, tx: AsyncSession, session_id: str
) -> tuple[SessionView, bool]:
    """The session whose phones the caller may watch (`service.require_watcher`), and
    whether they watch only because it is public."""
    try:
        sid = UUID(session_id)
    except ValueError:
        raise NotFound() from None
    who = await caller(tx, request.headers.get("authorization"), ApiToken, ApiUser)
    as_public = await require_watcher(tx, who, sid)
    view = await request.app.state.read_model.session_for_poll(sid)
    if view is None:
        raise NotFound()
    return view, as_public


@router.get("/sessions/{session_id}/status/")
async def status(session_id: str, request: Request) -> Response:
    """The device-visible status (reference §5.2); `?wait=&version=` is the long-poll form."""
    poll: StatusPoll = request.app.state.poll
    answer = await poll.answer(session_id, request.url.query)
    headers = {"ETag": f'"{answer.etag}"'} if answer.etag else None
    return Response(answer.body, answer.status, headers, media_type="application/json")


@router.get("/sessions/{session_id}/devices/")
async def devices(session_id: str, request: Request, tx: Tx) -> dict:
    """The phones polling this session (label, tag, last poll, model) and whether each is
    a camera of its latest trial; never a device id nor a video (`live.py`)."""
    view, _ = await watched_session(request, tx, session_id)
    return devices_of(view, time.time(), request.app.state.settings.connected_seconds)


@router.get("/sessions/{session_id}/status/stream/")
async def stream(session_id: str, request: Request, tx: Tx) -> StreamingResponse:
    """Server-sent events: `status` and `devices`, each sent when it changes. A stream
    open only because the session is public ends when it no longer is."""
    view, as_public = await watched_session(request, tx, session_id)
    state = request.app.state
    allowed = partial(still_public, state.db, view.id) if as_public else None
    events = session_stream(state.poll, view, state.settings.connected_seconds, allowed)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
