"""Users, their API tokens, e-mail codes and password-reset links."""

from datetime import datetime

from sqlalchemy import ARRAY, Boolean, ForeignKey, Identity, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from session_service.models.base import Base

INSTITUTIONAL_USES = (
    "",
    "patient_care",
    "sports_performance_assessment",
    "use_in_company",
    "research_at_academic",
    "teaching_at_academic",
    "other_non_commercial",
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="", index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")
    institution: Mapped[str | None] = mapped_column(String(128))
    profession: Mapped[str | None] = mapped_column(String(128))
    country: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(256))
    website: Mapped[str | None] = mapped_column(String(256))
    newsletter: Mapped[bool] = mapped_column(Boolean, default=True)
    profile_picture_key: Mapped[str | None] = mapped_column(String(512))
    institutional_use: Mapped[str] = mapped_column(String(100), default="")
    groups: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    date_joined: Mapped[datetime]
    # The e-mail code step: a verified login stays verified until the next login, or
    # until `otp_skip_till` when the user asked to remember the device.
    otp_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    otp_skip_till: Mapped[datetime | None]
    otp_code_hash: Mapped[str | None] = mapped_column(String(64))
    otp_code_expires_at: Mapped[datetime | None]
    otp_failures: Mapped[int] = mapped_column(Integer, default=0)

    def in_group(self, *names: str) -> bool:
        return any(name in self.groups for name in names)


class Token(Base):
    """An API token. Only its SHA-256 is stored; the key is shown once when minted."""

    __tablename__ = "tokens"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


class PasswordReset(Base):
    """A password-reset link sent by e-mail; only the SHA-256 of its token is kept."""

    __tablename__ = "password_resets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
