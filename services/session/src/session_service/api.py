"""HTTP edge of the session service: the original API's routes, paths and shapes."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from session_service import schemas, service
from session_service.auth import authenticate, mint_token, user_for_token
from session_service.models import Session, User
from shared.db import Tx
from shared.errors import Invalid, NotAuthenticated, NotFound
from shared.forms import read_fields
from shared.identity import token_key
from shared.storage import Storage

router = APIRouter()


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


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]


def storage(request: Request) -> Storage:
    return request.app.state.storage


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound() from None


async def session_detail(tx: Tx, request: Request, session: Session) -> dict:
    trials = await service.session_trials(tx, session.id)
    presign = storage(request).presigned_get
    views = []
    for trial in trials:
        videos, results = await service.trial_media(tx, trial.id)
        views.append(schemas.trial_json(trial, videos, results, presign))
    return schemas.session_json(session, views, trials, presign)


@router.get("/health/", include_in_schema=False)
async def health() -> PlainTextResponse:
    return PlainTextResponse("OK", media_type="text/html")


@router.post("/login/")
async def login(request: Request, tx: Tx) -> dict:
    fields = await read_fields(request)
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise Invalid('Must include "username" and "password".', field="non_field_errors")
    user = await authenticate(tx, username, password)
    if user is None:
        raise Invalid("Unable to log in with provided credentials.", field="non_field_errors")
    return {
        "token": mint_token(tx, user),
        "user_id": user.id,
        "otp_challenge_sent": False,
        "institutional_use": user.institutional_use,
    }


@router.get("/sessions/new/")
async def new_session(tx: Tx, request: Request, user: CurrentUser) -> list[dict]:
    settings = request.app.state.settings
    session = await service.create_session(tx, user, storage(request), settings.public_base)
    return [await session_detail(tx, request, session)]


@router.get("/sessions/{session_id}/")
async def read_session(session_id: str, tx: Tx, request: Request, user: OptionalUser) -> dict:
    session = await service.get_session(tx, parse_id(session_id), user)
    return await session_detail(tx, request, session)


@router.get("/sessions/{session_id}/get_qr/")
async def get_qr(session_id: str, tx: Tx, request: Request, user: CurrentUser) -> dict:
    session = await service.get_session(tx, parse_id(session_id), user, write=True)
    ttl = request.app.state.settings.qr_url_ttl_seconds
    return {
        "qr": storage(request).presigned_get(session.qrcode_key, ttl)
        if session.qrcode_key
        else None
    }


@router.get("/sessions/{session_id}/record/")
async def record(
    session_id: str, tx: Tx, request: Request, user: CurrentUser, name: str | None = Query(None)
) -> dict:
    session = await service.get_session(tx, parse_id(session_id), user, write=True)
    trial = await service.record_trial(tx, session, name)
    return schemas.trial_json(trial, [], [], storage(request).presigned_get)


@router.get("/sessions/{session_id}/stop/")
async def stop(session_id: str, tx: Tx, request: Request, user: CurrentUser) -> dict:
    session = await service.get_session(tx, parse_id(session_id), user, write=True)
    trial = await service.stop_trial(tx, session)
    videos, results = await service.trial_media(tx, trial.id)
    return schemas.trial_json(trial, videos, results, storage(request).presigned_get)


@router.get("/trials/{trial_id}/")
async def read_trial(trial_id: str, tx: Tx, request: Request, user: OptionalUser) -> dict:
    trial = await service.get_trial(tx, parse_id(trial_id), user)
    videos, results = await service.trial_media(tx, trial.id)
    return schemas.trial_json(trial, videos, results, storage(request).presigned_get)
