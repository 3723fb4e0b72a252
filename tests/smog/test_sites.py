"""Address sites kept in memory: the same answer as the database while fresh, the database's again after the
time to live, unknown addresses never kept, and no more than the cap."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, delete, update
from sqlalchemy.orm import Session

from cloud.smog.sites import AddressSites, site_of_address
from cloud.smog.tables import SmogAddress, create_smog_tables


class FakeTime:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _database(tmp_path: Path, count: int) -> Session:
    engine = create_engine(f"sqlite:///{tmp_path / 'smog.db'}")
    create_smog_tables(engine)
    session = Session(engine)
    with session.begin():
        session.add_all(
            SmogAddress(
                id=index,
                street="Łaska",
                number=str(index),
                postcode="98-220",
                search_key=f"laska {index}",
                lat=51.6,
                lon=18.94,
                distance_gas_m=10.0 * index,
                distance_heat_m=None,
            )
            for index in range(1, count + 1)
        )
    return session


def test_sites_are_kept_for_their_time_then_read_again(tmp_path: Path) -> None:
    time = FakeTime()
    sites = AddressSites(ttl_s=60.0, now_s=time)
    with _database(tmp_path, 3) as session:
        assert sites.get(session, 2) == site_of_address(session, 2)
        session.execute(update(SmogAddress).where(SmogAddress.id == 2).values(distance_gas_m=5.0))
        session.commit()
        time.now_s = 59.0
        kept = sites.get(session, 2)
        assert kept is not None and kept.distance_gas_m == 20.0, "within its time: the kept site"
        time.now_s = 61.0
        fresh = sites.get(session, 2)
        assert fresh is not None and fresh.distance_gas_m == 5.0, "after its time: read again"


def test_unknown_addresses_are_not_kept_and_the_oldest_go_first(tmp_path: Path) -> None:
    sites = AddressSites(max_sites=2, now_s=FakeTime())
    with _database(tmp_path, 3) as session:
        assert sites.get(session, 99) is None
        session.add(
            SmogAddress(
                id=99,
                street="Łaska",
                number="99",
                postcode="98-220",
                search_key="laska 99",
                lat=51.6,
                lon=18.94,
                distance_gas_m=None,
                distance_heat_m=None,
            )
        )
        session.commit()
        assert sites.get(session, 99) is not None, "imported since: found at once"
        for address_id in (1, 2, 3):
            assert sites.get(session, address_id) is not None
        session.execute(delete(SmogAddress).where(SmogAddress.id.in_([99, 1])))
        session.commit()
        assert sites.get(session, 99) is None and sites.get(session, 1) is None, "99 and 1 were pushed out"
        assert sites.get(session, 3) is not None, "3 is among the two newest"
