"""Passwords and API tokens.

Passwords are PBKDF2-SHA256 in Django's `pbkdf2_sha256$<iterations>$<salt>$<hash>` format.
Tokens are 40 hex characters, as DRF's (the web app and pipeline send
`Authorization: Token <key>`); only their SHA-256 is stored.
"""

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.models import Outbox, Token, User
from shared.db import utcnow
from shared.events import TokenIssued, UserUpdated
from shared.identity import token_hash
from shared.outbox import record

ITERATIONS = 600_000


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        algorithm, iterations, salt, expected = encoded.split("$", 3)
    except ValueError:
        return False
    if algorithm != "pbkdf2_sha256":
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


def mint_token(tx: AsyncSession, user: User) -> str:
    """A new token for `user`; the returned key is not stored anywhere (only its hash,
    which `user.token_issued` tells the other services). The user's state goes with it, so
    a service that began keeping callers after the user was last changed knows them too."""
    key = secrets.token_hex(20)
    tx.add(Token(key_hash=token_hash(key), user_id=user.id, created_at=utcnow()))
    user_changed(tx, user)
    record(tx, Outbox, TokenIssued(key_hash=token_hash(key), user_id=user.id), producer="session")
    return key


def user_changed(tx: AsyncSession, user: User) -> None:
    """Tell the other services a user's groups, active flag and e-mail code step (after a
    flush: needs the id)."""
    event = UserUpdated(
        user_id=user.id,
        groups=list(user.groups),
        is_active=user.is_active,
        verified=bool(user.otp_verified),
    )
    record(tx, Outbox, event, producer="session")


async def user_for_token(tx: AsyncSession, key: str) -> User | None:
    stmt = (
        select(User)
        .join(Token, Token.user_id == User.id)
        .where(Token.key_hash == token_hash(key), User.is_active.is_(True))
    )
    return (await tx.scalars(stmt)).first()


async def authenticate(tx: AsyncSession, username: str, password: str) -> User | None:
    if "\x00" in username:  # PostgreSQL text cannot hold NUL: no such user
        return None
    user = (await tx.scalars(select(User).where(User.username == username))).first()
    if user is None or not user.is_active or not verify_password(password, user.password_hash):
        return None
    return user
