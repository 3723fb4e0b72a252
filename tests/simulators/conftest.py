"""Fixtures of the simulator tests: site files of the schools and moments in their year."""

from __future__ import annotations

import pytest

from common.clock import parse_iso_ms
from common.sites import Site, load_site
from tests.conftest import SITES_DIR

# A Monday with lessons in June, 00:00 local time.
LESSON_MONDAY_MS = parse_iso_ms("2026-06-15T00:00:00+02:00")


@pytest.fixture(scope="session")
def sp5() -> Site:
    """Szkoła Podstawowa nr 5: the largest roof (49.5 kWp) and 620 pupils."""
    return load_site(SITES_DIR / "sp5.yaml")


@pytest.fixture(scope="session")
def pm1() -> Site:
    """Przedszkole Miejskie nr 1: a kindergarten."""
    return load_site(SITES_DIR / "pm1.yaml")


@pytest.fixture(scope="session")
def all_sites() -> list[Site]:
    return [load_site(path) for path in sorted(SITES_DIR.glob("*.yaml"))]
