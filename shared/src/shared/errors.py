"""Domain errors and the one handler that renders every error the way the clients expect.

The stock web app shows every value of an error body and expects DRF's shapes:
`{"detail": "<message>"}`, or `{"<field>": ["<message>", ...]}` for invalid input.
Nothing ever answers with a traceback.
"""

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger()


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Invalid(DomainError):
    """Bad input. `field` renders the DRF field-error shape `{field: [detail]}`."""

    status_code = 400

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(detail)
        self.field = field


class NotAuthenticated(DomainError):
    # DRF answers 403 (not 401) when credentials are missing or wrong; the clients rely on it.
    status_code = 403


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404

    def __init__(self, detail: str = "Not found."):
        super().__init__(detail)


class Conflict(DomainError):
    status_code = 409


class Gone(DomainError):
    status_code = 410


class PayloadTooLarge(DomainError):
    status_code = 413


class Unavailable(DomainError):
    """A dependency (mail server, object store) failed; the client may try again."""

    status_code = 503


REQUIRED = "This field is required."
STATUS_DETAILS = {404: "Not found.", 405: "Method not allowed.", 413: "Request body too large."}


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "detail"


def validation_body(exc: RequestValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for error in exc.errors():
        message = REQUIRED if error.get("type") == "missing" else str(error.get("msg", "Invalid."))
        fields.setdefault(_field_name(tuple(error.get("loc", ()))), []).append(message)
    return fields


async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
    if isinstance(exc, Invalid) and exc.field:
        return JSONResponse({exc.field: [exc.detail]}, status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(validation_body(exc), status_code=400)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
    if detail is None or detail in ("Not Found", "Method Not Allowed"):
        detail = STATUS_DETAILS.get(exc.status_code, "Request failed.")
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


class UnexpectedErrors:
    """Any other exception: logged with its traceback, answered with a bare 500.

    Not an exception handler: Starlette re-raises after one of those has answered, and the
    server then closes the connection. The gateway keeps connections to the services open
    and would send the next request, someone else's, down the closed one: a 502 for a
    POST or PATCH, which nginx does not retry."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        except Exception:
            log.exception("request_failed", path=scope["path"])
            if started:  # too late for a response: the server drops the connection
                raise
            response = JSONResponse({"detail": "A server error occurred."}, status_code=500)
            await response(scope, receive, send)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrors)
