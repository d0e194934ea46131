"""The upload service's API process: `uvicorn upload_service.main:create_app --factory`."""

from fastapi import FastAPI

from shared.app import create_service_app
from shared.storage import Storage
from upload_service.api import router
from upload_service.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(settings, [router])
    app.state.storage = Storage(settings)
    return app
