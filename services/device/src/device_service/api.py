"""HTTP edge of the device service: the phones' status poll."""

from uuid import UUID

from fastapi import APIRouter, Request

from device_service import service
from shared.db import Tx
from shared.errors import Invalid, NotFound

router = APIRouter()


def parse_device_id(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise Invalid("Must be a valid UUID.", field="device_id") from None


@router.get("/sessions/{session_id}/status/")
async def status(session_id: str, request: Request, tx: Tx) -> dict:
    try:
        sid = UUID(session_id)
    except ValueError:
        raise NotFound() from None
    device_id = parse_device_id(request.query_params.get("device_id"))
    public_base = request.app.state.settings.public_base
    return await service.session_status(tx, sid, device_id, public_base)
