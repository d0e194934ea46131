"""Events produced by the session service: sessions, users, tokens, trials."""

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from shared.events.base import Event


class SessionCreated(Event):
    type: ClassVar[str] = "session.created"
    session_id: UUID
    user_id: int
    framerate: int = 60


class SessionUpdated(Event):
    """What other services see of a session changed: its frame rate, the session to move to
    ("new subject, same setup": phones polling this one follow `new_session_id`), the
    session holding its calibration, whether it is public."""

    type: ClassVar[str] = "session.updated"
    session_id: UUID
    framerate: int = 60
    new_session_id: UUID | None = None
    calibration_session_id: UUID | None = None
    public: bool = False
    subject_id: int | None = None


class SessionDeleted(Event):
    """The session and all its trials are gone: forget them, and their stored objects."""

    type: ClassVar[str] = "session.deleted"
    session_id: UUID


class UserUpdated(Event):
    """A user's groups, active flag or e-mail code step changed (or the user was created).
    `verified`: past the e-mail code step, as the session service requires for owners."""

    type: ClassVar[str] = "user.updated"
    user_id: int
    groups: list[str] = []
    is_active: bool = True
    verified: bool = True


class TokenIssued(Event):
    """An API token was minted; only its SHA-256 travels."""

    type: ClassVar[str] = "user.token_issued"
    key_hash: str
    user_id: int


class TokenRevoked(Event):
    type: ClassVar[str] = "user.token_revoked"
    key_hash: str


class TrialStarted(Event):
    """A trial began recording: phones polling the session now get a video slot."""

    type: ClassVar[str] = "trial.started"
    trial_id: UUID
    session_id: UUID
    name: str
    created_at: datetime


class TrialStopped(Event):
    type: ClassVar[str] = "trial.stopped"
    trial_id: UUID
    session_id: UUID


class TrialQueued(Event):
    """Every video is in and a processing job was queued for the trial."""

    type: ClassVar[str] = "trial.queued"
    trial_id: UUID
    session_id: UUID
    job_id: UUID | None = None


class TrialDeleted(Event):
    """The trial is gone (with its videos and results): forget it and its stored objects."""

    type: ClassVar[str] = "trial.deleted"
    trial_id: UUID
    session_id: UUID


class TrialRenamed(Event):
    type: ClassVar[str] = "trial.renamed"
    trial_id: UUID
    session_id: UUID
    name: str


class TrialMetaUpdated(Event):
    """A trial's `meta` was replaced (the pipeline PATCHes it). On the calibration trial,
    `{"calibration": {"Cam0": 0, "Cam1": 1}}` names each camera's chosen solution."""

    type: ClassVar[str] = "trial.meta_updated"
    trial_id: UUID
    session_id: UUID
    meta: dict[str, Any] | None = None


class TrialFinished(Event):
    """The trial reached a final status: `done` or `error` (with the message users see)."""

    type: ClassVar[str] = "trial.finished"
    trial_id: UUID
    session_id: UUID
    status: str
    error_msg: str | None = None
