"""The session service's tables and the rules that live on them."""

from session_service.models.accounts import PasswordReset, Token, User
from session_service.models.base import Base, Outbox, ProcessedEvent
from session_service.models.sessions import (
    SPECIAL_TRIALS,
    Result,
    Session,
    Trial,
    TrialTag,
    Video,
    next_trial_name,
)
from session_service.models.subjects import Subject, SubjectTag

__all__ = [
    "SPECIAL_TRIALS",
    "Base",
    "Outbox",
    "PasswordReset",
    "ProcessedEvent",
    "Result",
    "Session",
    "Subject",
    "SubjectTag",
    "Token",
    "Trial",
    "TrialTag",
    "User",
    "Video",
    "next_trial_name",
]
