"""Who is calling: `Authorization: Token <key>` resolved from a service's own tables.

The session service owns users and tokens. It publishes `user.updated`,
`user.token_issued` and `user.token_revoked` (token SHA-256s only), and any other service
that needs to know its callers keeps a local copy with `identity_handlers`: tables with the
`ApiTokenMixin` and `ApiUserMixin` columns, and `caller(...)` at the HTTP edge. No service
asks another one who a token belongs to.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ARRAY, Boolean, DateTime, Integer, String, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request

from shared.db import utcnow
from shared.errors import NotAuthenticated
from shared.events import TokenIssued, TokenRevoked, UserUpdated

PRIVILEGED = ("admin", "backend")


def client_address(request: Request) -> str:
    """The caller's address as the gateway saw it: the last X-Forwarded-For entry (the
    ones before it are the client's own words), else the connection's."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
    return forwarded or (request.client.host if request.client else "")


def token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_key(header: str | None) -> str | None:
    """The key of an `Authorization: Token <key>` header; None without a header."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "token" or not key.strip() or " " in key.strip():
        raise NotAuthenticated("Invalid token header. No credentials provided.")
    return key.strip()


@dataclass(frozen=True)
class Caller:
    user_id: int
    groups: tuple[str, ...] = ()
    verified: bool = True  # past the e-mail code step

    @property
    def may_act(self) -> bool:
        """Whether the caller may use owner routes: past the e-mail code step, or the
        pipeline's or an admin's token (which never go through it)."""
        return self.verified or self.privileged

    def in_group(self, *names: str) -> bool:
        return any(name in self.groups for name in names)

    @property
    def privileged(self) -> bool:
        """Admins and the processing pipeline's backend user may see and change anything."""
        return self.in_group(*PRIVILEGED)


class ApiTokenMixin:
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiUserMixin:
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    groups: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    is_active: Mapped[bool] = mapped_column(Boolean)
    verified: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def caller(
    tx: AsyncSession, header: str | None, tokens: type[ApiTokenMixin], users: type[ApiUserMixin]
) -> Caller | None:
    """The caller named by the Authorization header, None if there is none; 403 if unknown."""
    key = token_key(header)
    if key is None:
        return None
    stmt = (
        select(users.user_id, users.groups, users.is_active, users.verified)
        .join(tokens, tokens.user_id == users.user_id)
        .where(tokens.key_hash == token_hash(key))
    )
    row = (await tx.execute(stmt)).first()
    if row is None or not row.is_active:
        raise NotAuthenticated("Invalid token.")
    return Caller(row.user_id, tuple(row.groups), row.verified)


def identity_handlers(tokens: type[ApiTokenMixin], users: type[ApiUserMixin]) -> dict:
    """Event handlers that keep a service's copy of users and token hashes current."""

    async def on_user_updated(tx: AsyncSession, event: UserUpdated) -> None:
        values = {
            "groups": event.groups,
            "is_active": event.is_active,
            "verified": event.verified,
            "updated_at": utcnow(),
        }
        stmt = insert(users).values(user_id=event.user_id, **values)
        await tx.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=values))

    async def on_token_issued(tx: AsyncSession, event: TokenIssued) -> None:
        stmt = insert(tokens).values(
            key_hash=event.key_hash, user_id=event.user_id, created_at=utcnow()
        )
        await tx.execute(stmt.on_conflict_do_nothing())

    async def on_token_revoked(tx: AsyncSession, event: TokenRevoked) -> None:
        await tx.execute(delete(tokens).where(tokens.key_hash == event.key_hash))

    return {
        UserUpdated: on_user_updated,
        TokenIssued: on_token_issued,
        TokenRevoked: on_token_revoked,
    }
