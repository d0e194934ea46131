"""HTTP edge of the session service: the original API's routes, paths and shapes."""

from fastapi import APIRouter, Depends

from session_service.api import accounts, sessions, stubs, subjects, trials
from session_service.api.deps import refuse_nul

router = APIRouter(dependencies=[Depends(refuse_nul)])
for module in (accounts, sessions, trials, subjects, stubs):
    router.include_router(module.router)
