"""What the applicant fills in: the fields of the city's paper form that the online application takes, with
each refusal in Polish naming the field (error type ``smog_input``, as the calculator's request)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cloud.applications.pesel import pesel_problem
from cloud.smog.estimate import CurrentHeatingKind, OptionKind
from cloud.smog.wording import out_of_bounds_pl

FIELD_LABELS_PL: dict[str, str] = {
    "first_name": "imię",
    "last_name": "nazwisko",
    "pesel": "PESEL",
    "phone": "telefon",
    "email": "e-mail",
    "address_id": "adres nieruchomości",
    "flat_number": "numer lokalu",
    "plot_number": "numer działki",
    "cadastral_district": "obręb ewidencyjny",
    "usable_area_m2": "powierzchnia użytkowa",
    "business_share_percent": "część powierzchni na działalność gospodarczą",
    "property_title": "tytuł prawny do nieruchomości",
    "co_owners": "współwłaściciele",
    "current_heating": "obecne źródło ciepła",
    "current_heating_age_years": "wiek obecnego źródła ciepła",
    "current_heating_power_kw": "moc obecnego źródła ciepła",
    "current_fuel_use_t_per_year": "roczne zużycie paliwa",
    "heat_source": "planowane źródło ciepła",
    "planned_completion": "planowany termin zakończenia",
    "estimated_cost_pln": "szacowany koszt",
    "planned_power_kw": "moc planowanego źródła ciepła",
    "planned_consumption_per_year": "planowane roczne zużycie energii lub paliwa",
    "planned_consumption_unit": "jednostka planowanego zużycia",
    "investor_type": "rodzaj inwestora",
    "de_minimis_aid_pln": "pomoc de minimis z ostatnich 3 lat",
    "bank_account": "numer rachunku bankowego",
    "consent": "zgoda na przetwarzanie danych",
    "proof": "dowód posiadania pieca węglowego",
    "Idempotency-Key": "klucz idempotencji",
}

CURRENT_HEATING_LABELS_PL: dict[str, str] = {
    "coal_stove": "piec kaflowy / piec węglowy (ręczny)",
    "coal_boiler_old": "kocioł węglowy starszy niż klasa 5",
    "coal_boiler_class5": "kocioł węglowy klasy 5",
    "wood_stove": "piec na drewno",
}
PROPERTY_TITLE_LABELS_PL: dict[str, str] = {
    "owner": "właściciel",
    "co_owner": "współwłaściciel",
    "perpetual_usufruct": "użytkowanie wieczyste",
    "other": "inny tytuł prawny",
}
PropertyTitle = Literal["owner", "co_owner", "perpetual_usufruct", "other"]
INVESTOR_TYPE_LABELS_PL: dict[str, str] = {
    "natural_person": "osoba fizyczna",
    "natural_person_business": "osoba fizyczna prowadząca działalność gospodarczą",
    "housing_community": "wspólnota mieszkaniowa",
    "other": "inny",
}
InvestorType = Literal["natural_person", "natural_person_business", "housing_community", "other"]
# The units an estimate gives a source's yearly use in (`cloud.smog.estimate.EnergyUse.quantity_unit`).
ConsumptionUnit = Literal["kWh", "GJ", "t", "l"]

# The numbers of the form: (lowest, highest, unit as the resident reads it).
_BOUNDS: dict[str, tuple[float, float, str]] = {
    "usable_area_m2": (10, 1000, "m²"),
    "business_share_percent": (0, 100, "%"),
    "current_heating_age_years": (0, 150, "lat"),
    "current_heating_power_kw": (1, 200, "kW"),
    "current_fuel_use_t_per_year": (0, 100, "t"),
    "estimated_cost_pln": (0, 1_000_000, "zł"),
    "planned_power_kw": (1, 200, "kW"),
    "planned_consumption_per_year": (0, 10_000_000, ""),
    "de_minimis_aid_pln": (0, 10_000_000, "zł"),
}

_PHONE = re.compile(r"^(\+48)?[0-9]{9}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[^\d<>{}\[\]\\/@#$%^*=_|~]+$")


def polish_error(field: str, problem: str) -> PydanticCustomError:
    label = FIELD_LABELS_PL.get(field, field)
    return PydanticCustomError(
        "smog_input", "{message}", {"message": f"Pole „{field}” ({label}): {problem}", "field": field}
    )


# The validation context under which a stored application is read back: the rules that judge a filing
# (bounds, what goes with what) were applied when it was filed and are not applied again, so that a record
# filed under earlier rules stays readable when they change. Types are still checked.
STORED = {"stored": True}


def _filing(info: ValidationInfo) -> bool:
    return not (info.context or {}).get("stored", False)


def _iban_ok(digits: str) -> bool:
    """A Polish account number (NRB, 26 digits) with its IBAN check digits."""
    rearranged = digits[2:] + "2521" + digits[:2]  # "PL" = 25 21
    return int(rearranged) % 97 == 1


class ApplicationForm(BaseModel):
    """The applicant's details and the house, as sent by the web form (multipart fields)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    pesel: str
    phone: str | None = None
    email: str | None = None
    address_id: int = Field(description="Id of an address in the town, from the address search.")
    flat_number: str | None = Field(default=None, max_length=10)
    plot_number: str | None = Field(default=None, max_length=40)
    cadastral_district: str | None = Field(default=None, max_length=100)
    usable_area_m2: float | None = None
    business_share_percent: float | None = None
    property_title: PropertyTitle = "owner"
    co_owners: str | None = Field(default=None, max_length=500)
    current_heating: CurrentHeatingKind = "coal_stove"
    current_heating_age_years: int | None = None
    current_heating_power_kw: float | None = None
    current_fuel_use_t_per_year: float | None = None
    heat_source: OptionKind
    planned_completion: date | None = None
    estimated_cost_pln: float | None = None
    planned_power_kw: float | None = None
    planned_consumption_per_year: float | None = None
    planned_consumption_unit: ConsumptionUnit | None = None
    investor_type: InvestorType = "natural_person"
    de_minimis_aid_pln: float | None = Field(
        default=None,
        description="De minimis aid received in the last 3 years [zł]; required from a business or when part "
        "of the property serves one.",
    )
    bank_account: str | None = None
    consent: bool = False

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, data: Any) -> Any:
        """An empty field of an HTML form means "not given"."""
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if not (isinstance(value, str) and not value.strip())
            }
        return data

    @field_validator("first_name", "last_name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        if _filing(info) and (not value or not _NAME.match(value)):
            raise polish_error(str(info.field_name), "podaj je literami (bez cyfr i znaków specjalnych).")
        return value

    @field_validator("pesel")
    @classmethod
    def _pesel(cls, value: str, info: ValidationInfo) -> str:
        if not _filing(info):
            return value
        problem = pesel_problem(value)
        if problem is not None:
            raise polish_error("pesel", f"nieprawidłowy numer PESEL: {problem}")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not _filing(info):
            return value
        compact = re.sub(r"[\s-]", "", value)
        if not _PHONE.match(compact):
            raise polish_error("phone", "podaj 9 cyfr numeru (z +48 lub bez).")
        return compact

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _filing(info) and (len(value) > 254 or not _EMAIL.match(value)):
            raise polish_error("email", "to nie wygląda na adres e-mail (np. jan@example.pl).")
        return value

    @field_validator(*_BOUNDS)
    @classmethod
    def _within_bounds(cls, value: float | None, info: ValidationInfo) -> float | None:
        low, high, unit = _BOUNDS[str(info.field_name)]
        if value is not None and _filing(info) and not low <= value <= high:
            raise polish_error(str(info.field_name), out_of_bounds_pl(value, low, high, unit))
        return value

    @field_validator("bank_account")
    @classmethod
    def _account(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not _filing(info):
            return value
        digits = re.sub(r"[\s-]", "", value).upper().removeprefix("PL")
        if len(digits) != 26 or not digits.isdigit() or not _iban_ok(digits):
            raise polish_error(
                "bank_account", "podaj 26 cyfr numeru rachunku; suma kontrolna się nie zgadza."
            )
        return digits

    @model_validator(mode="after")
    def _pairs_and_de_minimis(self, info: ValidationInfo) -> ApplicationForm:
        if not _filing(info):
            return self
        if (self.planned_consumption_per_year is None) != (self.planned_consumption_unit is None):
            given_unit = self.planned_consumption_unit is not None
            field = "planned_consumption_per_year" if given_unit else "planned_consumption_unit"
            raise polish_error(field, "podaj zużycie razem z jednostką (kWh, GJ, t lub l).")
        serves_business = (
            self.investor_type == "natural_person_business" or (self.business_share_percent or 0) > 0
        )
        if serves_business and self.de_minimis_aid_pln is None:
            raise polish_error(
                "de_minimis_aid_pln",
                "przy działalności gospodarczej podaj kwotę pomocy de minimis otrzymanej w ciągu ostatnich "
                "3 lat (0, jeśli żadnej).",
            )
        return self

    @model_validator(mode="after")
    def _contact_and_consent(self, info: ValidationInfo) -> ApplicationForm:
        if not _filing(info):
            return self
        if self.phone is None and self.email is None:
            raise polish_error(
                "phone", "podaj numer telefonu albo adres e-mail, abyśmy mogli się skontaktować."
            )
        if not self.consent:
            raise polish_error(
                "consent", "bez zgody na przetwarzanie danych osobowych nie możemy przyjąć wniosku."
            )
        return self
