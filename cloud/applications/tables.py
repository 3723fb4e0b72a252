"""The applications' tables, on their own ``MetaData`` (``applications_metadata``) so that the store's
migrations can take them over.

Personal data (the applicant, the address, the contact, the uploaded proof, officers' notes) is stored only
as Fernet tokens (``*_encrypted``); the columns in the clear are what an officer filters by and holds no
personal data: the case number, the status, the chosen heat source and the times. The status token and the
idempotency key are stored as SHA-256 hashes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

applications_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class ApplicationsBase(DeclarativeBase):
    metadata = applications_metadata


class SmogApplication(ApplicationsBase):
    """One application to the Stop Smog programme."""

    __tablename__ = "smog_applications"
    __table_args__ = (UniqueConstraint("year", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    case_number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    heat_source: Mapped[str] = mapped_column(String(32), index=True)
    created_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    status_token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The token itself, encrypted: a repeated request with the same idempotency key gets the same link.
    status_token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    idempotency_key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the request (fields and file): the same key with a different request is a conflict.
    request_sha256: Mapped[str] = mapped_column(String(64))
    personal_data_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    proof_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    proof_content_type: Mapped[str] = mapped_column(String(40))
    proof_size_bytes: Mapped[int] = mapped_column(Integer)

    events: Mapped[list[SmogApplicationEvent]] = relationship(
        back_populates="application",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SmogApplicationEvent.id",
    )


class SmogApplicationEvent(ApplicationsBase):
    """A change of an application's status, with the officer's note (encrypted) shown to the applicant."""

    __tablename__ = "smog_application_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("smog_applications.id", ondelete="CASCADE"), index=True
    )
    at_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    note_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Who changed it: the officer's account id once authentication exists; "applicant" for the submission.
    actor: Mapped[str] = mapped_column(String(100))

    application: Mapped[SmogApplication] = relationship(back_populates="events")


def create_application_tables(engine: Engine) -> None:
    """Create the applications' tables where missing (tests and development; production uses migrations)."""
    applications_metadata.create_all(engine)
