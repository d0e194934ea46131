"""Request bodies as the original API's clients send them.

The same call may arrive as JSON, as `application/x-www-form-urlencoded` or as multipart
(the pipeline uses python-requests `data=`), and JSON fields such as `meta` or
`parameters` may come as JSON text inside a form field. Some GET requests carry a form
body too (the pipeline's `get_presigned_url` sends `fileName` that way).
"""

import json
import math
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from shared.errors import Invalid


async def read_fields(request: Request) -> dict[str, Any]:
    """The body's fields as a dict; uploaded files stay `UploadFile` objects."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {key: value for key, value in form.multi_items()}
    return json_object(await request.body())


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON body that must be an object; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        data = parse_json(body)
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"JSON parse error - {exc}") from None
    if not isinstance(data, dict):
        raise Invalid("Expected a JSON object.")
    return storable(data)


def parse_json(text: str | bytes) -> Any:
    """Strict JSON: Python's parser also takes NaN, Infinity and numbers beyond a double
    (1e400), which no client means and which PostgreSQL's JSON types refuse."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {text[:20]}")
    return number


MAX_DEPTH = 32  # levels of nested objects and lists; deeper is no client's data


def storable(value: Any, depth: int = 0) -> Any:
    """`value` if every text in it can be stored: no NUL character, no lone surrogate
    (JSON lets `\\u0000` and `\\ud800` through; PostgreSQL refuses both), and it is not
    nested deeper than MAX_DEPTH (serializing it again would fail further on)."""
    if isinstance(value, str):
        if "\x00" in value or not value.isascii() and _has_lone_surrogate(value):
            raise Invalid("Text cannot contain NUL characters or invalid Unicode.")
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels.")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            storable(key, depth + 1)
            storable(item, depth + 1)
    return value


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def close_files(fields: dict[str, Any]) -> None:
    """Close the uploaded files among `fields` (their spooled temporary files)."""
    for value in fields.values():
        if isinstance(value, UploadFile):
            await value.close()


TRUE_TEXTS = ("true", "1", "on", "yes", "y")
FALSE_TEXTS = ("false", "0", "off", "no", "n")


def boolean_field(value: Any, field: str) -> bool:
    """A boolean as JSON or a form sends it (the spellings DRF's BooleanField takes)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in TRUE_TEXTS:
        return True
    if text in FALSE_TEXTS:
        return False
    raise Invalid("Must be a valid boolean.", field=field)


def json_field(value: Any, field: str) -> Any:
    """A JSON value given either as JSON or as JSON text in a form field."""
    if isinstance(value, str):
        try:
            parsed = parse_json(value) if value.strip() else None
        except (ValueError, RecursionError):
            raise Invalid("Value must be valid JSON.", field=field) from None
        return storable(parsed)
    if isinstance(value, UploadFile):
        raise Invalid("Value must be valid JSON.", field=field)
    return value
