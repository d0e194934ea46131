"""The reference point of `bench.status_poll`: a bare Starlette endpoint on the same path
that returns a constant JSON body (of the size of a real poll answer, from $BENCH_BODY)."""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = os.environ.get("BENCH_BODY", '{"status":"ready"}').encode()


async def constant(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/sessions/{session_id}/status/", constant)])
