"""The Polish personal number PESEL: 11 digits, a date of birth with the century in the month, and a check
digit with weights 1, 3, 7, 9, 1, 3, 7, 9, 1, 3."""

from __future__ import annotations

from datetime import date

PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
# The month's tens encode the century: +80 for the 1800s, +0 for the 1900s, +20, +40, +60 for 2000–2299.
_CENTURY_BY_MONTH_OFFSET = {80: 1800, 0: 1900, 20: 2000, 40: 2100, 60: 2200}


def pesel_check_digit(first_ten: str) -> int:
    """The check digit of a PESEL's first ten digits: (10 − Σ wᵢ dᵢ mod 10) mod 10."""
    total = sum(weight * int(digit) for weight, digit in zip(PESEL_WEIGHTS, first_ten, strict=True))
    return (10 - total % 10) % 10


def pesel_birth_date(pesel: str) -> date | None:
    """The date of birth a PESEL encodes, or None when its digits do not make a calendar date."""
    year, month, day = int(pesel[0:2]), int(pesel[2:4]), int(pesel[4:6])
    offset = (month - 1) // 20 * 20 if month > 0 else -1
    century = _CENTURY_BY_MONTH_OFFSET.get(offset)
    if century is None:
        return None
    try:
        return date(century + year, month - offset, day)
    except ValueError:
        return None


def pesel_problem(pesel: str) -> str | None:
    """Why ``pesel`` is not a valid PESEL, in Polish, or None when it is."""
    if len(pesel) != 11 or not pesel.isascii() or not pesel.isdigit():
        return "musi mieć dokładnie 11 cyfr."
    if pesel_birth_date(pesel) is None:
        return "cyfry daty urodzenia nie tworzą poprawnej daty."
    if pesel_check_digit(pesel[:10]) != int(pesel[10]):
        return "cyfra kontrolna się nie zgadza (sprawdź, czy numer nie ma literówki)."
    return None
