"""The people being measured, with their tags."""

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Identity, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from session_service.models.base import Base

GENDERS = {
    "woman": "Woman",
    "man": "Man",
    "transgender": "Transgender",
    "non-binary": "Non-Binary/Non-Conforming",
    "prefer-not-respond": "Prefer Not to Respond",
}
SEXES = {
    "woman": "Female",
    "man": "Male",
    "intersect": "Intersex",
    "not-listed": "Not Listed",
    "prefer-not-respond": "Prefer Not to Respond",
}


class Subject(Base):
    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    weight: Mapped[float | None] = mapped_column(Float)
    height: Mapped[float | None] = mapped_column(Float)
    age: Mapped[int | None] = mapped_column(Integer)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    gender: Mapped[str | None] = mapped_column(String(20))
    sex_at_birth: Mapped[str | None] = mapped_column(String(20))
    characteristics: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    trashed_at: Mapped[datetime | None]


class SubjectTag(Base):
    __tablename__ = "subject_tags"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    tag: Mapped[str] = mapped_column(Text)
