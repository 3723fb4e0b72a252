"""How the calculator writes figures for a resident, in Polish: thousands separated by a space, a decimal
comma, "zł"."""

from __future__ import annotations

import math

NBSP = "\u00a0"


def number_pl(value: float, decimals: int = 0) -> str:
    """``12345.6`` → ``"12 346"``; with ``decimals=1`` → ``"12 345,6"`` (non-breaking spaces)."""
    text = f"{value:,.{decimals}f}".replace(",", NBSP)
    return text.replace(".", ",") if decimals else text


def figure_pl(value: float) -> str:
    """A figure as a person writes it: up to two decimals, none when whole: ``1000`` → ``"1 000"``,
    ``2.5`` → ``"2,5"``."""
    text = number_pl(value, 2)
    return text.rstrip("0").rstrip(",") if "," in text else text


def out_of_bounds_pl(value: float, low: float, high: float, unit: str = "") -> str:
    """Why a figure is refused: ``"musi być od 10 do 1 000 m², podano 0 m²."``."""
    space = NBSP if unit else ""
    limits = f"od {figure_pl(low)} do {figure_pl(high)}{space}{unit}"
    given = f"{figure_pl(value)}{space}{unit}" if math.isfinite(value) else "wartość, która nie jest liczbą"
    return f"musi być {limits}, podano {given}."


def pln(value: float) -> str:
    """An amount in whole złoty: ``"31 500 zł"``."""
    return f"{number_pl(value)}{NBSP}zł"


def percent_pl(fraction: float) -> str:
    """``0.7`` → ``"70 %"``."""
    return f"{number_pl(fraction * 100)}{NBSP}%"
