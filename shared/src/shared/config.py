"""Settings every service reads from its environment.

Each service subclasses `ServiceSettings` with its own knobs. Settings are built in
entrypoints (`create_app`, the worker's `main`) and passed down, never at import time.
Defaults point at the loopback PostgreSQL, RabbitMQ and S3 endpoint of a developer machine.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class S3Settings(BaseSettings):
    """Where objects (videos, results, QR codes) live. boto3 talks to this endpoint."""

    model_config = SettingsConfigDict(extra="ignore")

    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    # The endpoint that clients (phones, browsers, the pipeline) can reach; presigned URLs
    # embed it. Defaults to s3_endpoint_url.
    s3_public_endpoint_url: str | None = None
    s3_bucket: str = "opencap"
    s3_region: str = "us-east-1"
    aws_access_key_id: str = "opencaplocal"
    aws_secret_access_key: str = Field(default="opencaplocalsecret", repr=False)
    media_url_ttl_seconds: int = 3600


class ServiceSettings(S3Settings):
    """Connection settings shared by the four services."""

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    public_url: str = "http://127.0.0.1:8000"
    # Browser origins allowed to call the API (the web app is served from another origin).
    cors_origins: list[str] = ["http://localhost:8080", "http://127.0.0.1:8080"]
    log_level: str = "INFO"
    log_json: bool = True
    # Address and port of the worker process's Prometheus endpoint (the API serves /metrics
    # itself); every interface in a container, loopback for local runs.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9100
    # Consumer retries before a message goes to the dead-letter queue, and the first delay.
    consumer_max_attempts: int = 5
    consumer_retry_delay_seconds: float = 0.5
    outbox_poll_seconds: float = 1.0

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")
