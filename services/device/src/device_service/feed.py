"""This API replica's subscription: every state change, and the other replicas' presence.

Each replica declares its own exclusive, auto-deleted queue bound to the event types its
read model needs (separate from the worker's durable `device` queue, which keeps the
database current), so every replica sees every change. Phones' polls are spread over the
replicas, so each replica also tells the others, once a second, which phones polled it
(`device.presence`, a fanout exchange of transient messages that are no domain events:
`[session id, device id, last poll, first poll]` per phone; a replica of an earlier
version sends no first poll, and its last poll stands for it).
A lost connection loses what was published meanwhile: on reconnecting, the read model
re-reads the database from the moment the connection was lost.
"""

import asyncio
import json
import time
from uuid import UUID, uuid4

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage

from device_service.appliers import EVENT_KEYS
from device_service.read_model import Presence, ReadModel
from device_service.snapshot import Resync
from shared.db import utcnow
from shared.events import Envelope, decode
from shared.messaging import connect, declare_events

log = structlog.get_logger()

PRESENCE_EXCHANGE = "device.presence"
PRESENCE_BATCH = 500  # phones per presence message


class Feed:
    def __init__(self, amqp_url: str, read_model: ReadModel, presence_every: float = 1.0):
        self.amqp_url, self.read_model, self.presence_every = amqp_url, read_model, presence_every
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.presence: aio_pika.abc.AbstractExchange | None = None
        self.resync: Resync | None = None
        self.lost_at = None
        self.replica = uuid4().hex  # our own presence messages come back: skip them

    async def start(self) -> None:
        self.connection = await connect(self.amqp_url)
        self.connection.close_callbacks.add(self._lost)
        self.connection.reconnect_callbacks.add(self._back)
        channel = await self.connection.channel()
        events = await declare_events(channel)
        self.presence = await channel.declare_exchange(
            PRESENCE_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in EVENT_KEYS:
            await queue.bind(events, routing_key=key)
        await queue.bind(self.presence)
        await queue.consume(self.on_message, no_ack=True)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        if message.exchange == PRESENCE_EXCHANGE:
            if message.app_id != self.replica:
                self.read_model.merge_seen(_decode_presence(message.body))
            return
        try:
            envelope = Envelope.model_validate_json(message.body)
            event = decode(envelope)
        except Exception as exc:
            log.warning("read_model_event_undecodable", error=repr(exc))
            return
        try:
            self.read_model.apply(envelope, event)
        except Exception:
            log.exception("read_model_event_failed", event_id=str(envelope.id))

    async def tell_presence(self) -> None:
        """Every `presence_every` seconds, publish the phones seen here since the last time."""
        told = time.time()
        while True:
            await asyncio.sleep(self.presence_every)
            seen = self.read_model.seen_since(told - self.presence_every)
            told = time.time()
            for start in range(0, len(seen), PRESENCE_BATCH):  # small steps: polls go on
                await self._tell(seen[start : start + PRESENCE_BATCH])

    async def _tell(self, seen: list[Presence]) -> None:
        if self.presence is None:
            return
        body = json.dumps([[s.hex, d.hex, at, first] for s, d, at, first in seen]).encode()
        try:
            message = aio_pika.Message(body, app_id=self.replica)
            await self.presence.publish(message, routing_key="")
        except Exception as exc:  # presence is best effort: the next second tells again
            log.warning("presence_publish_failed", error=repr(exc))

    def _lost(self, *_: object) -> None:
        self.lost_at = self.lost_at or utcnow()

    def _back(self, *_: object) -> None:
        if self.resync is not None and self.lost_at is not None:
            self.resync.rewind(self.lost_at)
        self.lost_at = None
        self.replica = uuid4().hex  # our own presence messages come back: skip them
        log.info("read_model_feed_reconnected")


def _decode_presence(body: bytes) -> list[Presence]:
    try:
        return [_presence(*entry) for entry in json.loads(body)]
    except (ValueError, TypeError) as exc:
        log.warning("presence_undecodable", error=repr(exc))
        return []


def _presence(session_id: str, device_id: str, at: float, first: float | None = None) -> Presence:
    return UUID(session_id), UUID(device_id), float(at), float(at if first is None else first)
