"""The session service's API process: `uvicorn session_service.main:create_app --factory`."""

from fastapi import FastAPI

from session_service.api import router
from session_service.config import Settings
from shared.app import create_service_app
from shared.storage import Storage


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(settings, [router])
    app.state.storage = Storage(settings)
    return app
