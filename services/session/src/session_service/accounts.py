"""Accounts: register, log in, the e-mail code step, password reset, profile, deletion.

Each use case takes the open transaction `tx` and never commits.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from session_service.auth import authenticate, hash_password, mint_token, user_changed
from session_service.config import Settings
from session_service.mail import send_mail
from session_service.models import Outbox, PasswordReset, Session, Token, User
from session_service.models.accounts import INSTITUTIONAL_USES
from session_service.sessions import delete_sessions
from shared.db import utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import TokenRevoked
from shared.forms import boolean_field
from shared.outbox import record

PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "institution",
    "profession",
    "country",
    "reason",
    "website",
    "newsletter",
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _text(fields: dict[str, Any], name: str, limit: int, required: bool = False) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise Invalid("This field is required.", field=name)
        return None if value is None else ""
    if not isinstance(value, str):
        raise Invalid("Not a valid string.", field=name)
    if len(value) > limit or "\x00" in value:
        raise Invalid(f"Ensure this field has no more than {limit} characters.", field=name)
    return value.strip()


async def _taken(tx: AsyncSession, column, value: str, user: User | None = None) -> bool:
    stmt = select(func.count()).select_from(User).where(func.lower(column) == value.lower())
    if user is not None:
        stmt = stmt.where(User.id != user.id)
    return bool(await tx.scalar(stmt))


async def _checked_email(
    tx: AsyncSession, fields: dict, user: User | None = None, required: bool = True
) -> str | None:
    email = _text(fields, "email", 254, required=required and user is None)
    if email is None:
        return None
    if not EMAIL.match(email):
        raise Invalid("Enter a valid email address.", field="email")
    if await _taken(tx, User.email, email, user):
        raise Invalid("The email already exists.", field="email")
    return email


def apply_profile(user: User, fields: dict[str, Any]) -> None:
    for name in PROFILE_FIELDS:
        if name not in fields:
            continue
        if name == "newsletter":
            user.newsletter = boolean_field(fields[name], name)
        else:
            setattr(user, name, _text(fields, name, 150 if "name" in name else 256))


def checked_password(fields: dict[str, Any]) -> str:
    password = _text(fields, "password", 128, required=True)
    if len(password) < MIN_PASSWORD:
        raise Invalid(
            f"Ensure this field has at least {MIN_PASSWORD} characters.", field="password"
        )
    return password


async def checked_credentials(
    tx: AsyncSession, fields: dict[str, Any], email_required: bool = True
) -> tuple[str, str, str | None]:
    """A new account's username, password and e-mail address, as sign-up and the
    operator's `create-user` both take them."""
    username = _text(fields, "username", 150, required=True)
    if not re.fullmatch(r"[\w.@+-]+", username):
        raise Invalid("Enter a valid username.", field="username")
    if await _taken(tx, User.username, username):
        raise Invalid("The username already exists.", field="username")
    password = checked_password(fields)
    return username, password, await _checked_email(tx, fields, required=email_required)


async def register(tx: AsyncSession, fields: dict[str, Any]) -> tuple[User, str]:
    username, password, email = await checked_credentials(tx, fields)
    user = User(
        username=username,
        email=email,
        password_hash=hash_password(password),
        groups=[],
        is_active=True,
        newsletter=True,
        institutional_use="",
        first_name="",
        last_name="",
        date_joined=utcnow(),
        otp_verified=False,
    )
    apply_profile(user, fields)
    tx.add(user)
    await tx.flush()
    return user, mint_token(tx, user)  # which announces the user too


async def login(tx: AsyncSession, fields: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A token; unless the device is remembered, the e-mail code step starts again."""
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise Invalid('Must include "username" and "password".', field="non_field_errors")
    user = await authenticate(tx, username, password)
    if user is None:
        raise Invalid("Unable to log in with provided credentials.", field="non_field_errors")
    remembered = user.otp_verified and user.otp_skip_till and user.otp_skip_till > utcnow()
    challenge = not remembered and not settings.otp_auto_pass
    if settings.otp_auto_pass and not user.otp_verified:
        user.otp_verified = True  # announced with the token
    elif challenge:
        await start_otp_challenge(tx, user, settings, announce=False)  # the token does
    return {
        "token": mint_token(tx, user),
        "user_id": user.id,
        "otp_challenge_sent": challenge,
        "institutional_use": user.institutional_use,
    }


async def start_otp_challenge(
    tx: AsyncSession, user: User, settings: Settings, announce: bool = True
) -> None:
    """A new six-digit code, mailed; the user is unverified until it is entered (the other
    services are told, so they refuse the user's token meanwhile too)."""
    code = f"{secrets.randbelow(10**6):06d}"
    was_verified = user.otp_verified
    user.otp_verified, user.otp_skip_till, user.otp_failures = False, None, 0
    user.otp_code_hash = _sha256(f"{user.id}:{code}")
    user.otp_code_expires_at = utcnow() + timedelta(seconds=settings.otp_code_ttl_seconds)
    if settings.otp_auto_pass:
        user.otp_verified = True
        return
    if was_verified and announce:
        user_changed(tx, user)
    minutes = settings.otp_code_ttl_seconds // 60
    text = f"Your OpenCap verification code is {code}. It is valid for {minutes} minutes."
    await send_mail(settings, user.email, "Opencap - Verification Code", text)


def verify_otp(tx: AsyncSession, user: User, code: Any, remember: bool, settings: Settings) -> None:
    was_verified = user.otp_verified
    if settings.otp_auto_pass:
        user.otp_verified = True
    else:
        _check_code(user, code, settings)
    if not was_verified:
        user_changed(tx, user)
    if remember:
        user.otp_skip_till = utcnow() + timedelta(days=settings.otp_remember_days)


def _check_code(user: User, code: Any, settings: Settings) -> None:
    wrong = Forbidden("Looks like the verification code is incorrect. Please try again.")
    live = user.otp_code_hash and user.otp_code_expires_at and user.otp_code_expires_at > utcnow()
    if not live or user.otp_failures >= settings.otp_max_failures:
        raise Forbidden("The verification code has expired. Ask for a new one.")
    if not hmac.compare_digest(_sha256(f"{user.id}:{str(code).strip()}"), user.otp_code_hash):
        user.otp_failures += 1
        raise wrong
    user.otp_verified, user.otp_code_hash, user.otp_code_expires_at = True, None, None


def _reset_link_base(host: Any, settings: Settings) -> str:
    allowed = {settings.web_app_url.rstrip("/"), *(o.rstrip("/") for o in settings.cors_origins)}
    host = str(host or "").rstrip("/")
    return host if host in allowed else settings.web_app_url.rstrip("/")


async def request_password_reset(tx: AsyncSession, fields: dict, settings: Settings) -> None:
    """Mail a reset link if the address belongs to an account (the answer never says)."""
    email = _text(fields, "email", 254, required=True)
    user = (await tx.scalars(select(User).where(func.lower(User.email) == email.lower()))).first()
    if user is None or not user.is_active:
        return
    await tx.execute(delete(PasswordReset).where(PasswordReset.user_id == user.id))
    token = secrets.token_urlsafe(32)
    tx.add(PasswordReset(token_hash=_sha256(token), user_id=user.id, created_at=utcnow()))
    link = f"{_reset_link_base(fields.get('host'), settings)}/new-password/{token}"
    hours = settings.password_reset_ttl_hours
    text = f"Set a new OpenCap password here (valid {hours} hours): {link}"
    await send_mail(settings, user.email, "Opencap - Forgot Username or Password", text)


async def reset_password(tx: AsyncSession, fields: dict, settings: Settings) -> None:
    token = _text(fields, "token", 200, required=True)
    password = checked_password(fields)
    reset = await tx.get(PasswordReset, _sha256(token), with_for_update=True)
    max_age = timedelta(hours=settings.password_reset_ttl_hours)
    if reset is None or reset.used_at or reset.created_at + max_age < utcnow():
        raise NotFound("This password reset link is invalid or has expired.")
    user = await tx.get(User, reset.user_id)
    user.password_hash, reset.used_at = hash_password(password), utcnow()
    await revoke_tokens(tx, user)


async def update_profile(tx: AsyncSession, user: User, fields: dict[str, Any]) -> None:
    if "email" in fields:
        user.email = await _checked_email(tx, fields, user) or user.email
    if fields.get("username") and fields["username"] != user.username:
        raise Invalid("The username cannot be changed.", field="username")
    apply_profile(user, fields)


def set_institutional_use(user: User, value: Any) -> None:
    if value not in INSTITUTIONAL_USES:
        raise Invalid(f'"{value}" is not a valid choice.', field="institutional_use")
    user.institutional_use = value


async def revoke_tokens(tx: AsyncSession, user: User) -> None:
    hashes = (await tx.scalars(select(Token.key_hash).where(Token.user_id == user.id))).all()
    for key_hash in hashes:
        record(tx, Outbox, TokenRevoked(key_hash=key_hash), producer="session")
    await tx.execute(delete(Token).where(Token.user_id == user.id))


async def delete_account(tx: AsyncSession, user: User, fields: dict[str, Any]) -> None:
    """The user's account and all their data go; the confirmation must be their username."""
    if fields.get("confirm") != user.username:
        raise Invalid("Type your username to confirm.", field="confirm")
    user.is_active = False
    user_changed(tx, user)
    await revoke_tokens(tx, user)
    owned = select(Session.id).where(Session.user_id == user.id)
    await delete_sessions(tx, list((await tx.scalars(owned)).all()))
    await tx.delete(user)
