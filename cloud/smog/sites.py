"""Where a house is: its coordinates and the distances to the networks, from an address point in the
database, kept in memory for a while because every estimate by address asks for one."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cloud.smog.addresses import AddressMatch, to_match
from cloud.smog.tables import SmogAddress

# An import (`lokalnie smog import`) shows in estimates by address within this time [s].
SITE_TTL_S = 60.0
# More than the address points of a town of 40,000; the oldest go first.
MAX_SITES = 20_000


@dataclass(frozen=True)
class Site:
    """Where the house is and how far the networks are (``None``: the network is not loaded)."""

    lat: float
    lon: float
    distance_gas_m: float | None
    distance_heat_m: float | None
    address: AddressMatch | None = None


def site_of_address(session: Session, address_id: int) -> Site | None:
    """The site of an address point, or None when there is no such address."""
    address = session.get(SmogAddress, address_id)
    if address is None:
        return None
    return Site(address.lat, address.lon, address.distance_gas_m, address.distance_heat_m, to_match(address))


class AddressSites:
    """`site_of_address` with the answers kept for ``ttl_s`` (unknown addresses are not kept: an import may
    add them at any moment). One per API process."""

    def __init__(
        self,
        ttl_s: float = SITE_TTL_S,
        max_sites: int = MAX_SITES,
        now_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_sites = max_sites
        self._now_s = now_s
        self._sites: OrderedDict[int, tuple[Site, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, address_id: int) -> Site | None:
        now = self._now_s()
        with self._lock:
            kept = self._sites.get(address_id)
            if kept is not None and now - kept[1] < self.ttl_s:
                return kept[0]
        site = site_of_address(session, address_id)
        if site is not None:
            with self._lock:
                self._sites[address_id] = (site, now)
                self._sites.move_to_end(address_id)
                while len(self._sites) > self.max_sites:
                    self._sites.popitem(last=False)
        return site
