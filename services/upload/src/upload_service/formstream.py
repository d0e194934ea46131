"""A `multipart/form-data` body read as a stream, never held whole in memory or on disk.

python-multipart's push parser is fed from `request.stream()`; its callbacks queue small
events that the async reader hands out one at a time. Ordinary fields are kept (each
capped at a few kilobytes); the one file part a caller names is passed on chunk by chunk
as it arrives, so a multi-gigabyte video costs the same memory as a small one, and the
client is slowed down by TCP back-pressure whenever the consumer is slower than it.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from shared.errors import DomainError, Invalid, PayloadTooLarge
from shared.forms import json_object

MAX_FIELDS = 32
CUT_SHORT = "The request body ended before the end of the file: upload it again."


class RequestTimeout(DomainError):
    status_code = 408


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str
    content_type: str


class FormStream:
    """Fields up to a file part (`next_file`), that file's bytes (`chunks`), then the rest."""

    def __init__(
        self,
        request: Request,
        file_fields: frozenset[str],
        max_field_bytes: int = 16384,
        read_timeout: float = 120.0,
    ):
        self.boundary = _boundary(request.headers.get("content-type", ""))
        self.file_fields, self.max_field_bytes = file_fields, max_field_bytes
        self.read_timeout = read_timeout
        self.fields: dict[str, str] = {}
        self._body = request.stream()
        self._events: deque[tuple] = deque()
        self._headers: list[tuple[bytes, bytes]] = []
        self._name, self._value = b"", b""
        self._ended = False
        self._parser = python_multipart.MultipartParser(
            self.boundary,
            {
                "on_part_begin": lambda: self._headers.clear(),
                "on_header_field": lambda d, s, e: self._more_header(name=d[s:e]),
                "on_header_value": lambda d, s, e: self._more_header(value=d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": lambda: self._events.append(("part", self._part())),
                "on_part_data": lambda d, s, e: self._events.append(("data", d[s:e])),
                "on_part_end": lambda: self._events.append(("end",)),
            },
        )

    async def next_file(self) -> FilePart | None:
        """Read fields into `self.fields` until a file part starts; None at the body's end."""
        while (event := await self._next()) is not None:
            if event[0] == "part" and event[1][0] in self.file_fields:
                return FilePart(*event[1])
            if event[0] == "part":
                await self._read_field(event[1][0])
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The current file part's bytes, as they arrive; Invalid if the body is cut short."""
        while (event := await self._next()) is not None:
            if event[0] == "end":
                return
            yield event[1]
        raise Invalid(CUT_SHORT, field="file")

    async def rest(self) -> dict[str, str]:
        """Read the fields after the file part (any further file part is refused)."""
        while (event := await self._next()) is not None:
            if event[0] == "part" and event[1][0] in self.file_fields:
                raise Invalid("Only one file may be sent.", field=event[1][0])
            if event[0] == "part":
                await self._read_field(event[1][0])
        return self.fields

    async def _read_field(self, name: str) -> None:
        value = bytearray()
        while (event := await self._next()) is not None and event[0] == "data":
            value += event[1]
            if len(value) > self.max_field_bytes:
                raise Invalid(f"This field is longer than {self.max_field_bytes} bytes.", name)
        if event is None:
            raise Invalid("The request body ended inside a field.", field=name)
        if len(self.fields) >= MAX_FIELDS:
            raise Invalid(f"The form has more than {MAX_FIELDS} fields.")
        self.fields[name] = value.decode("utf-8", errors="replace")

    async def _next(self) -> tuple | None:
        """The next parser event, reading more of the body as needed; None at its end."""
        while not self._events:
            if self._ended:
                return None
            try:
                async with asyncio.timeout(self.read_timeout):
                    chunk = await anext(self._body, None)
            except ClientDisconnect:
                raise Invalid(CUT_SHORT, field="file") from None
            except TimeoutError:
                raise RequestTimeout(f"Nothing was received for {self.read_timeout:g} s.") from None
            if chunk is None:
                self._ended = True
            elif chunk:
                self._write(chunk)
        return self._events.popleft()

    def _write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError:
            raise Invalid("The request body is not valid multipart/form-data.") from None

    def _more_header(self, name: bytes = b"", value: bytes = b"") -> None:
        self._name += name
        self._value += value

    def _header_end(self) -> None:
        self._headers.append((self._name.lower(), self._value))
        self._name, self._value = b"", b""

    def _part(self) -> tuple[str, str, str]:
        headers = dict(self._headers)
        _, options = parse_options_header(headers.get(b"content-disposition"))
        if b"name" not in options:
            raise Invalid("A form part has no name.")
        content_type = headers.get(b"content-type", b"application/octet-stream")
        return (
            options[b"name"].decode("utf-8", errors="replace"),
            options.get(b"filename", b"").decode("utf-8", errors="replace"),
            content_type.decode("latin-1").strip()[:128],
        )


def _boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise Invalid("The body must be multipart/form-data.")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise Invalid("The multipart/form-data body has no valid boundary.")
    return boundary


async def small_fields(request: Request, limit: int) -> dict[str, Any]:
    """A JSON or form-encoded body of at most `limit` bytes, as a dict of its fields."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge("Request body too large.")
    kind, _ = parse_options_header(request.headers.get("content-type", ""))
    if kind == b"application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return json_object(body)
