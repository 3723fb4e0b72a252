"""What the Stop Smog application endpoints answer. The estimate and the address search answer with the
calculator's own models (``cloud.smog.EstimateResponse``, ``cloud.smog.AddressMatch``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

StatusName = Literal["submitted", "in_review", "accepted", "rejected", "needs_info"]


class ApplicationFiledPublic(BaseModel):
    """The answer to a filed application: keep the status link secret, it is the only way to the case."""

    case_number: str = Field(examples=["SS/2026/000123"])
    status: StatusName
    status_url: str = Field(description="Secret link to the case's status (JSON).")
    pdf_url: str = Field(description="Secret link to the filled-in application as a PDF.")
    replayed: bool = Field(
        description="True when the same request with the same Idempotency-Key was filed before."
    )


class StatusEventPublic(BaseModel):
    status: StatusName
    status_label_pl: str
    at: datetime
    note: str | None = Field(default=None, description="The officer's note for the applicant.")


class ApplicationStatusPublic(BaseModel):
    """What the applicant sees through the status link: no personal data."""

    case_number: str
    status: StatusName
    status_label_pl: str
    submitted: datetime
    updated: datetime
    history: list[StatusEventPublic]


class ApplicationSummaryPublic(BaseModel):
    """An application in the officer's list: no personal data."""

    case_number: str
    case_ref: str = Field(description="The case number as it goes in a URL: SS-2026-000123.")
    status: StatusName
    heat_source: str
    submitted: datetime
    updated: datetime
    proof_content_type: str
    proof_size_bytes: int


class ApplicationPagePublic(BaseModel):
    items: list[ApplicationSummaryPublic]
    total: int
    limit: int
    offset: int


class ApplicantPublic(BaseModel):
    """The decrypted form, for the officer only."""

    model_config = ConfigDict(extra="forbid")

    first_name: str
    last_name: str
    pesel: str
    phone: str | None
    email: str | None
    address_id: int
    address_label: str
    flat_number: str | None
    plot_number: str | None
    cadastral_district: str | None
    usable_area_m2: float | None
    business_share_percent: float | None
    property_title: str
    co_owners: str | None
    current_heating: str
    current_heating_age_years: int | None
    current_heating_power_kw: float | None
    current_fuel_use_t_per_year: float | None
    heat_source: str
    planned_completion: date | None
    estimated_cost_pln: float | None
    planned_power_kw: float | None
    planned_consumption_per_year: float | None
    planned_consumption_unit: str | None
    investor_type: str
    de_minimis_aid_pln: float | None
    bank_account: str | None
    consent: bool


class OfficerEventPublic(StatusEventPublic):
    actor: str


class ApplicationDetailPublic(ApplicationSummaryPublic):
    applicant: ApplicantPublic
    history: list[OfficerEventPublic]


class StatusChange(BaseModel):
    """An officer's change of status, with a note the applicant sees through the status link."""

    model_config = ConfigDict(extra="forbid")

    status: StatusName
    note: str | None = Field(default=None, max_length=2000)
