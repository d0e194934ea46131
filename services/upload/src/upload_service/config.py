"""Settings of the upload service."""

import secrets
from ipaddress import IPv4Network, IPv6Network

from pydantic import Field

from shared.config import ServiceSettings

MiB = 1024**2


class Settings(ServiceSettings):
    service_name: str = "upload"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/opencap_upload"
    metrics_port: int = 9103
    # Key id and secret of the upload policies this service signs and checks. Every
    # replica must share the secret: set UPLOAD_SIGNING_SECRET in any real deployment.
    upload_access_key_id: str = "OPENCAPUPLOAD"
    upload_signing_secret: str = Field(default_factory=lambda: secrets.token_hex(32), repr=False)
    # How long a presigned upload (the phones' POST policy, or a presigned PUT) may be
    # *started*: the expiry is checked when an upload begins, never cut one that is under
    # way. 2 h lets a phone on bad Wi-Fi (8 Mbit/s) fail a 1 GB upload late (~17 min) and
    # retry twice with the same policy, as the iOS app does, and still covers a 5 GiB video
    # at ~20 Mbit/s with one retry. (The original: 20 min, measured from the presign.)
    upload_policy_ttl_seconds: int = 7200
    max_video_bytes: int = 5 * 1024**3
    # Result files of the stock pipeline (`GET /sessions/null/get_presigned_url/` with a
    # `fileName`): opencap-core asks without a token, so that call stays open unless this
    # is turned off (once every worker uses the SDK, which needs no presign). A caller who
    # does send a token must be in the backend or admin group. Keys are made here.
    anonymous_result_presign: bool = True
    # ... and, if any are given, only from these networks (where the GPU workers run), e.g.
    # RESULT_PRESIGN_NETWORKS='["10.0.0.0/8"]': the address is the one the gateway saw.
    result_presign_networks: list[IPv4Network | IPv6Network] = []
    max_result_bytes: int = 2 * 1024**3
    # Streaming into S3: parts of this size (>= 5 MiB), taken from a pool of this many
    # buffers shared by all uploads of the process (memory bound: 4 x 6 MiB = 24 MiB),
    # with at most this many parts of one upload in flight at once.
    upload_part_bytes: int = 6 * MiB
    upload_buffers: int = 4
    upload_parts_in_flight: int = 3
    # A phone that sends nothing for this long mid-upload is cut off (408).
    upload_read_timeout_seconds: float = 120.0
    max_form_field_bytes: int = 16 * 1024
    # Direct-to-S3 uploads (new clients): one presigned PUT up to this size, else a
    # multipart upload with presigned part URLs of at least `direct_part_bytes`.
    direct_put_max_bytes: int = 64 * MiB
    direct_part_bytes: int = 16 * MiB
    # Upload deadlines: a trial whose camera set is final waits this long for its missing
    # videos, counted from the final set or from the latest presign or upload progress of
    # its session, then `upload.timed_out` names the missing phones. Calibration and
    # neutral captures are a few seconds long: they get the short deadline. The movement
    # deadline outlasts the iOS app's whole retry budget (3 attempts x 180 s idle timeout).
    upload_deadline_seconds: int = 600
    upload_deadline_short_seconds: int = 120
    short_deadline_trials: tuple[str, ...] = ("calibration", "neutral")
    # At the deadline, process the trial with the videos that did arrive (never with none)
    # instead of failing it (opencap-core's `all_available`).
    upload_timeout_process_available: bool = False
    # Progress of a streaming upload extends the deadline at most this often.
    upload_progress_touch_seconds: float = 30.0
    deadline_check_seconds: float = 10.0
    deadline_batch_size: int = 100
    # Upload keys issued this long ago and never used (no upload stored under them) are
    # forgotten by the worker, checked this often, in batches of this many. Such a key's
    # policy expired long before; an abandoned multipart upload is the bucket's lifecycle
    # rule's to clean (README, Operations).
    unused_key_retention_days: float = 7.0
    unused_key_check_seconds: float = 3600.0
    unused_key_batch_size: int = 1000
