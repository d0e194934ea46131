"""The few metrics every service shares. Domain metrics are defined where they are used."""

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to serve an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Events taken from a queue, by outcome", ["queue", "type", "outcome"]
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published to RabbitMQ")
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows waiting to be published")


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
