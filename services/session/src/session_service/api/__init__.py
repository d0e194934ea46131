"""HTTP edge of the session service: the original API's routes, paths and shapes."""

from fastapi import APIRouter

from session_service.api import accounts, sessions, stubs, subjects, trials

router = APIRouter()
for module in (accounts, sessions, trials, subjects, stubs):
    router.include_router(module.router)
