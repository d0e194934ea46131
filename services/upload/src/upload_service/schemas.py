"""Request and response bodies of the upload service, in the original API's shapes."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from shared.errors import Invalid
from shared.forms import boolean_field, json_field
from shared.storage import Storage
from upload_service.models import Video

FLAGS = {"isLidar": "is_lidar", "saved_local": "saved_local"}


@dataclass(frozen=True)
class VideoPatch:
    """What a `PATCH /videos/{id}/` may change. `trial` and `device_id` are read-only: they
    are kept only to refuse a change. `stored` is a legacy inline upload: (key, size)."""

    video_url: str | None = None
    parameters: dict[str, Any] | None = None
    is_lidar: bool | None = None
    saved_local: bool | None = None
    trial: str | None = None
    device_id: str | None = None
    stored: tuple[str, int] | None = None

    @property
    def key(self) -> str | None:
        return self.stored[0] if self.stored else self.video_url


def video_patch(fields: dict[str, Any], stored: tuple[str, int] | None = None) -> VideoPatch:
    """The PATCH body (JSON, form or multipart fields); other fields are ignored."""
    video_url = fields.get("video_url")
    if video_url is not None and not isinstance(video_url, str):
        raise Invalid("Not a valid string.", field="video_url")
    if video_url is not None and len(video_url) > 256:
        raise Invalid("Ensure this field has no more than 256 characters.", field="video_url")
    return VideoPatch(
        video_url=video_url or None,
        parameters=_json_object(fields.get("parameters"), "parameters"),
        trial=_text(fields.get("trial")),
        device_id=_text(fields.get("device_id")),
        stored=stored,
        **{attr: _flag(fields.get(name), name) for name, attr in FLAGS.items()},
    )


def _json_object(value: Any, field: str) -> dict[str, Any] | None:
    value = json_field(value, field)
    if value is not None and not isinstance(value, dict):
        raise Invalid("Expected a JSON object.", field=field)
    return value


def _flag(value: Any, field: str) -> bool | None:
    return None if value is None else boolean_field(value, field)


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip().lower()


class DirectUploadRequest(BaseModel):
    """`POST /videos/{id}/upload-url/`: the size of the file a new client will upload."""

    size: int = Field(gt=0)
    content_type: str = Field(
        default="video/quicktime", max_length=128, pattern=r"^video/[\w.+-]+$"
    )


class UploadedPart(BaseModel):
    part_number: int = Field(ge=1, le=10000)
    etag: str = Field(max_length=128)


class DirectUploadDone(BaseModel):
    """`POST /videos/{id}/upload-url/complete/` (or `abort/`) for a multipart upload."""

    key: str = Field(max_length=512)
    upload_id: str = Field(max_length=1024)
    parts: list[UploadedPart] = Field(default_factory=list, max_length=10000)


def _timestamp(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def video_json(video: Video, storage: Storage | None) -> dict[str, Any]:
    """The original's Video shape; `video` is a download link only for readers (`storage`)."""
    return {
        "id": str(video.id),
        "trial": str(video.trial_id),
        "device_id": str(video.device_id),
        "video": storage.presigned_get(video.key) if video.key and storage else None,
        "video_thumb": None,
        "parameters": video.parameters,
        "created_at": _timestamp(video.created_at),
        "updated_at": _timestamp(video.updated_at),
    }
