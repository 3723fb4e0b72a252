"""``/api/v1/smog``: the Stop Smog calculator's estimate and address search, for residents (public).

The smog routers answer every refusal as FastAPI does (422, ``{"detail": [{"loc", "msg", "type"}]}``) but
with the message in Polish naming the field: ``SmogRoute`` turns both the calculator's ``SmogInputError`` and
the request's validation errors into that shape, for these routes only.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import ClockDep, SessionDep, SmogSitesDep
from cloud.api.readings import LOCAL_ZONE
from cloud.api.security import Public
from cloud.applications.errors import ApplicationInputError
from cloud.applications.form import FIELD_LABELS_PL
from cloud.smog import (
    AddressMatch,
    EstimateRequest,
    EstimateResponse,
    SmogInputError,
    estimate,
    search_addresses,
)
from common.clock import datetime_from_ms

ESTIMATE_LABELS_PL: dict[str, str] = {
    "address_id": "adres",
    "lat": "szerokość geograficzna",
    "lon": "długość geograficzna",
    "heated_area_m2": "powierzchnia ogrzewana",
    "building_standard": "standard budynku",
    "current_heating": "obecne ogrzewanie",
    "has_central_heating": "centralne ogrzewanie",
    "income_pln_per_person_month": "dochód na osobę",
    "household_size": "liczba osób w gospodarstwie",
    "applicant_income_pln_per_year": "roczny dochód wnioskodawcy",
    "loan": "kredyt",
    "loan.amount_pln": "kwota kredytu",
    "loan.share_of_net_investment": "część inwestycji na kredyt",
    "loan.annual_rate_percent": "oprocentowanie kredytu",
    "loan.years": "okres kredytu",
    "q": "szukany adres",
    "limit": "liczba wyników",
}

_PROBLEMS_PL: dict[str, str] = {
    "missing": "jest wymagane.",
    "float_parsing": "musi być liczbą.",
    "float_type": "musi być liczbą.",
    "finite_number": "musi być skończoną liczbą.",
    "int_parsing": "musi być liczbą całkowitą.",
    "int_type": "musi być liczbą całkowitą.",
    "int_from_float": "musi być liczbą całkowitą.",
    "bool_parsing": "musi mieć wartość tak lub nie.",
    "bool_type": "musi mieć wartość tak lub nie.",
    "string_type": "musi być tekstem.",
    "date_parsing": "podaj datę w postaci RRRR-MM-DD.",
    "date_from_datetime_parsing": "podaj datę w postaci RRRR-MM-DD.",
    "date_type": "podaj datę w postaci RRRR-MM-DD.",
    "extra_forbidden": "nieznane pole.",
    "json_invalid": "nieprawidłowy JSON.",
    "model_attributes_type": "oczekiwano obiektu JSON.",
    "dict_type": "oczekiwano obiektu JSON.",
    "model_type": "oczekiwano obiektu JSON.",
}


def _label(field: str) -> str:
    label = ESTIMATE_LABELS_PL.get(field) or FIELD_LABELS_PL.get(field)
    return f" ({label})" if label else ""


def polish_error(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic/FastAPI validation error with its message in Polish naming the field."""
    loc: list[str | int] = list(error.get("loc", ()))
    where = loc[0] if loc and loc[0] in ("body", "query", "header", "path") else "body"
    context = error.get("ctx") or {}
    if error.get("type") == "smog_input" and "field" in context:
        field = str(context["field"])
        return {"loc": [where, *field.split(".")], "msg": str(context["message"]), "type": "smog_input"}
    parts = [str(part) for part in (loc[1:] if loc and loc[0] == where else loc)]
    field = ".".join(parts) or "(żądanie)"
    kind = str(error.get("type", "value_error"))
    if kind == "literal_error":
        problem = f"niedozwolona wartość; dozwolone: {context.get('expected', '')}."
    elif kind == "string_too_long":
        problem = f"za długie (najwyżej {context.get('max_length')} znaków)."
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = next(iter(context.values()), "")
        relation = {"greater_than_equal": "≥", "less_than_equal": "≤", "greater_than": ">", "less_than": "<"}
        problem = f"musi być {relation[kind]} {bound}."
    else:
        problem = _PROBLEMS_PL.get(kind, "nieprawidłowa wartość.")
    return {"loc": [where, *parts], "msg": f"Pole „{field}”{_label(field)}: {problem}", "type": kind}


def polish_422(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [polish_error(error) for error in errors]},
    )


def input_error_422(error: SmogInputError) -> JSONResponse:
    where = error.location if isinstance(error, ApplicationInputError) else "body"
    loc = [where, error.field] if where == "header" else [where, *error.field.split(".")]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [{"loc": loc, "msg": error.message_pl, "type": "smog_input"}]},
    )


class SmogRoute(APIRoute):
    """A route whose refusals of input are answered in Polish (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def polish_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as error:
                return polish_422(list(error.errors()))
            except SmogInputError as error:
                return input_error_422(error)

        return polish_handler


router = APIRouter(prefix="/api/v1/smog", tags=["smog"], route_class=SmogRoute)

_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Bad input; each message in Polish names its field."}
}


@router.post(
    "/estimate",
    response_model=EstimateResponse,
    responses=_REFUSED,
    dependencies=[Public(rate_limit="estimates")],
)
async def post_estimate(
    request: EstimateRequest, session: SessionDep, sites: SmogSitesDep, clock: ClockDep
) -> Response:
    """The estimate for a house: every heat source with its investment, grants, loan, yearly bill,
    emissions and 15-year cost, sorted from the cheapest, each figure with its data keys and formulas and
    the data version it was computed with; the figures whose validity has ended are named."""
    # By address (the page's way): computed on the event loop — about a millisecond of Python and a site
    # usually kept in memory — not in a worker thread: under load, the threads' fight for the GIL with the
    # loop's socket writes cost more than the estimate itself (bench/bench_smog_estimate.py). By coordinates
    # the distances to every network line are computed from the database, which takes longer the larger the
    # networks: in a worker thread, so as not to hold up the other requests.
    # The core's model is serialised once, by pydantic, instead of FastAPI validating and encoding the
    # 50 kB answer again: a third of the request's time.
    today = datetime_from_ms(clock.now_ms()).astimezone(LOCAL_ZONE).date()
    if request.address_id is not None:
        answer = estimate(session, request, sites=sites, today=today)
    else:
        answer = await run_in_threadpool(estimate, session, request, today=today)
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/addresses", responses=_REFUSED, dependencies=[Public(rate_limit="search")])
def get_addresses(
    session: SessionDep,
    q: Annotated[str, Query(min_length=1, max_length=100, description="Street and number, any form.")],
    limit: Annotated[int, Query(ge=1, le=20)] = 10,
) -> list[AddressMatch]:
    """Addresses in the town matching ``q``, best first; tolerant of Polish diacritics, case, word order and
    of ``ul.``/``al.`` prefixes."""
    return search_addresses(session, q, limit)
