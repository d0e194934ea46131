"""Settings of the device service."""

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "device"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_device"
    metrics_port: int = 9102
    # The API's read model: sessions changed within this many days are loaded at startup
    # (older ones on their first poll); the database is re-read for recent changes every
    # `read_model_resync_seconds`, looking back `read_model_resync_overlap_seconds` more.
    read_model_window_days: float = 30.0
    read_model_resync_seconds: float = 2.0
    read_model_resync_overlap_seconds: float = 30.0
    # Replicas tell each other which phones polled them this often; a phone counts as
    # connected while its last poll is at most `connected_seconds` old.
    presence_seconds: float = 1.0
    connected_seconds: float = 5.0
    # The longest `?wait=` a long poll may ask for (the iPhone's request timeout is 60 s).
    long_poll_max_seconds: float = 55.0
