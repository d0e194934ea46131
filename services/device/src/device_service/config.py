"""Settings of the device service."""

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "device"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_device"
    metrics_port: int = 9102
