"""``/api/v1/smog/applications``: residents file applications to the Stop Smog programme and follow them
through a secret status link; the city's officer lists, reads and moves them through the workflow.

Personal data never reaches a log here: logs name the case number only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, cast

from cryptography.fernet import MultiFernet
from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import BeforeValidator
from sqlalchemy.orm import Session

from cloud.api.deps import ClockDep, SessionDep
from cloud.api.models.smog import (
    ApplicantPublic,
    ApplicationDetailPublic,
    ApplicationFiledPublic,
    ApplicationPagePublic,
    ApplicationStatusPublic,
    ApplicationSummaryPublic,
    OfficerEventPublic,
    StatusChange,
    StatusEventPublic,
    StatusName,
)
from cloud.api.routes.smog import SmogRoute
from cloud.api.security import Allow, Public
from cloud.applications.config import DEFAULT_MAX_PROOF_BYTES, ApplicationsConfig
from cloud.applications.errors import IdempotencyConflictError, StatusChangeError
from cloud.applications.form import ApplicationForm
from cloud.applications.pdf import render_application_pdf
from cloud.applications.service import (
    STATUS_LABELS_PL,
    application_by_case,
    application_by_token,
    case_from_ref,
    case_ref,
    change_status,
    check_idempotency_key,
    check_proof,
    list_applications,
    note_text,
    personal_data,
    proof_bytes,
    submit_application,
)
from cloud.applications.tables import SmogApplication
from cloud.auth.audit import audit
from cloud.auth.principals import Principal
from cloud.auth.roles import Role
from common.clock import datetime_from_ms, ms_from_datetime


def _iso_8601_only(value: object) -> object:
    # pydantic would also read "0.5" as seconds since 1970; the document promises ISO 8601 text.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("należy podać czas w formacie ISO 8601, np. 2026-03-01T00:00:00Z") from None
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_8601_only)]

PREFIX = "/api/v1/smog/applications"
_NOT_FOUND = "Nie znaleziono wniosku."


def get_applications_config(request: Request) -> ApplicationsConfig:
    """The configuration set on ``app.state.smog_applications`` at start-up (see ``ApplicationsConfig``),
    else read from the environment once (refusing without a key outside development)."""
    config = getattr(request.app.state, "smog_applications", None)
    if config is None:
        config = ApplicationsConfig.from_environment()
        request.app.state.smog_applications = config
    return cast(ApplicationsConfig, config)


def get_cipher(config: Annotated[ApplicationsConfig, Depends(get_applications_config)]) -> MultiFernet:
    return config.cipher()


#: The officer's rule; a test stands a principal in: ``app.dependency_overrides[SMOG_OFFICER.dependency]``.
SMOG_OFFICER = Allow(Role.SMOG_OFFICER, rate_limit="search")
# The proof and the form's fields: over the app's default body limit.
MAX_APPLICATION_BODY_BYTES = DEFAULT_MAX_PROOF_BYTES + 256 * 1024
_STATUS_LINK = Public(rate_limit="search")


ConfigDep = Annotated[ApplicationsConfig, Depends(get_applications_config)]
CipherDep = Annotated[MultiFernet, Depends(get_cipher)]
OfficerDep = Annotated[Principal, SMOG_OFFICER]

router = APIRouter(prefix=PREFIX, tags=["smog applications"], route_class=SmogRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Public(rate_limit="applications")],
    max_body_size=MAX_APPLICATION_BODY_BYTES,
    responses={
        200: {"description": "The same request was filed before with this Idempotency-Key.", "model": None},
        409: {"description": "The Idempotency-Key was used for a different application."},
        422: {"description": "Bad input; each message in Polish names its field. Nothing is stored."},
    },
)
async def file_application(
    form: Annotated[ApplicationForm, Form()],
    proof: Annotated[UploadFile, File(description="Photo (JPEG, PNG) or PDF proving the coal stove.")],
    session: SessionDep,
    clock: ClockDep,
    config: ConfigDep,
    cipher: CipherDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="A random id made once per application (UUID)."),
    ] = None,
) -> ApplicationFiledPublic:
    """File an application (multipart: the form's fields and the file ``proof``). Answers the case number,
    the secret status link and the link to the PDF."""
    key = check_idempotency_key(idempotency_key)
    content = await proof.read(config.max_proof_bytes + 1)
    content_type = check_proof(content, config.max_proof_bytes)
    try:
        submission = submit_application(session, cipher, form, content, content_type, key, clock.now_ms())
    except IdempotencyConflictError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=error.message_pl) from error
    if submission.replayed:
        response.status_code = status.HTTP_200_OK
    application = application_by_token(session, submission.status_token)
    return ApplicationFiledPublic(
        case_number=submission.case_number,
        status=cast(StatusName, application.status if application is not None else "submitted"),
        status_url=f"{PREFIX}/status/{submission.status_token}",
        pdf_url=f"{PREFIX}/status/{submission.status_token}/pdf",
        replayed=submission.replayed,
    )


def _by_token(session: Session, token: str) -> SmogApplication:
    application = application_by_token(session, token) if 20 <= len(token) <= 100 else None
    if application is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_NOT_FOUND)
    return application


def _events(cipher: MultiFernet, application: SmogApplication) -> list[OfficerEventPublic]:
    return [
        OfficerEventPublic(
            status=cast(StatusName, event.status),
            status_label_pl=STATUS_LABELS_PL[event.status],
            at=datetime_from_ms(event.at_ms),
            note=note_text(cipher, event),
            actor=event.actor,
        )
        for event in application.events
    ]


@router.get(
    "/status/{token}",
    responses={404: {"description": "No application with this link."}},
    dependencies=[_STATUS_LINK],
)
def read_status(token: str, session: SessionDep, cipher: CipherDep) -> ApplicationStatusPublic:
    """The case's status and history, for the applicant holding the secret link."""
    application = _by_token(session, token)
    return ApplicationStatusPublic(
        case_number=application.case_number,
        status=cast(StatusName, application.status),
        status_label_pl=STATUS_LABELS_PL[application.status],
        submitted=datetime_from_ms(application.created_ms),
        updated=datetime_from_ms(application.updated_ms),
        history=[
            StatusEventPublic.model_validate(event.model_dump(exclude={"actor"}))
            for event in _events(cipher, application)
        ],
    )


@router.get(
    "/status/{token}/pdf",
    response_class=Response,
    dependencies=[_STATUS_LINK],
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "No application."}},
)
def read_pdf(token: str, session: SessionDep, cipher: CipherDep) -> Response:
    """The filled-in application as a PDF, for the applicant's records."""
    application = _by_token(session, token)
    data = personal_data(cipher, application)
    pdf = render_application_pdf(
        application.case_number, application.created_ms, application.status, data.form, data.address_label
    )
    filename = f"wniosek-{case_ref(application.case_number)}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _summary(application: SmogApplication) -> dict[str, object]:
    return {
        "case_number": application.case_number,
        "case_ref": case_ref(application.case_number),
        "status": application.status,
        "heat_source": application.heat_source,
        "submitted": datetime_from_ms(application.created_ms),
        "updated": datetime_from_ms(application.updated_ms),
        "proof_content_type": application.proof_content_type,
        "proof_size_bytes": application.proof_size_bytes,
    }


@router.get("", responses={401: {"description": "Not an officer."}})
def list_all(
    session: SessionDep,
    _officer: OfficerDep,
    status_: Annotated[StatusName | None, Query(alias="status")] = None,
    heat_source: Annotated[str | None, Query(max_length=32)] = None,
    submitted_from: Annotated[IsoDatetime | None, Query(description="ISO 8601, inclusive.")] = None,
    submitted_to: Annotated[IsoDatetime | None, Query(description="ISO 8601, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ApplicationPagePublic:
    """Applications, newest first, without personal data; filters by status, heat source and time."""
    page = list_applications(
        session,
        status=status_,
        heat_source=heat_source,
        submitted_from_ms=ms_from_datetime(submitted_from) if submitted_from else None,
        submitted_to_ms=ms_from_datetime(submitted_to) if submitted_to else None,
        limit=limit,
        offset=offset,
    )
    return ApplicationPagePublic(
        items=[ApplicationSummaryPublic.model_validate(_summary(item)) for item in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
    )


def _by_case(session: Session, ref: str) -> SmogApplication:
    application = application_by_case(session, case_from_ref(ref))
    if application is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_NOT_FOUND)
    return application


def _detail(cipher: MultiFernet, application: SmogApplication) -> ApplicationDetailPublic:
    data = personal_data(cipher, application)
    return ApplicationDetailPublic.model_validate(
        {
            **_summary(application),
            "applicant": ApplicantPublic.model_validate(
                {**data.form.model_dump(), "address_label": data.address_label}
            ),
            "history": _events(cipher, application),
        }
    )


@router.get("/{case}", responses={401: {"description": "Not an officer."}, 404: {"description": "No case."}})
def read_application(
    case: str, session: SessionDep, clock: ClockDep, cipher: CipherDep, officer: OfficerDep
) -> ApplicationDetailPublic:
    """One application with the applicant's decrypted details; ``case`` as SS-2026-000123. Each reading
    of personal data is in the audit log."""
    application = _by_case(session, case)
    _audit(session, officer, "smog.application.view", application, {}, clock.now_ms())
    session.commit()
    return _detail(cipher, application)


def _audit(
    session: Session,
    officer: Principal,
    action: str,
    application: SmogApplication,
    details: dict[str, object],
    now_ms: int,
) -> None:
    """An audit entry in the session's transaction; never with personal data (the note is not copied)."""
    audit(
        session,
        officer.actor,
        action,
        f"application:{application.case_number}",
        details,
        at_ms=now_ms,
    )


@router.get(
    "/{case}/proof",
    response_class=Response,
    responses={401: {"description": "Not an officer."}, 404: {"description": "No case."}},
)
def read_proof(
    case: str, session: SessionDep, clock: ClockDep, cipher: CipherDep, officer: OfficerDep
) -> Response:
    """The uploaded proof, decrypted, with the type sniffed at upload; the reading is in the audit log."""
    application = _by_case(session, case)
    _audit(session, officer, "smog.application.proof", application, {}, clock.now_ms())
    session.commit()
    return Response(
        proof_bytes(cipher, application),
        media_type=application.proof_content_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.patch(
    "/{case}",
    responses={
        401: {"description": "Not an officer."},
        404: {"description": "No case."},
        409: {"description": "The workflow does not allow this change."},
    },
)
def update_status(
    case: str,
    change: StatusChange,
    session: SessionDep,
    clock: ClockDep,
    cipher: CipherDep,
    officer: OfficerDep,
) -> ApplicationDetailPublic:
    """Move the application through submitted → in_review → accepted, rejected or needs_info
    (needs_info → in_review), with a note the applicant sees."""
    application = _by_case(session, case)
    now_ms = clock.now_ms()
    details: dict[str, object] = {"from": application.status, "to": change.status, "note": bool(change.note)}
    _audit(session, officer, "smog.application.status", application, details, now_ms)
    try:
        # Commits the change and its audit entry together.
        change_status(session, cipher, application, change.status, change.note, officer.name, now_ms)
    except StatusChangeError as error:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, detail=error.message_pl) from error
    return _detail(cipher, application)
