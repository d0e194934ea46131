"""The original API's Result shape (field names and order kept) and the body of the
pipeline's `POST /results/`: form, multipart or JSON, with `meta` as JSON text or JSON.

Output has no `media_url` key (it is input only); `media` is a presigned GET URL.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from starlette.datastructures import UploadFile

from results_service.models import Result
from shared.errors import Invalid
from shared.forms import json_field

REQUIRED = "This field is required."
# The original's column sizes: Result.tag Char(32), device_id Char(36), media max 500.
LIMITS = {"tag": 32, "device_id": 36, "media_url": 500}


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def result_json(result: Result, presign: Callable[[str], str]) -> dict[str, Any]:
    return {
        "id": result.id,
        "trial": str(result.trial_id),
        "tag": result.tag,
        "media": presign(result.key),
        "meta": result.meta,
        "device_id": result.device_id,
        "created_at": iso(result.created_at),
        "updated_at": iso(result.updated_at),
    }


@dataclass(frozen=True)
class ResultInput:
    trial_id: UUID
    tag: str | None
    device_id: str | None
    media_url: str | None
    media: UploadFile | None
    meta: Any


def result_input(fields: dict[str, Any]) -> ResultInput:
    """The POST's fields, checked; raises `Invalid` with DRF's field-error shape."""
    media = fields.get("media")
    media = media if isinstance(media, UploadFile) else None
    media_url = text(fields, "media_url")
    if media is None and media_url is None:
        raise Invalid(REQUIRED, field="media_url")
    return ResultInput(
        trial_id=uuid_field(fields, "trial"),
        tag=text(fields, "tag"),
        device_id=text(fields, "device_id"),
        media_url=media_url,
        media=media,
        meta=meta_field(fields),
    )


def uuid_field(fields: dict[str, Any], name: str) -> UUID:
    value = fields.get(name)
    if value is None or value == "":
        raise Invalid(REQUIRED, field=name)
    try:
        return UUID(str(value))
    except ValueError:
        raise Invalid(f'"{value}" is not a valid UUID.', field=name) from None


def text(fields: dict[str, Any], name: str) -> str | None:
    """A short text field; blank or absent is None."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid("Not a valid string.", field=name)
    value = str(value)
    if "\x00" in value:
        raise Invalid("Null characters are not allowed.", field=name)
    if len(value) > LIMITS[name]:
        raise Invalid(f"Ensure this field has no more than {LIMITS[name]} characters.", name)
    return value


def meta_field(fields: dict[str, Any]) -> Any:
    meta = json_field(fields.get("meta"), "meta")
    if "\\u0000" in json.dumps(meta):
        raise Invalid("Null characters are not allowed.", field="meta")
    return meta
