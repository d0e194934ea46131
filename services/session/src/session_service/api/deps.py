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
from shared.errors import Forbidden, Invalid, NotAuthenticated, NotFound
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


def _verified(request: Request, user: User) -> bool:
    """Past the e-mail code step (the pipeline's and admins' tokens always are)."""
    settings: Settings = request.app.state.settings
    return user.otp_verified or settings.otp_auto_pass or user.in_group("admin", "backend")


async def verified_user(request: Request, user: Annotated[User, Depends(current_user)]) -> User:
    if _verified(request, user):
        return user
    raise Forbidden(NO_PERMISSION)


async def reader(
    request: Request, user: Annotated[User | None, Depends(optional_user)]
) -> User | None:
    """Who reads a session or trial. A caller not past the e-mail code step reads as the
    anonymous do (public sessions only): a password alone opens nothing private."""
    return user if user is None or _verified(request, user) else None


async def refuse_nul(request: Request) -> None:
    """PostgreSQL text and JSONB cannot hold a NUL character: input with one (or with a
    JSON `\\u0000` escape, for the JSON sent inside forms) is a 400, not a database error."""
    texts = [value for _, value in request.query_params.multi_items()]
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()  # parsed once: the route reads the same form
        texts += [value for _, value in form.multi_items() if isinstance(value, str)]
    else:
        texts.append((await request.body()).decode("utf-8", "replace"))
    if any("\x00" in text or "\\u0000" in text for text in texts):
        raise Invalid("Text cannot contain NUL characters.", field="non_field_errors")


Reader = Annotated[User | None, Depends(reader)]
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


async def trial_view(
    tx: Tx, request: Request, trial: Trial, *, owner_view: bool = True
) -> dict[str, Any]:
    """The Trial shape. Others than the owner (a public session's readers) do not see the
    video slots still waiting for their upload: a slot's id is what a phone's PATCH needs."""
    videos, results = await trials.trial_media(tx, trial.id)
    return schemas.trial_json(
        trial, _shown(videos, owner_view), results, storage(request).presigned_get
    )


def _shown(videos: list, owner_view: bool) -> list:
    return videos if owner_view else [video for video in videos if video.key]


async def session_view(
    tx: Tx,
    request: Request,
    session: Session,
    *,
    with_trials: bool = True,
    owner_view: bool = True,
) -> dict[str, Any]:
    """The Session shape; without trials it is the session list's light shape."""
    presign = storage(request).presigned_get
    if with_trials:
        rows = await trials.session_trials_with_media(tx, session.id)
        views = [schemas.trial_json(t, _shown(v, owner_view), r, presign) for t, v, r in rows]
        counted = [t for t, _, _ in rows]
    else:
        views, counted = [], await trials.session_trials(tx, session.id)
    subject = await tx.get(Subject, session.subject_id) if session.subject_id else None
    return schemas.session_json(session, views, counted, presign, subject)
