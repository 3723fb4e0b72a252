"""What an estimate used: each data value (with its key, source and date) and each formula by name, so that
every figure a resident sees can be recomputed by hand."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from cloud.smog.data import BandTable, SmogData, Sourced, SourcedValue

F = TypeVar("F", bound=Callable[..., Any])
# References kept per data set: a band's cost depends on the house, so the (key, value) pairs are bounded
# only by the number of bands, but a cap keeps a long-running API's memory bounded whatever the data.
MAX_KNOWN_REFERENCES = 10_000


class DataReference(BaseModel):
    """One data value an estimate used; ``value`` is the number taken (for a band table, the chosen band's
    cost)."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: float | str | None
    source: str
    as_of: str
    unconfirmed: bool


class Trace:
    """Collects the data keys and formula names of one computation, in the order first used.

    The traces of one estimate share a ledger (`child`): every data value any of them used, once, for the
    answer's ``data_used``.
    """

    def __init__(self, data: SmogData) -> None:
        self.data = data
        self._references: dict[str, DataReference] = {}
        self._formulas: list[str] = []
        self._ledger: dict[str, DataReference] = {}
        # Lookups and references are the same for every estimate of a data set: kept with it.
        self._sourced: dict[str, Sourced] = data.memo("sourced")
        self._known: dict[tuple[str, float | str | None], DataReference] = data.memo("references")

    def child(self) -> Trace:
        """A trace for a part of the computation that starts from what this one used, sharing its ledger."""
        child = copy.copy(self)
        child._references = dict(self._references)
        child._formulas = list(self._formulas)
        return child

    def _item(self, key: str) -> Sourced:
        return self._sourced.get(key) or self.data.sourced(key)

    def value(self, key: str) -> float:
        """The number at ``key``, recorded."""
        item = self._item(key)
        if not isinstance(item, SourcedValue):
            raise KeyError(f"{key} is not a number")
        self._record(key, item.value, item)
        return item.value

    def optional_value(self, key: str) -> float | None:
        """A number that may be unknown (an emission factor given as null), recorded."""
        item = self._item(key)
        number: Any = getattr(item, "value", None)
        if number is not None and not isinstance(number, int | float):
            raise KeyError(f"{key} is not a number")
        self._record(key, None if number is None else float(number), item)
        return None if number is None else float(number)

    def fact(self, key: str) -> Sourced:
        """A sourced value of any kind (a date, a text), recorded."""
        item = self._item(key)
        value = getattr(item, "value", None)
        self._record(key, None if value is None else str(value), item)
        return item

    def bands(self, key: str) -> BandTable:
        """A band table; record the chosen band with :meth:`chose_band`."""
        item = self._item(key)
        if not isinstance(item, BandTable):
            raise KeyError(f"{key} is not a band table")
        return item

    def chose_band(self, key: str, cost_pln: float) -> None:
        self._record(key, cost_pln, self._item(key))

    def formula(self, function: F) -> F:
        """``function`` itself, its name recorded: ``trace.formula(formulas.energy_gj)(x)``."""
        name = function.__name__
        if name not in self._formulas:
            self._formulas.append(name)
        return function

    def _record(self, key: str, value: float | str | None, item: Any) -> None:
        if key in self._references:
            return
        reference = self._known.get((key, value))
        if reference is None:
            reference = DataReference(
                key=key,
                value=value,
                source=item.source,
                as_of=item.as_of.isoformat(),
                unconfirmed=item.unconfirmed,
            )
            if len(self._known) < MAX_KNOWN_REFERENCES:
                self._known[(key, value)] = reference
        self._ledger.setdefault(key, reference)
        self._references[key] = reference

    @property
    def references(self) -> list[DataReference]:
        return list(self._references.values())

    @property
    def ledger(self) -> list[DataReference]:
        """Every data value the traces sharing this one's ledger used, by key."""
        return sorted(self._ledger.values(), key=lambda reference: reference.key)

    @property
    def keys(self) -> list[str]:
        return list(self._references)

    @property
    def formulas(self) -> list[str]:
        return list(self._formulas)

    @property
    def unconfirmed_keys(self) -> list[str]:
        return [reference.key for reference in self._references.values() if reference.unconfirmed]
