"""The phones' 1 Hz status poll, `GET /sessions/{id}/status/`, answered from memory.

`StatusPoll.answer` is the whole behaviour, long-poll form included
(`?wait=<seconds>&version=<etag>`: answer as soon as the state differs from `version`, or
after `wait` seconds with the state as it is). `PollFastPath` serves it as a bare ASGI
handler in front of the FastAPI app, because FastAPI's own request handling costs more
than the poll itself; requests it does not take (other methods, browsers sending `Origin`,
which need the CORS middleware) go through the app's ordinary route instead.
"""

import asyncio
import json
import re
import time
from dataclasses import dataclass
from hashlib import blake2b
from urllib.parse import parse_qsl
from uuid import UUID

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from device_service.read_model import ReadModel
from device_service.views import SessionView, status_of
from shared.errors import DomainError, Invalid, NotFound
from shared.metrics import HTTP_DURATION, HTTP_REQUESTS

log = structlog.get_logger()

ROUTE = "/sessions/{session_id}/status/"
# Long polls are timed apart: their time is mostly the wait they asked for, and would
# hide the plain polls' latency (the PollSlow alert, the dashboard) behind it.
LONG_POLL_ROUTE = "/sessions/{session_id}/status/?wait"
LONG_POLL = re.compile(r"(^|&)wait=[^&]")
POLL_PATH = re.compile(r"/sessions/([^/]+)/status/?")
JSON = b"application/json"
ANSWERED_BY = (b"x-service", b"device")  # as every service's responses say who answered
ANSWERS_PER_SESSION = 64  # rendered answers kept per session (one per phone, and the web)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    etag: str | None = None

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(self.body)).encode()),
            ANSWERED_BY,
        ]
        if self.etag is not None:
            headers.append((b"etag", f'"{self.etag}"'.encode()))
        return headers


@dataclass(frozen=True, slots=True)
class Rendered:
    """An answer kept until the session changes, for one caller's `device_id` text."""

    device_id: UUID | None
    answer: Answer
    headers: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class PollRequest:
    session_id: UUID
    device_id: UUID | None
    wait: float | None
    version: str | None


def etag_of(body: bytes) -> str:
    return blake2b(body, digest_size=8).hexdigest()


def error_answer(exc: DomainError) -> Answer:
    if isinstance(exc, Invalid) and exc.field:
        return Answer(exc.status_code, json.dumps({exc.field: [exc.detail]}).encode())
    return Answer(exc.status_code, json.dumps({"detail": exc.detail}).encode())


UNAVAILABLE = Answer(503, b'{"detail":"The service is unavailable for a moment; retry."}')


def plain_device_text(query: str) -> str | None | bool:
    """The raw `device_id` of a query that is nothing else (None without one); False if
    the query is anything more (it is parsed in full)."""
    if not query:
        return None
    if query.startswith("device_id=") and not any(c in query for c in "&%+"):
        return query[10:]
    return False


def parse_poll(session_id: str, query: str, max_wait: float) -> PollRequest:
    try:
        sid = UUID(session_id)
    except ValueError:
        raise NotFound() from None
    params = dict(parse_qsl(query, keep_blank_values=True))
    return PollRequest(
        session_id=sid,
        device_id=_uuid_param(params.get("device_id"), "device_id"),
        wait=_wait_param(params.get("wait"), max_wait),
        version=params.get("version", "").strip('"') or None,
    )


def _uuid_param(value: str | None, field: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise Invalid("Must be a valid UUID.", field=field) from None


def _wait_param(value: str | None, max_wait: float) -> float | None:
    if value is None:
        return None
    try:
        wait = float(value)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= max_wait:  # also refuses nan and inf
        raise Invalid(f"Must be a number of seconds from 0 to {max_wait:g}.", field="wait")
    return wait


class StatusPoll:
    def __init__(self, read_model: ReadModel, public_base: str, max_wait: float):
        self.read_model, self.public_base, self.max_wait = read_model, public_base, max_wait

    def render(self, view: SessionView, device_id: UUID | None) -> bytes:
        body = status_of(view, device_id, self.public_base)
        return json.dumps(body, separators=(",", ":")).encode()

    def remembered(self, session_id: str, query: str) -> Rendered | None:
        """The answer rendered for this very caller since the session last changed."""
        view = self.read_model.by_text.get(session_id)
        if view is None:
            return None
        key = plain_device_text(query)
        rendered = view.answers.get(key) if key is not False else None
        if rendered is not None and rendered.device_id is not None:
            self.read_model.saw(view, rendered.device_id)
        return rendered

    def remember(
        self, session_id: str, query: str, view: SessionView, device_id: UUID | None, answer: Answer
    ) -> None:
        key = plain_device_text(query)
        trial = view.latest
        unregistered = (
            device_id is not None
            and trial is not None
            and trial.status == "recording"
            and device_id not in trial.slots
        )
        if key is False or unregistered or view.deleted:
            return  # a phone without its slot yet must come back to register
        if len(view.answers) >= ANSWERS_PER_SESSION:
            view.answers.clear()
        view.answers[key] = Rendered(device_id, answer, answer.headers)
        self.read_model.remember_text(session_id, view)

    async def answer(self, session_id: str, query: str) -> Answer:
        try:
            request = parse_poll(session_id, query, self.max_wait)
        except DomainError as exc:
            return error_answer(exc)
        try:
            view = await self._prepare(request)
            if view is None or view.deleted:  # deleted while this poll registered
                return error_answer(NotFound())
            body = self.render(view, request.device_id)
            answer = Answer(200, body, etag_of(body))
            if request.wait and request.version == answer.etag:
                return await self._changed(view, request)
        except Exception:  # the database, during a registration or a first load
            log.exception("status_poll_failed", session_id=session_id)
            return UNAVAILABLE
        self.remember(session_id, query, view, request.device_id, answer)
        return answer

    async def _prepare(self, request: PollRequest) -> SessionView | None:
        view = await self.read_model.session_for_poll(request.session_id)
        if view is not None and request.device_id is not None:
            self.read_model.saw(view, request.device_id)
            await self.read_model.register_if_recording(view, request.device_id)
        return view

    async def _changed(self, view: SessionView, request: PollRequest) -> Answer:
        """The state once it differs from `request.version`, or as it is after the wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (request.wait or 0)
        while True:
            await view.until_changed(deadline - loop.time())
            await self.read_model.register_if_recording(view, request.device_id)
            if view.deleted:
                return error_answer(NotFound())
            body = self.render(view, request.device_id)
            etag = etag_of(body)
            if etag != request.version or loop.time() >= deadline:
                return Answer(200, body, etag)


class PollFastPath:
    """Serves `GET /sessions/{id}/status/` without FastAPI; passes everything else on."""

    def __init__(self, app: ASGIApp, poll: StatusPoll):
        self.app, self.poll = app, poll
        self.served = HTTP_REQUESTS.labels("GET", ROUTE, "200")
        self.duration = HTTP_DURATION.labels("GET", ROUTE)
        self.long_duration = HTTP_DURATION.labels("GET", LONG_POLL_ROUTE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = POLL_PATH.fullmatch(scope["path"])
            if match is not None:
                browser, request_id = _browser_and_request_id(scope["headers"])
                if not browser:
                    await self.serve(scope, send, match.group(1), request_id)
                    return
        await self.app(scope, receive, send)

    async def serve(self, scope: Scope, send: Send, session_id: str, request_id) -> None:
        started = time.perf_counter()
        query = scope["query_string"].decode("latin-1")
        rendered = self.poll.remembered(session_id, query)
        if rendered is not None:
            answer, headers = rendered.answer, rendered.headers
        else:
            answer = await self.poll.answer(session_id, query)
            headers = answer.headers
        if request_id is not None:
            headers = [*headers, (b"x-request-id", request_id)]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        elapsed = time.perf_counter() - started
        (self.long_duration if LONG_POLL.search(query) else self.duration).observe(elapsed)
        if answer.status == 200:
            self.served.inc()
            return
        HTTP_REQUESTS.labels("GET", ROUTE, str(answer.status)).inc()
        log.info(
            "request_finished",
            method="GET",
            path=scope["path"],
            route=ROUTE,
            status=answer.status,
            duration_ms=round(elapsed * 1000, 2),
        )


def _browser_and_request_id(headers: list[tuple[bytes, bytes]]) -> tuple[bool, bytes | None]:
    request_id = None
    for name, value in headers:
        if name == b"origin":
            return True, None
        if name == b"x-request-id":
            request_id = value
    return False, request_id
