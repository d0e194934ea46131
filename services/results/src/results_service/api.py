"""HTTP edge of the results service."""

from fastapi import APIRouter

router = APIRouter()
