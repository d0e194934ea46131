"""Read endpoints the web app calls for features this backend does not offer (analysis
functions and dashboards, reference/clients.md §5): empty answers, never errors."""

from fastapi import APIRouter

from session_service.api.deps import CurrentUser

router = APIRouter()


@router.get("/analysis-functions/")
async def analysis_functions(user: CurrentUser) -> list:
    return []


@router.get("/analysis-results/pending/")
async def pending_analyses(user: CurrentUser) -> dict:
    return {}


@router.get("/analysis-results/states/")
async def analysis_states(user: CurrentUser) -> dict:
    return {}


@router.get("/analysis-dashboards/")
async def analysis_dashboards(user: CurrentUser) -> list:
    return []
