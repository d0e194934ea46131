"""The upload service's API process: `uvicorn upload_service.main:create_app --factory`."""

import structlog
from fastapi import FastAPI

from shared.app import create_service_app
from shared.storage import Storage
from upload_service.api import router
from upload_service.config import Settings
from upload_service.direct import DirectS3
from upload_service.streaming import Streamer

log = structlog.get_logger()


async def _shutdown(app: FastAPI) -> None:
    app.state.streamer.shutdown()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(settings, [router], on_shutdown=_shutdown)
    app.state.storage = Storage(settings)
    app.state.streamer = Streamer(
        app.state.storage,
        settings.upload_part_bytes,
        settings.upload_buffers,
        settings.upload_parts_in_flight,
    )
    app.state.direct = DirectS3(settings, app.state.streamer)
    if "upload_signing_secret" not in settings.model_fields_set:
        log.warning(
            "upload_signing_secret_not_set",
            detail="a random secret is used: replicas would refuse each other's "
            "upload policies; set UPLOAD_SIGNING_SECRET",
        )
    return app
