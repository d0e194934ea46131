"""What the routes share: the caller (by token), storage, settings, ids, and views that
gather a session's or a trial's rows for the response shapes."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request

from session_service import schemas, trials
from session_service.auth import user_for_token
from session_service.config import Settings
from session_service.models import Session, Subject, Trial, User
from shared.db import Tx
from shared.errors import Forbidden, NotAuthenticated, NotFound
from shared.identity import token_key
from shared.storage import Storage

NO_PERMISSION = "You do not have permission to perform this action."


async def optional_user(request: Request, tx: Tx) -> User | None:
    """The caller of `Authorization: Token <key>`, or None when there is no header."""
    key = token_key(request.headers.get("authorization"))
    if key is None:
        return None
    user = await user_for_token(tx, key)
    if user is None:
        raise NotAuthenticated("Invalid token.")
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    return user


async def verified_user(request: Request, user: Annotated[User, Depends(current_user)]) -> User:
    """A caller past the e-mail code step (the pipeline's and admins' tokens always are)."""
    settings: Settings = request.app.state.settings
    if user.otp_verified or settings.otp_auto_pass or user.in_group("admin", "backend"):
        return user
    raise Forbidden(NO_PERMISSION)


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]
VerifiedUser = Annotated[User, Depends(verified_user)]


def storage(request: Request) -> Storage:
    return request.app.state.storage


def settings(request: Request) -> Settings:
    return request.app.state.settings


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound() from None


async def trial_view(tx: Tx, request: Request, trial: Trial) -> dict[str, Any]:
    videos, results = await trials.trial_media(tx, trial.id)
    return schemas.trial_json(trial, videos, results, storage(request).presigned_get)


async def session_view(
    tx: Tx, request: Request, session: Session, *, with_trials: bool = True
) -> dict[str, Any]:
    """The Session shape; without trials it is the session list's light shape."""
    rows = await trials.session_trials_with_media(tx, session.id)
    presign = storage(request).presigned_get
    views = [schemas.trial_json(t, v, r, presign) for t, v, r in rows] if with_trials else []
    subject = await tx.get(Subject, session.subject_id) if session.subject_id else None
    return schemas.session_json(session, views, [t for t, _, _ in rows], presign, subject)
