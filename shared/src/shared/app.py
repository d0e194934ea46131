"""What every service's FastAPI app has: database lifespan, errors, health, metrics, logging."""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from shared.config import ServiceSettings
from shared.db import create_engine, create_sessionmaker, ping
from shared.errors import add_error_handlers
from shared.logging import RequestContextMiddleware, configure_logging
from shared.metrics import metrics_endpoint

Hook = Callable[[FastAPI], Awaitable[None]]


def create_service_app(
    settings: ServiceSettings,
    routers: Iterable[APIRouter],
    *,
    on_startup: Hook | None = None,
    on_shutdown: Hook | None = None,
    quiet_routes: frozenset[str] = frozenset(),
) -> FastAPI:
    configure_logging(settings.log_level, settings.log_json, settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(settings.database_url)
        app.state.db = create_sessionmaker(app.state.engine)
        if on_startup:
            await on_startup(app)
        try:
            yield
        finally:
            if on_shutdown:
                await on_shutdown(app)
            await app.state.engine.dispose()

    app = FastAPI(
        title=f"OpenCap {settings.service_name}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    add_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-Correlation-ID"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )
    app.add_middleware(
        RequestContextMiddleware, quiet_routes=quiet_routes, service=settings.service_name
    )
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.add_api_route("/healthz", _healthz, include_in_schema=False)
    app.add_api_route("/readyz", _readyz, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    return app


async def _healthz() -> dict:
    return {"status": "ok"}


async def _readyz(request: Request) -> JSONResponse:
    try:
        await ping(request.app.state.engine)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": repr(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})
