"""Filing, reading, reviewing and purging applications. Every function takes the session and commits
nothing but what it says; personal data is encrypted before it reaches the session and never logged (logs
name the case number only).

The proof (a photo or PDF of the old stove, at most 10 MiB) is stored encrypted in the database, in the
application's row: it is written in the same transaction as the application (a refused or failed request
leaves nothing behind, no orphan file), deleted with it by the retention purge, and carried by the database's
backups without a second store to back up and secure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cryptography.fernet import MultiFernet
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.applications.errors import ApplicationInputError, IdempotencyConflictError, StatusChangeError
from cloud.applications.form import STORED, ApplicationForm
from cloud.applications.tables import SmogApplication, SmogApplicationEvent
from cloud.smog.tables import SmogAddress

logger = logging.getLogger(__name__)

WARSAW = ZoneInfo("Europe/Warsaw")
CASE_PREFIX = "SS"

Status = Literal["submitted", "in_review", "accepted", "rejected", "needs_info"]
STATUSES: tuple[Status, ...] = ("submitted", "in_review", "accepted", "rejected", "needs_info")
STATUS_LABELS_PL: dict[str, str] = {
    "submitted": "złożony",
    "in_review": "w ocenie",
    "accepted": "przyjęty",
    "rejected": "odrzucony",
    "needs_info": "wymaga uzupełnienia",
}
# Which status may follow which: accepted and rejected are final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("in_review",),
    "in_review": ("accepted", "rejected", "needs_info"),
    "needs_info": ("in_review",),
    "accepted": (),
    "rejected": (),
}

# Concurrent filings may take the same next sequence number; each retry loses to at most one other request.
_CASE_NUMBER_ATTEMPTS = 20

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)


def sniff_proof_type(content: bytes) -> str | None:
    """The proof's type from its first bytes (JPEG, PNG or PDF), whatever the browser declared; else None."""
    for magic, content_type in _MAGIC:
        if content.startswith(magic):
            return content_type
    return None


def check_proof(content: bytes, max_bytes: int) -> str:
    """The proof's content type, or ``ApplicationInputError`` on the ``proof`` field."""
    if not content:
        raise ApplicationInputError(
            "proof", "Pole „proof” (dowód posiadania pieca węglowego): plik jest pusty."
        )
    if len(content) > max_bytes:
        raise ApplicationInputError(
            "proof",
            f"Pole „proof” (dowód posiadania pieca węglowego): plik jest za duży; "
            f"największy dopuszczalny to {max_bytes / 1024 / 1024:g} MiB.",
        )
    content_type = sniff_proof_type(content)
    if content_type is None:
        raise ApplicationInputError(
            "proof",
            "Pole „proof” (dowód posiadania pieca węglowego): dołącz zdjęcie JPEG lub PNG albo dokument PDF.",
        )
    return content_type


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def case_number(year: int, sequence: int) -> str:
    """``SS/2026/000123``."""
    return f"{CASE_PREFIX}/{year}/{sequence:06d}"


def case_from_ref(ref: str) -> str:
    """The case number from its URL form ``SS-2026-000123`` (slashes cannot be in one path segment)."""
    return ref.replace("-", "/")


def case_ref(number: str) -> str:
    return number.replace("/", "-")


@dataclass(frozen=True)
class Submission:
    case_number: str
    status_token: str
    replayed: bool


@dataclass(frozen=True)
class PersonalData:
    """The decrypted part of an application."""

    form: ApplicationForm
    address_label: str


def _encrypt_json(cipher: MultiFernet, value: Any) -> bytes:
    return cipher.encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True).encode())


def personal_data(cipher: MultiFernet, application: SmogApplication) -> PersonalData:
    raw = json.loads(cipher.decrypt(application.personal_data_encrypted))
    # Read as filed: the filing rules of its day were checked then (`cloud.applications.form.STORED`).
    form = ApplicationForm.model_validate(raw["form"], context=STORED)
    return PersonalData(form=form, address_label=raw["address_label"])


def proof_bytes(cipher: MultiFernet, application: SmogApplication) -> bytes:
    return cipher.decrypt(application.proof_encrypted)


def note_text(cipher: MultiFernet, event: SmogApplicationEvent) -> str | None:
    return cipher.decrypt(event.note_encrypted).decode() if event.note_encrypted is not None else None


def _request_fingerprint(form: ApplicationForm, proof: bytes) -> str:
    fields = json.dumps(form.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return sha256_hex(fields + "\n" + sha256_hex(proof))


def check_idempotency_key(key: str | None) -> str:
    if key is None or not 8 <= len(key.strip()) <= 200:
        raise ApplicationInputError(
            "Idempotency-Key",
            "Nagłówek „Idempotency-Key” (klucz idempotencji): wymagany, od 8 do 200 znaków "
            "(np. losowy UUID tworzony raz dla jednego wniosku).",
            location="header",
        )
    return key.strip()


def _replay(cipher: MultiFernet, existing: SmogApplication, fingerprint: str) -> Submission:
    if existing.request_sha256 != fingerprint:
        raise IdempotencyConflictError
    return Submission(existing.case_number, cipher.decrypt(existing.status_token_encrypted).decode(), True)


def submit_application(
    session: Session,
    cipher: MultiFernet,
    form: ApplicationForm,
    proof: bytes,
    proof_content_type: str,
    idempotency_key: str,
    now_ms: int,
) -> Submission:
    """File an application in one transaction (committed here), or return the one filed before with the same
    idempotency key and the same content. The address must be one of the town's address points."""
    key_hash = sha256_hex(idempotency_key)
    fingerprint = _request_fingerprint(form, proof)
    existing = session.scalar(
        select(SmogApplication).where(SmogApplication.idempotency_key_sha256 == key_hash)
    )
    if existing is not None:
        return _replay(cipher, existing, fingerprint)
    address = session.get(SmogAddress, form.address_id)
    if address is None:
        raise ApplicationInputError(
            "address_id",
            "Pole „address_id” (adres nieruchomości): nie znaleziono adresu o identyfikatorze "
            f"{form.address_id} w Zduńskiej Woli; wybierz adres z podpowiedzi.",
        )
    label = f"{address.street} {address.number}" + (f"/{form.flat_number}" if form.flat_number else "")
    label += f", {address.postcode} Zduńska Wola"
    year = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(WARSAW).year
    token = secrets.token_urlsafe(32)
    for _attempt in range(_CASE_NUMBER_ATTEMPTS):
        sequence = (
            session.scalar(select(func.max(SmogApplication.sequence)).where(SmogApplication.year == year))
            or 0
        ) + 1
        application = SmogApplication(
            year=year,
            sequence=sequence,
            case_number=case_number(year, sequence),
            status="submitted",
            heat_source=form.heat_source,
            created_ms=now_ms,
            updated_ms=now_ms,
            status_token_sha256=sha256_hex(token),
            status_token_encrypted=cipher.encrypt(token.encode()),
            idempotency_key_sha256=key_hash,
            request_sha256=fingerprint,
            personal_data_encrypted=_encrypt_json(
                cipher, {"form": form.model_dump(mode="json"), "address_label": label}
            ),
            proof_encrypted=cipher.encrypt(proof),
            proof_content_type=proof_content_type,
            proof_size_bytes=len(proof),
        )
        application.events.append(SmogApplicationEvent(at_ms=now_ms, status="submitted", actor="applicant"))
        session.add(application)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            # Another request took this sequence number, or filed this idempotency key first.
            existing = session.scalar(
                select(SmogApplication).where(SmogApplication.idempotency_key_sha256 == key_hash)
            )
            if existing is not None:
                return _replay(cipher, existing, fingerprint)
            continue
        logger.info("application %s filed", application.case_number)
        return Submission(application.case_number, token, False)
    raise RuntimeError(f"could not allocate a case number after {_CASE_NUMBER_ATTEMPTS} attempts")


def application_by_token(session: Session, token: str) -> SmogApplication | None:
    return session.scalar(
        select(SmogApplication).where(SmogApplication.status_token_sha256 == sha256_hex(token))
    )


def application_by_case(session: Session, number: str) -> SmogApplication | None:
    return session.scalar(select(SmogApplication).where(SmogApplication.case_number == number))


def change_status(
    session: Session,
    cipher: MultiFernet,
    application: SmogApplication,
    status: str,
    note: str | None,
    actor: str,
    now_ms: int,
) -> SmogApplicationEvent:
    """Move the application to ``status`` if the workflow allows it, with an optional note; committed."""
    allowed = TRANSITIONS.get(application.status, ())
    if status not in allowed:
        names = ", ".join(f"„{name}”" for name in allowed) or "żaden (status jest ostateczny)"
        raise StatusChangeError(
            f"Wniosek {application.case_number} ma status „{application.status}”; "
            f"dozwolony następny status: {names}."
        )
    event = SmogApplicationEvent(
        at_ms=now_ms,
        status=status,
        actor=actor,
        note_encrypted=cipher.encrypt(note.encode()) if note else None,
    )
    application.events.append(event)
    application.status = status
    application.updated_ms = now_ms
    session.commit()
    logger.info("application %s: status %s", application.case_number, status)
    return event


@dataclass(frozen=True)
class Page:
    items: list[SmogApplication]
    total: int


def list_applications(
    session: Session,
    *,
    status: str | None = None,
    heat_source: str | None = None,
    submitted_from_ms: int | None = None,
    submitted_to_ms: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Applications, newest first, filtered by status, heat source and submission time [from, to)."""
    conditions = []
    if status is not None:
        conditions.append(SmogApplication.status == status)
    if heat_source is not None:
        conditions.append(SmogApplication.heat_source == heat_source)
    if submitted_from_ms is not None:
        conditions.append(SmogApplication.created_ms >= submitted_from_ms)
    if submitted_to_ms is not None:
        conditions.append(SmogApplication.created_ms < submitted_to_ms)
    total = session.scalar(select(func.count()).select_from(SmogApplication).where(*conditions)) or 0
    items = session.scalars(
        select(SmogApplication)
        .where(*conditions)
        .order_by(SmogApplication.created_ms.desc(), SmogApplication.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return Page(list(items), total)


def purge_expired(session: Session, now_ms: int, retention_days: int) -> list[str]:
    """Delete every application (its personal data, proof and history) whose last change of status is older
    than ``retention_days``; committed. Returns the deleted case numbers."""
    cutoff_ms = now_ms - int(timedelta(days=retention_days) / timedelta(milliseconds=1))
    rows = session.execute(
        select(SmogApplication.id, SmogApplication.case_number).where(SmogApplication.updated_ms < cutoff_ms)
    ).all()
    ids = [row.id for row in rows]
    if ids:
        # Explicitly, not only by ON DELETE CASCADE: SQLite enforces it only with foreign keys switched on.
        session.execute(delete(SmogApplicationEvent).where(SmogApplicationEvent.application_id.in_(ids)))
        session.execute(delete(SmogApplication).where(SmogApplication.id.in_(ids)))
    session.commit()
    for row in rows:
        logger.info("application %s deleted after the retention period", row.case_number)
    return [row.case_number for row in rows]
