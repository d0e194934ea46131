"""Accounts: register, login, the e-mail code, passwords, profile (reference §4.6, §9)."""

import asyncio
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import UploadFile

from session_service import accounts, schemas
from session_service.api.deps import CurrentUser, VerifiedUser, settings, storage
from shared.db import Tx
from shared.errors import Forbidden, Invalid, NotFound
from shared.forms import close_files, read_fields

router = APIRouter()
PICTURE_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


@router.get("/health/", include_in_schema=False)
async def health() -> PlainTextResponse:
    return PlainTextResponse("OK", media_type="text/html")


@router.post("/register/", status_code=201)
async def register(request: Request, tx: Tx) -> dict:
    user, token = await accounts.register(tx, await read_fields(request))
    return {**schemas.user_json(user, storage(request).presigned_get), "token": token}


@router.post("/login/")
async def login(request: Request, tx: Tx) -> dict:
    return await accounts.login(tx, await read_fields(request), settings(request))


@router.post("/reset-otp-challenge/")
async def reset_otp_challenge(request: Request, tx: Tx, user: CurrentUser) -> dict:
    await accounts.start_otp_challenge(tx, user, settings(request))
    return {"otp_challenge_sent": not settings(request).otp_auto_pass}


@router.post("/verify/")
async def verify(request: Request, tx: Tx, user: CurrentUser):
    fields = await read_fields(request)
    remember = fields.get("remember_device") in (True, "true", "True", "1", 1)
    try:
        accounts.verify_otp(tx, user, fields.get("otp_token", ""), remember, settings(request))
    except Forbidden as refused:
        # answered rather than raised, so that the transaction (which counts the wrong
        # codes towards otp_max_failures) is committed, not rolled back
        return JSONResponse({"detail": refused.detail}, status_code=403)
    return {}


@router.get("/check-otp-verified/")
async def check_otp_verified(user: CurrentUser) -> dict:
    return {"otp_verified": user.otp_verified}


@router.post("/get_user_info/")
async def get_user_info(request: Request, user: CurrentUser) -> dict:
    """The caller's own profile (the original answered anyone about anyone)."""
    fields = await read_fields(request)
    if fields.get("username", user.username) != user.username:
        raise NotFound("User not found.")
    info = schemas.user_json(user, storage(request).presigned_get)
    return {
        key: info[key]
        for key in (
            "username",
            "email",
            "institution",
            "profession",
            "country",
            "reason",
            "website",
            "first_name",
            "last_name",
            "newsletter",
            "profile_picture",
        )
    }


@router.post("/update_profile/")
async def update_profile(request: Request, tx: Tx, user: VerifiedUser) -> dict:
    await accounts.update_profile(tx, user, await read_fields(request))
    info = schemas.user_json(user, storage(request).presigned_get)
    return {
        key: info[key]
        for key in (
            "id",
            "username",
            "first_name",
            "last_name",
            "email",
            "country",
            "institution",
            "profession",
            "reason",
            "website",
            "newsletter",
        )
    }


@router.post("/update_profile_picture/")
async def update_profile_picture(request: Request, user: VerifiedUser) -> dict:
    fields = await read_fields(request)
    try:
        picture = fields.get("profile_picture")
        if not isinstance(picture, UploadFile):
            raise Invalid("No file was submitted.", field="profile_picture")
        suffix = PICTURE_TYPES.get((picture.content_type or "").lower())
        if suffix is None:
            raise Invalid("Upload a valid image (JPEG, PNG, GIF or WebP).", field="profile_picture")
        key = f"profile_pictures/{uuid.uuid4()}{suffix}"
        await asyncio.to_thread(
            storage(request).upload_fileobj, picture.file, key, picture.content_type
        )
    finally:
        await close_files(fields)
    user.profile_picture_key = key
    return {
        "id": user.id,
        "username": user.username,
        "profile_picture": storage(request).presigned_get(key),
    }


@router.get("/user-institutional-use/")
async def read_institutional_use(user: CurrentUser) -> dict:
    return {"institutional_use": user.institutional_use}


@router.post("/user-institutional-use/")
async def write_institutional_use(request: Request, user: VerifiedUser) -> dict:
    accounts.set_institutional_use(user, (await read_fields(request)).get("institutional_use"))
    return {"institutional_use": user.institutional_use}


@router.post("/set-institutional-use/")
async def set_institutional_use(request: Request, user: VerifiedUser) -> dict:
    accounts.set_institutional_use(user, (await read_fields(request)).get("institutional_use"))
    return {}


@router.post("/delete-account/")
async def delete_account(request: Request, tx: Tx, user: VerifiedUser) -> JSONResponse:
    await accounts.delete_account(tx, user, await read_fields(request))
    return JSONResponse("The user was removed.")


@router.post("/reset-password/")
async def reset_password(request: Request, tx: Tx) -> dict:
    await accounts.request_password_reset(tx, await read_fields(request), settings(request))
    return {"message": "success"}


@router.post("/new-password/")
async def new_password(request: Request, tx: Tx) -> dict:
    await accounts.reset_password(tx, await read_fields(request), settings(request))
    return {}


@router.get("/user-groups/")
async def user_groups(user: CurrentUser) -> dict:
    return {"groups": sorted(user.groups)}
