"""Settings of the session service."""

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "session"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_session"
    metrics_port: int = 9101
    qr_url_ttl_seconds: int = 12000
