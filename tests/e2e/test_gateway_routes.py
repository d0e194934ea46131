"""The gateway's routing table, through the running nginx: each path reaches the service
that owns it (every service names itself in `X-Service`), over HTTP and over the HTTPS
address phones use; the services' own endpoints stay inside."""

import ssl
import uuid

import httpx
import pytest

from dev.layout import TEST

SESSION = uuid.uuid4()
ROUTES = [
    ("GET", f"/sessions/{SESSION}/status/", "device"),
    ("GET", f"/sessions/{SESSION}/status/?device_id={uuid.uuid4()}", "device"),
    ("GET", f"/sessions/{SESSION}/status/?ret_session=true", "session"),
    ("GET", f"/sessions/{SESSION}/status/?ret_session", "session"),  # present, however empty
    ("GET", f"/sessions/{SESSION}/status/?x=1&ret_session=", "session"),
    ("GET", f"/sessions/{SESSION}/status/?not_ret_session=1", "device"),
    ("GET", f"/sessions/{SESSION}/devices/", "device"),
    ("GET", f"/sessions/{SESSION}/get_presigned_url/", "upload"),
    ("GET", "/sessions/null/get_presigned_url/", "upload"),
    ("POST", "/uploads/", "upload"),
    ("PATCH", f"/videos/{uuid.uuid4()}/", "upload"),
    ("PATCH", f"/video/{uuid.uuid4()}/", "upload"),
    ("GET", "/results/", "results"),
    ("GET", f"/logs/{uuid.uuid4()}/on-ready/", "results"),
    ("GET", f"/sessions/{SESSION}/async-download/", "results"),
    ("GET", "/subjects/1/async-download/", "results"),
    ("GET", f"/sessions/{SESSION}/", "session"),
    ("GET", "/sessions/new/", "session"),
    ("GET", "/trials/dequeue/", "session"),
    ("POST", "/login/", "session"),
    ("GET", "/subjects/", "session"),
]


@pytest.mark.parametrize(("method", "path", "service"), ROUTES)
async def test_each_path_reaches_the_service_that_owns_it(gateway, method, path, service):
    response = await gateway.request(method, path)

    assert response.headers.get("x-service") == service, (response.status_code, response.text)


async def test_phones_reach_the_same_routes_over_https_on_443(stack):
    trust = ssl.create_default_context(cafile=str(TEST.ca_file))
    async with httpx.AsyncClient(base_url=TEST.public_url, verify=trust) as phone:
        response = await phone.get(f"/sessions/{SESSION}/status/?device_id={uuid.uuid4()}")

    assert response.headers.get("x-service") == "device"
    assert response.status_code == 404  # no such session: a clear answer, not an error


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/healthz", "/readyz"])
async def test_the_services_own_endpoints_stay_inside(gateway, path):
    response = await gateway.get(path)

    assert response.status_code == 404
    assert "x-service" not in response.headers
