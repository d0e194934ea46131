"""One running system for all end-to-end tests: every process of the stack, on the ports,
databases and RabbitMQ vhost of the TEST layout (E2E_PORT_BASE moves them)."""

import httpx
import pytest

from dev.layout import TEST
from dev.stack import Stack


@pytest.fixture(scope="session")
def stack():
    with Stack(TEST) as stack:
        yield stack


@pytest.fixture
async def gateway(stack):
    async with httpx.AsyncClient(base_url=TEST.gateway_url, timeout=30) as client:
        yield client
