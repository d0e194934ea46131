"""What clients see when things go wrong (DRF's body shapes), and how request bodies are
read whichever way the original clients send them."""

import asyncio
import json
import re
import socket

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from shared.app import create_service_app
from shared.config import ServiceSettings
from shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from shared.forms import boolean_field, json_field, read_fields

ERRORS = {
    "domain": (DomainError("Bad request."), 400),
    "invalid": (Invalid("Trial name is too long."), 400),
    "not-authenticated": (NotAuthenticated("Authentication credentials were not provided."), 403),
    "unauthorized": (Unauthorized("Invalid token."), 401),
    "forbidden": (Forbidden("You do not have permission to perform this action."), 403),
    "not-found": (NotFound(), 404),
    "conflict": (Conflict("Trial already stopped."), 409),
    "gone": (Gone("The session has expired."), 410),
    "too-large": (PayloadTooLarge("Video is too large."), 413),
}


class Subject(BaseModel):
    name: str
    age: int = 0


def make_app():
    router = APIRouter()

    @router.get("/raise/{kind}")
    async def raise_error(kind: str):
        raise ERRORS[kind][0]

    @router.get("/invalid-field")
    async def invalid_field():
        raise Invalid("Ensure this field has no more than 64 characters.", field="name")

    @router.get("/crash")
    async def crash():
        raise RuntimeError("secret internals at /srv/app.py line 12")

    @router.post("/subjects")
    async def create_subject(subject: Subject):
        return subject

    @router.get("/search")
    async def search(q: str):
        return {"q": q}

    @router.api_route("/echo", methods=["GET", "POST", "PUT"])
    async def echo(request: Request):
        fields = await read_fields(request)
        echoed = {}
        for key, value in fields.items():
            if isinstance(value, UploadFile):
                echoed[key] = f"file:{value.filename}:{(await value.read()).decode()}"
                await value.close()
            else:
                echoed[key] = value
        return echoed

    settings = ServiceSettings(service_name="pytest", log_json=False)
    return create_service_app(settings, [router])


@pytest.fixture
async def client():
    # An exception the app let out would be raised here, as a server would see it.
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize(
    ("given", "kept"), [("web-7f3a.1", True), ("x" * 4100, False), ("a b\tc", False)]
)
async def test_a_request_id_is_echoed_only_if_it_looks_like_one(client, given, kept):
    """A 4 kB id echoed into the response head made nginx refuse the answer (a 502 after
    the request had done its work)."""
    response = await client.get("/search", params={"q": "x"}, headers={"X-Request-ID": given})

    echoed = response.headers["x-request-id"]
    assert (echoed == given) is kept
    assert kept or re.fullmatch(r"[0-9a-f]{32}", echoed)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    """One GET on an open HTTP/1.1 connection: the response's head (b"" if it was closed)."""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    await reader.readexactly(length)
    return head


class TestErrorBodies:
    @pytest.mark.parametrize("kind", sorted(ERRORS))
    async def test_domain_error_renders_detail_with_its_status(self, client, kind):
        error, status = ERRORS[kind]

        response = await client.get(f"/raise/{kind}")

        assert response.status_code == status
        assert response.json() == {"detail": error.detail}

    async def test_not_found_has_drf_default_message(self, client):
        response = await client.get("/raise/not-found")

        assert response.json() == {"detail": "Not found."}

    async def test_invalid_with_a_field_renders_a_field_error(self, client):
        response = await client.get("/invalid-field")

        assert response.status_code == 400
        assert response.json() == {"name": ["Ensure this field has no more than 64 characters."]}

    async def test_missing_body_field_is_required(self, client):
        response = await client.post("/subjects", json={"age": 3})

        assert response.status_code == 400
        assert response.json() == {"name": ["This field is required."]}

    async def test_wrongly_typed_field_names_the_field(self, client):
        response = await client.post("/subjects", json={"name": "x", "age": "old"})

        assert response.status_code == 400
        assert list(response.json()) == ["age"]
        [message] = response.json()["age"]
        assert isinstance(message, str) and message

    async def test_missing_query_parameter_is_required(self, client):
        response = await client.get("/search")

        assert response.status_code == 400
        assert response.json() == {"q": ["This field is required."]}

    async def test_unknown_route_is_not_found(self, client):
        response = await client.get("/no/such/route/")

        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}

    async def test_wrong_method_is_not_allowed(self, client):
        response = await client.delete("/subjects")

        assert response.status_code == 405
        assert response.json() == {"detail": "Method not allowed."}

    async def test_unexpected_exception_is_a_500_without_internals(self, client):
        response = await client.get("/crash")

        assert response.status_code == 500
        assert response.json() == {"detail": "A server error occurred."}
        assert "secret internals" not in response.text
        assert "Traceback" not in response.text

    async def test_the_connection_outlives_a_500(self):
        """The gateway reuses its connections to a service: a 500 must not close one."""
        listening = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog
        server = uvicorn.Server(uvicorn.Config(make_app(), log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[listening]))
        try:
            reader, writer = await asyncio.open_connection(
                sock=socket.create_connection(listening.getsockname())
            )
            crashed = await exchange(reader, writer, "/crash")
            then = await exchange(reader, writer, "/healthz")
            writer.close()
        finally:
            server.should_exit = True
            await serving

        assert crashed.startswith(b"HTTP/1.1 500 ")
        assert then.startswith(b"HTTP/1.1 200 ")

    async def test_health_answers_without_a_database(self, client):
        response = await client.get("/healthz")

        assert (response.status_code, response.json()) == (200, {"status": "ok"})


class TestReadFields:
    async def test_json_body(self, client):
        response = await client.post("/echo", json={"name": "walk", "meta": {"a": 1}})

        assert response.json() == {"name": "walk", "meta": {"a": 1}}

    async def test_urlencoded_body(self, client):
        response = await client.post("/echo", data={"name": "walk", "meta": '{"a": 1}'})

        assert response.json() == {"name": "walk", "meta": '{"a": 1}'}

    async def test_multipart_body_with_a_file(self, client):
        response = await client.post(
            "/echo",
            data={"device_id": "d-1"},
            files={"video": ("Cam0.mov", b"movie bytes", "video/quicktime")},
        )

        assert response.json() == {"device_id": "d-1", "video": "file:Cam0.mov:movie bytes"}

    async def test_get_with_a_form_body(self, client):
        """The pipeline's `requests.get(url, data={"fileName": ...})`."""
        response = await client.request("GET", "/echo", data={"fileName": "Cam0.mov"})

        assert response.json() == {"fileName": "Cam0.mov"}

    async def test_no_body_reads_as_no_fields(self, client):
        response = await client.put("/echo")

        assert (response.status_code, response.json()) == (200, {})

    async def test_bad_json_is_a_parse_error(self, client):
        response = await client.post(
            "/echo", content=b'{"name": ', headers={"content-type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["detail"].startswith("JSON parse error")

    @pytest.mark.parametrize(
        ("body", "complaint"),
        [
            (b'{"meta": {"a": NaN}}', "NaN is not a JSON value"),
            (b'{"meta": [-Infinity]}', "-Infinity is not a JSON value"),
            (b'{"weight": 1e400}', "number out of range: 1e400"),
        ],
    )
    async def test_numbers_beyond_json_are_a_parse_error(self, client, body, complaint):
        response = await client.post(
            "/echo", content=body, headers={"content-type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json() == {"detail": f"JSON parse error - {complaint}"}

    @pytest.mark.parametrize("depth", [32, 5000])
    async def test_json_nested_too_deep_is_refused(self, client, depth):
        body = '{"meta": ' + "[" * depth + "]" * depth + "}"

        response = await client.post(
            "/echo", content=body, headers={"content-type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["detail"].startswith(("JSON nested deeper", "JSON parse error"))

    async def test_json_nested_as_deep_as_allowed_is_read(self, client):
        meta = json.loads("[" * 31 + "]" * 31)  # 32 levels with the body's own

        response = await client.post("/echo", json={"meta": meta})

        assert response.json() == {"meta": meta}

    async def test_json_that_is_not_an_object_is_rejected(self, client):
        response = await client.post("/echo", json=["name"])

        assert response.status_code == 400
        assert response.json() == {"detail": "Expected a JSON object."}


class TestJsonField:
    def test_json_text_is_parsed(self):
        assert json_field('{"fps": 60, "model": "iPhone"}', "parameters") == {
            "fps": 60,
            "model": "iPhone",
        }

    def test_already_parsed_value_is_kept(self):
        assert json_field({"fps": 60}, "parameters") == {"fps": 60}
        assert json_field(None, "parameters") is None

    def test_blank_text_is_none(self):
        assert json_field("  ", "meta") is None

    @pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', "[1e999]"])
    def test_json_text_with_numbers_beyond_json_is_invalid(self, text):
        with pytest.raises(Invalid) as raised:
            json_field(text, "meta")

        assert (raised.value.field, raised.value.detail) == ("meta", "Value must be valid JSON.")

    @pytest.mark.parametrize("depth", [40, 5000])
    def test_json_text_nested_too_deep_is_invalid(self, depth):
        with pytest.raises(Invalid):
            json_field("[" * depth + "]" * depth, "meta")

    def test_bad_json_is_invalid_for_that_field(self):
        with pytest.raises(Invalid) as raised:
            json_field("{fps: 60", "parameters")

        assert (raised.value.field, raised.value.detail) == (
            "parameters",
            "Value must be valid JSON.",
        )

    async def test_a_file_is_not_json(self):
        import io

        with pytest.raises(Invalid) as raised:
            json_field(UploadFile(io.BytesIO(b"{}"), filename="meta.json"), "meta")

        assert raised.value.field == "meta"


class TestBooleanField:
    @pytest.mark.parametrize(
        ("value", "read"),
        [(True, True), ("true", True), ("On", True), (1, True), ("1", True), ("yes", True)]
        + [(False, False), ("False", False), ("off", False), (0, False), ("no", False)],
    )
    def test_the_spellings_forms_and_json_use(self, value, read):
        assert boolean_field(value, "newsletter") is read

    @pytest.mark.parametrize("value", ["notbool", "", [1], {"a": 1}, 2, None])
    def test_anything_else_is_invalid_for_that_field(self, value):
        with pytest.raises(Invalid) as raised:
            boolean_field(value, "newsletter")

        assert (raised.value.field, raised.value.detail) == (
            "newsletter",
            "Must be a valid boolean.",
        )
