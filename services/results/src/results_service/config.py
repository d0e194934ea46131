"""Settings of the results service."""

from pydantic import Field

from shared.config import ServiceSettings

MiB = 1024**2


class Settings(ServiceSettings):
    service_name: str = "results"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_results"
    metrics_port: int = 9104
    # Session archives: streamed into S3 as a multipart upload of parts this size (S3's
    # minimum is 5 MiB; the memory a build holds is about one part).
    archive_part_bytes: int = Field(default=8 * MiB, ge=5 * MiB)
    # How often the worker looks for requested archives.
    archive_poll_seconds: float = 1.0
    # A running build renews its claim every quarter of this; a claim older than this is
    # presumed dead (its worker died) and the build is retried.
    archive_lease_seconds: int = Field(default=120, ge=4)
    # Tries before an archive is reported failed to the polling web app.
    archive_max_attempts: int = 3
    # Archives (rows and objects) are deleted this long after they were built.
    archive_keep_days: int = 4
    archive_cleanup_seconds: float = 3600.0
    # An anonymous caller asking again for a public session's archive gets the task already
    # asked for (pending, being built, or ready since less than this) instead of a new build.
    archive_reuse_seconds: int = 600
    # Deleted sessions and trials are remembered this long, so late events about them
    # (retries, a job finishing after the deletion) do not bring them back.
    forgotten_keep_days: int = 30
    # The LaiArnold model's geometry (*.vtp), copied into archives whose OpenSim model is a
    # "Lai" model; the original reads mc-opencap-public/geometries_vtp/LaiArnold/. Seed the
    # bucket with it under this prefix; nothing is added where it is absent.
    archive_geometry_prefix: str = "geometries_vtp/LaiArnold/"
