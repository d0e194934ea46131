"""Settings of the results service."""

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "results"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_results"
    metrics_port: int = 9104
