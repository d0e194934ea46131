"""The device service's API process: `uvicorn device_service.main:create_app --factory`."""

from fastapi import FastAPI

from device_service.api import router
from device_service.config import Settings
from shared.app import create_service_app

POLL_ROUTE = "/sessions/{session_id}/status/"


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(), [router], quiet_routes=frozenset({POLL_ROUTE})
    )
