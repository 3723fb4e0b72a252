"""The relational store's tables as SQLAlchemy 2 typed ORM models.

Times are epoch milliseconds, UTC, in 64-bit integers (``..._ms``); energies are Wh. These classes are the
database's shape only: the API answers with its own pydantic models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DEAD_LETTER_PAYLOAD_BYTES = 4096
DEAD_LETTER_REASON_CHARS = 1000

USERNAME_CHARS = 64
DISPLAY_NAME_CHARS = 200
ROLE_CHARS = 32
FIRM_ID_CHARS = 64
API_KEY_NAME_CHARS = 100
API_KEY_PREFIX_CHARS = 16
# SHA-256 in hex.
SECRET_HASH_CHARS = 64
AUDIT_ACTION_CHARS = 64
AUDIT_TARGET_CHARS = 200
AUDIT_ACTOR_CHARS = 200
CLIENT_IP_CHARS = 45

# A principal's scope matches its role: a school administrator has a school and no firm, a firm account a
# firm and no school, everyone else neither.
_SCOPE_MATCHES_ROLE = (
    "(role = 'school_admin' AND school_id IS NOT NULL AND firm_id IS NULL)"
    " OR (role = 'firm' AND firm_id IS NOT NULL AND school_id IS NULL)"
    " OR (role NOT IN ('school_admin', 'firm') AND school_id IS NULL AND firm_id IS NULL)"
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class School(Base):
    """A school or kindergarten of the programme, upserted from its site file at start."""

    __tablename__ = "schools"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    pv_kwp: Mapped[float] = mapped_column(Float)
    pupils: Mapped[int] = mapped_column(Integer)


class Device(Base):
    """A device a school's site file lists, so that the live view knows what to look for."""

    __tablename__ = "devices"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))


# The ingest's three tables of readings (samples, counter readings, intervals) have no foreign key to
# ``schools``: the ingest is their only writer and writes only schools of the register (`cloud.ingest.triage`
# refuses the others), and a school is never deleted. The key's check ran once per row inserted and, with
# its share lock on the school's row, took a fifth of the database's time per message (docs/ingest.md).


class Sample(Base):
    """Everything one poll read from one device; ``(school_id, stream, seq)`` is the edge outbox's row."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_school_device_ts", "school_id", "device_id", "ts_ms"),)

    school_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    backfill: Mapped[bool] = mapped_column(Boolean)
    received_ms: Mapped[int] = mapped_column(BigInteger)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)


class CounterReading(Base):
    """One reading of a cumulative energy counter (a device kind's `common.wire.COUNTERS`)."""

    __tablename__ = "counter_readings"

    school_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[str] = mapped_column(String(48), primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The device kind, which says what the counter measures (PV yield, grid import or export).
    kind: Mapped[str] = mapped_column(String(32))
    value_wh: Mapped[float] = mapped_column(Float)


class Interval(Base):
    """A school's energies over one 15-minute interval aligned to UTC quarter hours."""

    __tablename__ = "intervals"

    school_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pv_wh: Mapped[float] = mapped_column(Float)
    import_wh: Mapped[float] = mapped_column(Float)
    export_wh: Mapped[float] = mapped_column(Float)
    # pv + import - export
    consumption_wh: Mapped[float] = mapped_column(Float)
    # True once every counter of the school has samples at or beyond both boundaries.
    complete: Mapped[bool] = mapped_column(Boolean)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class Link(Base):
    """Whether a school's edge agent is connected to the broker, from its retained status message."""

    __tablename__ = "links"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class DeadLetter(Base):
    """A message, or one sample of it, that the ingest refused, with the reason."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_received", "received_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_ms: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(DEAD_LETTER_REASON_CHARS))
    # The first DEAD_LETTER_PAYLOAD_BYTES of the payload, and its full size.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_bytes: Mapped[int] = mapped_column(Integer)


class User(Base):
    """A person who signs in to the API: an administrator of one school, an officer of the city, the hub
    team or a microfirm's account. Managed with ``lokalnie users``."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_SCOPE_MATCHES_ROLE, name="scope_matches_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Lower case, unique.
    username: Mapped[str] = mapped_column(String(USERNAME_CHARS), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_CHARS))
    role: Mapped[str] = mapped_column(String(ROLE_CHARS))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id"), nullable=True)
    firm_id: Mapped[str | None] = mapped_column(String(FIRM_ID_CHARS), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean)
    # argon2id, in the PHC string format.
    password_hash: Mapped[str] = mapped_column(String(200))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class RefreshToken(Base):
    """One refresh token, stored as the SHA-256 of its text. A login starts a family; each refresh uses up
    its token and adds the next to the family; a used token shown again revokes the whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(SECRET_HASH_CHARS), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    family_id: Mapped[str] = mapped_column(String(32))
    # When the family's login happened: no refresh extends a login beyond settings.session_max_s.
    family_started_ms: Mapped[int] = mapped_column(BigInteger)
    issued_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    used_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ApiKey(Base):
    """A machine's key (a kiosk, a school's integration), shown once at creation and stored as the SHA-256
    of its text; ``prefix`` (public, in the key's text) finds the row."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_SCOPE_MATCHES_ROLE, name="scope_matches_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(API_KEY_PREFIX_CHARS), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(SECRET_HASH_CHARS))
    name: Mapped[str] = mapped_column(String(API_KEY_NAME_CHARS))
    role: Mapped[str] = mapped_column(String(ROLE_CHARS))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id"), nullable=True)
    firm_id: Mapped[str | None] = mapped_column(String(FIRM_ID_CHARS), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(AUDIT_ACTOR_CHARS))
    expires_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuditEntry(Base):
    """Who did what to what, when and from where: one administrative action. ``area`` (the action's first
    dotted part: ``auth``, ``energy``, ``smog``, ``hub``, ...) says which officers may read it."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at_ms"),
        Index("ix_audit_log_area_id", "area", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    # user, api_key, cli or anonymous; the id is the user's or key's, the name its username or key name.
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(AUDIT_ACTOR_CHARS))
    area: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(AUDIT_ACTION_CHARS))
    target: Mapped[str] = mapped_column(String(AUDIT_TARGET_CHARS))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_ip: Mapped[str | None] = mapped_column(String(CLIENT_IP_CHARS), nullable=True)


EVENT_MESSAGE_CHARS = 500
# A condition raised about the school's agent itself rather than one of its devices.
SCHOOL_LEVEL_DEVICE = ""


class Event(Base):
    """A health event of a school's edge agent (`common.wire.HealthEvent`), stored once per
    ``(school_id, stream, seq)``."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("school_id", "stream", "seq"),
        Index("ix_events_school_ts", "school_id", "ts_ms"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    stream: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    device_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    code: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    message_pl: Mapped[str] = mapped_column(String(EVENT_MESSAGE_CHARS))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_ms: Mapped[int] = mapped_column(BigInteger)


class EventState(Base):
    """Whether a condition ``(school, device, code)`` is raised now: the newest event about it decides.
    ``device_id`` is `SCHOOL_LEVEL_DEVICE` for a condition of the agent itself."""

    __tablename__ = "event_states"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(String(48), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    severity: Mapped[str] = mapped_column(String(16))
    # When the condition entered its present state (raised or cleared), and the newest event's time.
    since_ms: Mapped[int] = mapped_column(BigInteger)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    message_pl: Mapped[str] = mapped_column(String(EVENT_MESSAGE_CHARS))


class CounterCorrection(Base):
    """A step of a cumulative counter that the interval energies do not take as measured: a reset (the
    counter fell), a rollover (it wrapped at its register's limit) or a jump (it grew faster than the device
    can). The step ends at the reading of ``ts_ms``; ``counted_wh`` is the energy counted for it instead of
    ``value_wh - previous_wh``."""

    __tablename__ = "counter_corrections"
    __table_args__ = (Index("ix_counter_corrections_school_ts", "school_id", "ts_ms"),)

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[str] = mapped_column(String(48), primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    correction: Mapped[str] = mapped_column(String(16))
    previous_ts_ms: Mapped[int] = mapped_column(BigInteger)
    previous_wh: Mapped[float] = mapped_column(Float)
    value_wh: Mapped[float] = mapped_column(Float)
    counted_wh: Mapped[float] = mapped_column(Float)
    detected_ms: Mapped[int] = mapped_column(BigInteger)


class IngestWorker(Base):
    """One ingest process's counters, keyed by its MQTT client id and updated in the transactions that store
    what they count, so they agree with the data whatever happens to the process."""

    __tablename__ = "ingest_workers"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64))
    started_ms: Mapped[int] = mapped_column(BigInteger)
    # Real time of the process's last sign of life (a commit or its periodic heartbeat).
    heartbeat_ms: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(BigInteger)
    readings: Mapped[int] = mapped_column(BigInteger)
    duplicates: Mapped[int] = mapped_column(BigInteger)
    dead_letters: Mapped[int] = mapped_column(BigInteger)
    refused_readings: Mapped[int] = mapped_column(BigInteger)
    statuses: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)
    corrections: Mapped[int] = mapped_column(BigInteger)
    intervals: Mapped[int] = mapped_column(BigInteger)
    transactions: Mapped[int] = mapped_column(BigInteger)
    # The newest sample time stored by this process, and of its last transaction: commit time minus it.
    newest_ts_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    commit_lag_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # How many live samples were committed within each lag bound (cloud.ingest.stats.LAG_BOUNDS_S), by bound.
    lag_histogram: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Messages received and not yet stored, at the last heartbeat.
    queued: Mapped[int] = mapped_column(Integer)
    timeseries_lines: Mapped[int] = mapped_column(BigInteger)
    timeseries_batches: Mapped[int] = mapped_column(BigInteger)
    timeseries_failures: Mapped[int] = mapped_column(BigInteger)
    # When the certificate the broker presents expires, as the worker last saw it (cloud.ingest.certificate).
    broker_cert_not_after_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TimeseriesOutbox(Base):
    """Line protocol waiting for the time-series database: written in the transaction that stores the data
    it describes, deleted once the database has accepted it. ``body`` is the lines, UTF-8, one per line."""

    __tablename__ = "timeseries_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # A sender that took the row and until when (real time); another sender waits until then.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
