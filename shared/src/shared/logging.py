"""structlog configuration and the HTTP edge middleware (request id, correlation id, access log).

Every log line carries the bound context: `request_id` for HTTP, `event_id` and
`correlation_id` for consumed events. The correlation id starts at the gateway (or the
client's `X-Correlation-ID`), is stored with every event the request causes, and is bound
again by whoever consumes them, so one user action can be followed through every service.
"""

import logging
import re
import sys
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import HTTP_DURATION, HTTP_REQUESTS


def current_correlation_id() -> str | None:
    """The correlation id bound for what runs now (a request, a consumed event), if any."""
    return structlog.contextvars.get_contextvars().get("correlation_id")


def configure_logging(level: str = "INFO", json: bool = True, service: str = "") -> None:
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service:
        processors.append(lambda _, __, event: {**event, "service": service})
    renderer = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stdout, format="%(name)s %(message)s")
    for noisy in ("uvicorn.access", "aiormq", "aio_pika", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# A request or correlation id a client sends is kept if it looks like one; anything else
# (say 4 kB, which would be echoed into a response header nginx refuses) gets a fresh id.
GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _given_id(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            text = value.decode("latin-1")
            return text if GIVEN_ID.fullmatch(text) else None
    return None


class RequestContextMiddleware:
    """Binds request and correlation ids, logs each request once and records its metrics.

    Plain ASGI (not BaseHTTPMiddleware) so the phones' 1 Hz poll stays cheap. Requests to
    `quiet_paths` (health, metrics) and successful `quiet_routes` are logged at debug level.
    """

    def __init__(self, app: ASGIApp, quiet_routes: frozenset[str] = frozenset(), service: str = ""):
        self.app = app
        # Every response names the service that answered (the gateway's routing is visible).
        self.service_header = (b"x-service", service.encode())
        self.quiet_routes = quiet_routes | {"/healthz", "/readyz", "/metrics"}
        self.log = structlog.get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given_id(scope, b"x-request-id") or uuid.uuid4().hex
        correlation_id = _given_id(scope, b"x-correlation-id") or request_id
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                headers += [(b"x-request-id", request_id.encode()), self.service_header]
            await send(message)

        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=correlation_id)
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._finish(scope, status, time.perf_counter() - started)
            structlog.contextvars.clear_contextvars()

    def _finish(self, scope: Scope, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
        HTTP_DURATION.labels(scope["method"], route).observe(elapsed)
        quiet = route in self.quiet_routes and status < 400
        (self.log.debug if quiet else self.log.info)(
            "request_finished",
            method=scope["method"],
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )
