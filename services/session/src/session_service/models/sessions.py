"""Sessions, trials, and the projections of videos and results the trial view needs.

Rules about one trial live on `Trial`: each transition checks where the trial is and
returns the event that records what happened (or None when a repeat changes nothing).
"""

import re
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Interval,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from session_service.models.base import Base
from shared.errors import Conflict
from shared.events import SessionUpdated, TrialFinished, TrialQueued, TrialStarted, TrialStopped

SPECIAL_TRIALS = ("calibration", "neutral")
FINISHED = ("done", "error")
# Why a cancel comes too late, by the trial's status.
CANNOT_CANCEL = {
    "done": "This trial has already been processed.",
    "stopped": "This trial's videos are all in: it can no longer be cancelled.",
    "processing": "This trial's videos are all in: it can no longer be cancelled.",
}


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    meta: Mapped[dict[str, Any] | None]
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    qrcode_key: Mapped[str | None] = mapped_column(String(256))
    is_mono: Mapped[bool] = mapped_column(Boolean, default=False)
    # The newer apps' capture flags: phones keep their videos (`save_local`), use LiDAR.
    save_local: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    use_lidar: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    server: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64), default="init")
    status_changed: Mapped[datetime | None]
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("subjects.id", ondelete="SET NULL"), index=True
    )
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    trashed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]

    def _meta_part(self, key: str) -> dict[str, Any]:
        part = (self.meta or {}).get(key) if isinstance(self.meta, dict) else None
        return part if isinstance(part, dict) else {}

    def framerate(self) -> int:
        """The frame rate phones are told: 60 unless the settings name a sensible one (a
        PATCH of `meta` may put anything there)."""
        value = str(self._meta_part("settings").get("framerate") or "")
        return int(value) if re.fullmatch(r"[0-9]{1,4}", value) and int(value) > 0 else 60

    def linked(self, key: str) -> UUID | None:
        """The session `meta[key]["id"]` points at (sessionWithCalibration, startNewSession)."""
        value = self._meta_part(key).get("id")
        try:
            return UUID(str(value)) if value else None
        except ValueError:
            return None

    def announced(self) -> SessionUpdated:
        """What the other services know of this session (phones' frame rate and next
        session, the calibration chain, public or not)."""
        return SessionUpdated(
            session_id=self.id,
            framerate=self.framerate(),
            new_session_id=self.linked("startNewSession"),
            calibration_session_id=self.linked("sessionWithCalibration"),
            public=self.public,
            subject_id=self.subject_id,
        )

    def set_meta(self, meta: dict[str, Any] | None, now: datetime) -> SessionUpdated | None:
        """Replace the metadata; an event when what the other services know changed."""
        before = self.announced()
        self.meta, self.updated_at = meta, now
        after = self.announced()
        return after if after != before else None

    def set_public(self, public: bool, now: datetime) -> SessionUpdated | None:
        changed = public != self.public
        self.public, self.updated_at = public, now
        return self.announced() if changed else None

    def start_trial(
        self, name: str, existing_names: list[str], now: datetime, stop_at: datetime | None = None
    ) -> "Trial":
        trial = Trial(
            id=uuid4(),
            session_id=self.id,
            name=next_trial_name(name, existing_names),
            status="recording",
            meta=None,
            processed_count=0,
            trashed=False,
            stop_at=stop_at,
            created_at=now,
            updated_at=now,
        )
        self.updated_at = now
        return trial


class Trial(Base):
    __tablename__ = "trials"
    # The capture scheduler, the janitors and the dequeue each look at a few trials only.
    __table_args__ = (
        Index("ix_trials_recording", "created_at", postgresql_where=text("status = 'recording'")),
        Index(
            "ix_trials_leased", "lease_expires_at", postgresql_where=text("status = 'processing'")
        ),
        Index(
            "ix_trials_queued",
            "queued_at",
            postgresql_where=text("status IN ('stopped', 'reprocess')"),
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any] | None]
    server: Mapped[str | None] = mapped_column(String(64))
    is_docker: Mapped[bool | None]
    hostname: Mapped[str | None] = mapped_column(String(64))
    # The correlation id of the `record` request: what the trial's later steps that no
    # user request causes (the capture's end, its processing job, the janitors) carry, so
    # one id follows the trial from the web app's click to the pipeline and back.
    correlation_id: Mapped[str | None] = mapped_column(String(128))  # (ids up to 128)
    processed_duration: Mapped[timedelta | None] = mapped_column(Interval)
    processed_count: Mapped[int] = mapped_column(Integer, default=0)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    trashed_at: Mapped[datetime | None]
    # When a calibration or neutral capture stops itself (the worker's scheduler does it).
    stop_at: Mapped[datetime | None]
    # Processing: the job on the queue (set once every video is in; sent again if nobody
    # claims it for long), and the lease of the worker that claimed it (renewed by
    # heartbeats; a lapsed lease puts the trial back).
    job_id: Mapped[UUID | None]
    queued_at: Mapped[datetime | None]
    job_sent_at: Mapped[datetime | None]
    job_resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_holder: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(index=True)

    @property
    def trial_type(self) -> str:
        return {"calibration": "calibration", "neutral": "static"}.get(self.name or "", "dynamic")

    def started(self) -> TrialStarted:
        return TrialStarted(
            trial_id=self.id,
            session_id=self.session_id,
            name=self.name or "",
            created_at=self.created_at,
        )

    def stop(self, now: datetime) -> TrialStopped | None:
        """Recording ends; a repeated stop (any later status) changes nothing."""
        if self.status != "recording":
            return None
        self._move("stopped", now)
        return TrialStopped(trial_id=self.id, session_id=self.session_id)

    def queue(self, now: datetime) -> TrialQueued:
        """Every video is in: a new job for the trial waits on the queue. The trial keeps
        its `stopped` (or `reprocess`) status, the original's queue states, until claimed."""
        self.job_id, self.queued_at, self.job_sent_at, self.job_resends = uuid4(), now, now, 0
        self.lease_holder, self.lease_expires_at = None, None
        self.updated_at = now
        return TrialQueued(trial_id=self.id, session_id=self.session_id, job_id=self.job_id)

    def claimable(self, now: datetime) -> bool:
        return self.queued_at is not None and self.status in ("stopped", "reprocess")

    def lease_live(self, now: datetime) -> bool:
        return self.status == "processing" and bool(
            self.lease_expires_at and self.lease_expires_at > now
        )

    def claim(self, worker: str, now: datetime, lease: timedelta) -> None:
        """A worker takes the trial; an earlier run's error message goes away."""
        self._move("processing", now)
        self.lease_holder, self.lease_expires_at = worker[:128], now + lease
        self.processed_count = (self.processed_count or 0) + 1
        self.attempts = (self.attempts or 0) + 1
        self.hostname = worker[:64]
        if self.meta and "error_msg" in self.meta:
            self.meta = {k: v for k, v in self.meta.items() if not k.startswith("error_msg")}

    def renew(self, worker: str, now: datetime, lease: timedelta) -> bool:
        if self.status != "processing" or self.lease_holder != worker[:128]:
            return False
        # (never shortened: a heartbeat handled late must not cut the longer lease of a
        # completion that is being recorded)
        self.lease_expires_at = max(self.lease_expires_at or now, now + lease)
        return True

    def finish(self, now: datetime) -> TrialFinished | None:
        if self.status != "processing":
            return None
        self._move("done", now)
        self.lease_holder, self.lease_expires_at = None, None
        return TrialFinished(trial_id=self.id, session_id=self.session_id, status="done")

    def fail(self, error_msg: str, now: datetime, error_msg_dev: str = "") -> TrialFinished:
        if self.status in FINISHED:
            raise Conflict(f"The trial is already {self.status}.")
        self._move("error", now)
        self.lease_holder, self.lease_expires_at = None, None
        self.meta = {"error_msg": error_msg, "error_msg_dev": error_msg_dev or error_msg}
        return TrialFinished(
            trial_id=self.id, session_id=self.session_id, status="error", error_msg=error_msg
        )

    def cancel(self, now: datetime, uploads_outstanding: bool) -> TrialFinished | None:
        """The user gives up on a trial still recording or still waiting for its videos.
        A trial that already ended in error stays as it is (a repeat changes nothing)."""
        if self.status == "error":
            return None
        if self.status == "recording" or (self.status == "stopped" and uploads_outstanding):
            return self.fail("The trial was cancelled.", now, "cancelled")
        raise Conflict(CANNOT_CANCEL.get(self.status, "This trial can no longer be cancelled."))

    def _move(self, status: str, now: datetime) -> None:
        self.status = status
        self.updated_at = now


class Video(Base):
    """Projection of a phone's video slot (device events) and its upload (upload events)."""

    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("trial_id", "device_id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    trial_id: Mapped[UUID] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[UUID]
    key: Mapped[str | None] = mapped_column(String(512))
    parameters: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Result(Base):
    """Projection of a result recorded by the results service."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trial_id: Mapped[UUID] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str | None] = mapped_column(String(32))
    device_id: Mapped[str | None] = mapped_column(String(36))
    key: Mapped[str | None] = mapped_column(String(512))
    meta: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TrialTag(Base):
    __tablename__ = "trial_tags"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    trial_id: Mapped[UUID] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(Text)


def next_trial_name(requested: str, existing: list[str]) -> str:
    """The original's naming rule: a taken name gets `_<n>`; calibration/neutral never do.

    `n` counts the trials whose name starts with the requested one (a prefix match, as in
    the original: "walk" also counts "walking"); if that candidate exists too, it becomes
    `<candidate>_<highest numeric suffix + 1>`.
    """
    if requested in SPECIAL_TRIALS:
        return requested
    count = sum(1 for name in existing if name.startswith(requested))
    name = f"{requested}_{count}" if count else requested
    taken = [e for e in existing if e.startswith(name)]
    if name in taken:
        suffixes = [e[len(name) + 1 :] for e in taken]
        highest = max((int(s) if re.fullmatch(r"\d+", s) else 0) for s in suffixes)
        name = f"{name}_{highest + 1}"
    return name
