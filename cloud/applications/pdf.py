"""The filled-in application as a PDF for the applicant's records, laid out as the city's paper form, with a
font that has the Polish letters (DejaVu Sans, vendored in ``fonts/``; licence beside it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from cloud.applications.form import (
    CURRENT_HEATING_LABELS_PL,
    INVESTOR_TYPE_LABELS_PL,
    PROPERTY_TITLE_LABELS_PL,
    ApplicationForm,
)
from cloud.applications.service import STATUS_LABELS_PL, WARSAW
from cloud.smog.estimate import OPTION_LABELS_PL
from cloud.smog.wording import figure_pl

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
_NOT_GIVEN = "—"
# The label and value columns' shares of the page's width.
LABEL_AND_VALUE_WIDTHS = (2, 3)


def _text(value: object) -> str:
    if value is None or value == "":
        return _NOT_GIVEN
    if isinstance(value, float):
        return figure_pl(value)
    return str(value)


def _consumption(form: ApplicationForm) -> str | None:
    if form.planned_consumption_per_year is None:
        return None
    return f"{figure_pl(form.planned_consumption_per_year)} {form.planned_consumption_unit}"


def render_application_pdf(
    case_number: str, submitted_ms: int, status: str, form: ApplicationForm, address_label: str
) -> bytes:
    """The application's PDF: case number, date, and every field of the form by the paper form's sections."""
    submitted = datetime.fromtimestamp(submitted_ms / 1000, UTC).astimezone(WARSAW)
    pdf = FPDF(format="A4")
    pdf.set_title(f"Wniosek Stop Smog {case_number}")
    pdf.set_author("Urząd Miasta Zduńska Wola")
    pdf.set_creation_date(submitted)
    pdf.add_font("DejaVu", "", str(FONT_PATH))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("DejaVu", size=15)
    pdf.multi_cell(0, 8, "Wniosek o dofinansowanie wymiany źródła ciepła – program „Stop Smog”, Zduńska Wola")
    pdf.set_font("DejaVu", size=11)
    pdf.ln(2)
    pdf.multi_cell(
        0,
        6,
        f"Numer sprawy: {case_number}\nZłożony: {submitted:%d.%m.%Y %H:%M} (czas polski)\n"
        f"Status w chwili wydruku: {STATUS_LABELS_PL.get(status, status)}",
    )
    sections: list[tuple[str, list[tuple[str, object]]]] = [
        (
            "I. Wnioskodawca",
            [
                ("Imię", form.first_name),
                ("Nazwisko", form.last_name),
                ("PESEL", form.pesel),
                ("Telefon", form.phone),
                ("E-mail", form.email),
                ("Numer rachunku bankowego", form.bank_account),
            ],
        ),
        (
            "II. Nieruchomość",
            [
                ("Adres", address_label),
                ("Numer działki", form.plot_number),
                ("Obręb ewidencyjny", form.cadastral_district),
                ("Powierzchnia użytkowa [m²]", form.usable_area_m2),
                ("Część na działalność gospodarczą [%]", form.business_share_percent),
                ("Tytuł prawny", PROPERTY_TITLE_LABELS_PL[form.property_title]),
                ("Współwłaściciele", form.co_owners),
            ],
        ),
        (
            "III. Obecne źródło ciepła (do likwidacji)",
            [
                ("Rodzaj", CURRENT_HEATING_LABELS_PL[form.current_heating]),
                ("Wiek [lata]", form.current_heating_age_years),
                ("Moc [kW]", form.current_heating_power_kw),
                ("Roczne zużycie paliwa [t]", form.current_fuel_use_t_per_year),
                ("Dowód posiadania", "załączony do wniosku (zdjęcie lub dokument)"),
            ],
        ),
        (
            "IV. Planowane źródło ciepła",
            [
                ("Rodzaj", OPTION_LABELS_PL[form.heat_source]),
                ("Moc [kW]", form.planned_power_kw),
                ("Planowane roczne zużycie", _consumption(form)),
                ("Planowany termin zakończenia", form.planned_completion),
                ("Szacowany koszt [zł]", form.estimated_cost_pln),
            ],
        ),
        (
            "V. Inwestor",
            [
                ("Rodzaj inwestora", INVESTOR_TYPE_LABELS_PL[form.investor_type]),
                ("Pomoc de minimis z ostatnich 3 lat [zł]", form.de_minimis_aid_pln),
            ],
        ),
        (
            "VI. Oświadczenia",
            [("Zgoda na przetwarzanie danych osobowych", "tak" if form.consent else "nie")],
        ),
    ]
    for title, rows in sections:
        pdf.ln(4)
        pdf.set_font("DejaVu", size=12)
        pdf.cell(0, 8, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT, border="B")
        pdf.set_font("DejaVu", size=10)
        # A table wraps a label longer than its column instead of printing it over the value.
        with pdf.table(
            col_widths=LABEL_AND_VALUE_WIDTHS,
            first_row_as_headings=False,
            borders_layout="NONE",
            line_height=6,
            padding=(0.5, 0),
            text_align="LEFT",
            v_align="TOP",
        ) as table:
            for label, value in rows:
                row = table.row()
                row.cell(label)
                row.cell(_text(value))
    pdf.ln(6)
    pdf.set_font("DejaVu", size=8)
    pdf.multi_cell(
        0,
        4,
        "Kopia wniosku złożonego elektronicznie, dla dokumentacji wnioskodawcy. "
        "Status sprawy można sprawdzić pod tajnym adresem otrzymanym po złożeniu wniosku. "
        "Dane osobowe są przechowywane w postaci zaszyfrowanej i usuwane po upływie okresu przechowywania.",
    )
    return bytes(pdf.output())
