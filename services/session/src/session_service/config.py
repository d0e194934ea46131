"""Settings of the session service (environment variables of the same names, upper case)."""

from pydantic import Field

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "session"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_session"
    metrics_port: int = 9101
    qr_url_ttl_seconds: int = 12000
    # The web app's address: password-reset links point there (a `host` sent by the client
    # is used only if it is this one or one of the CORS origins).
    web_app_url: str = "http://localhost:8080"
    # Mail goes through SMTP when smtp_host is set, and to the log otherwise.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = True
    mail_from: str = "OpenCap <noreply@opencap.local>"
    # The e-mail code step after login. `otp_auto_pass` makes it a formality (single-user
    # installs): no mail is sent and any code passes.
    otp_auto_pass: bool = False
    otp_code_ttl_seconds: int = 900
    otp_max_failures: int = 5
    otp_remember_days: int = 90
    password_reset_ttl_hours: int = 72
    # Trials: calibration and neutral stop themselves after this window (phones poll once a
    # second: the window leaves every phone at least two polls to see `recording`); a
    # repeated `record` within the dedupe window returns the same trial; the janitor ends
    # trials left recording longer than the timeout.
    capture_window_seconds: float = 3.0
    record_dedupe_seconds: float = 5.0
    recording_timeout_seconds: int = 600
    # Processing: a worker's lease on a trial (renewed by its heartbeats); the stock
    # pipeline's HTTP dequeue has no heartbeat, so its lease covers a whole long job. A
    # trial whose worker vanished is queued again, at most `processing_max_attempts` times.
    processing_lease_seconds: int = 120
    # A job's results are being recorded (by the results service) from the worker's
    # completion on: the lease covers that, heartbeats having stopped.
    results_lease_seconds: int = 1800
    legacy_lease_seconds: int = 4 * 3600
    processing_max_attempts: int = 3
    # A job nobody claimed this long after it was sent, while its queue holds nothing, is
    # no longer in the broker (lost, or dead-lettered): it is sent again, at most
    # `max_job_resends` times, then its trial fails (it must not wait forever).
    resend_unclaimed_seconds: int = 1800
    max_job_resends: int = 3
    # The stock pipeline posts a neutral trial's images to the results service, then sets
    # the trial `done` here: for this long after, `neutral_img/` waits for the images (they
    # arrive by event, within milliseconds) before calling a done trial without any an error.
    results_grace_seconds: float = 10.0
    # Sessions never used (no trial, no chained session) are removed after this many days.
    empty_session_retention_days: int = 7
