"""Applications to the Stop Smog programme: the applicant's form (PESEL checked), idempotent filing with a
case number and a secret status link, personal data and the proof encrypted at rest, the officer's status
workflow, the PDF for the applicant, and the retention purge. See docs/smog.md."""

from cloud.applications.config import ApplicationsConfig, ApplicationsConfigError
from cloud.applications.errors import ApplicationInputError, IdempotencyConflictError, StatusChangeError
from cloud.applications.form import ApplicationForm
from cloud.applications.pdf import render_application_pdf
from cloud.applications.pesel import pesel_problem
from cloud.applications.service import purge_expired, submit_application
from cloud.applications.tables import applications_metadata, create_application_tables

__all__ = [
    "ApplicationForm",
    "ApplicationInputError",
    "ApplicationsConfig",
    "ApplicationsConfigError",
    "IdempotencyConflictError",
    "StatusChangeError",
    "applications_metadata",
    "create_application_tables",
    "pesel_problem",
    "purge_expired",
    "render_application_pdf",
    "submit_application",
]
