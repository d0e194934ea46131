"""Settings of the upload service."""

import secrets

from pydantic import Field

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "upload"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_upload"
    metrics_port: int = 9103
    # Key id and secret of the upload policies this service signs and checks. Every
    # replica must share the secret: set UPLOAD_SIGNING_SECRET in any real deployment.
    upload_access_key_id: str = "OPENCAPUPLOAD"
    upload_signing_secret: str = Field(default_factory=lambda: secrets.token_hex(32), repr=False)
    # A phone on bad Wi-Fi uploading a long 240 fps video needs time (the original: 20 min).
    upload_policy_ttl_seconds: int = 3600
    max_video_bytes: int = 5 * 1024**3
