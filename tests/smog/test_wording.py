"""How figures are written for residents: Polish separators, no "nan" or "inf" in a message."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from cloud.smog.wording import NBSP, figure_pl, number_pl, out_of_bounds_pl, percent_pl, pln


def test_polish_separators() -> None:
    assert number_pl(12345.6) == f"12{NBSP}346"
    assert number_pl(12345.6, 1) == f"12{NBSP}345,6"
    assert figure_pl(1000) == f"1{NBSP}000"
    assert figure_pl(2.5) == "2,5"
    assert figure_pl(2.05) == "2,05"
    assert pln(31500) == f"31{NBSP}500{NBSP}zł"
    assert percent_pl(0.7) == f"70{NBSP}%"


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_a_figure_reads_back_as_the_number_to_two_decimals(value: float) -> None:
    text = figure_pl(value)
    assert "." not in text and not text.endswith(",")
    assert float(text.replace(NBSP, "").replace(",", ".")) == round(value, 2) + 0.0


def test_out_of_bounds_names_limits_and_value_with_unit() -> None:
    assert out_of_bounds_pl(0, 10, 1000, "m²") == (f"musi być od 10 do 1{NBSP}000{NBSP}m², podano 0{NBSP}m².")
    assert out_of_bounds_pl(300, 1, 30) == "musi być od 1 do 30, podano 300."


@given(st.sampled_from([math.nan, math.inf, -math.inf]))
def test_out_of_bounds_never_shows_a_resident_nan_or_inf(value: float) -> None:
    message = out_of_bounds_pl(value, 1, 30, "lat")
    assert "nan" not in message and "inf" not in message
    assert message.endswith("podano wartość, która nie jest liczbą.")
