"""The health of a school's devices and of its agent, turned into events for the caretaker and the city.

Every poll gives evidence about a few conditions of each device (it does not answer, refuses requests, answers
slowly, sends garbage, no longer matches its profile, was replaced, reports an alarm, a counter went
backwards); the agent adds its own (the clock jumped, the outbox had to drop readings). A condition is raised
after ``raise_after`` polls of bad evidence in a row (a device that stops answering: two, so that one lost
packet is not an alarm, and the event still comes within two poll periods) and cleared after `CLEAR_AFTER`
polls of good evidence. A poll that says nothing about a condition (a device that does not answer says
nothing about its alarms) leaves it as it is.

Each raised or cleared condition becomes a `NewEvent` with a severity and a message in Polish that a school
caretaker can act on; the agent stores it in the outbox, and the publisher sends it on the school's events
topic. Messages of alarms a device reports come from its profile (data); the messages of the conditions every
device shares are here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from common.sites import Device, Location
from common.sun import NIGHT_BELOW_DEG, sun_elevation_deg
from common.wire import COUNTERS, OUTBOX_CREATED, DeviceKind, Severity
from edge.modbus.link import DeviceUnreachable
from edge.modbus.profiles import Profile
from edge.outbox import DAY_MS, Dropped, NewEvent, StorageFailure
from edge.poller import PollResult

# Good polls in a row that clear a condition.
CLEAR_AFTER = 2
# An answer slower than this fraction of the device's timeout is slow.
SLOW_FRACTION = 0.5
# The outbox counts as full (its condition stays raised) above this fraction of its byte bound.
FULL_FRACTION = 0.9
# A card short of room for the outbox's bound is fine again with this much more room than the bound.
STORAGE_CLEAR_MARGIN = 1.1
# How long before the school's client certificate expires the city is told: as for the broker's certificate
# (deploy/monitoring/alerts.yaml), a month leaves time to issue a new one and install it at the school.
CERTIFICATE_WARNING_DAYS = 30
# A clock not synchronised this long after the agent started (or lost it) is more than a slow NTP [ms].
CLOCK_UNSYNCHRONIZED_AFTER_MS = 10 * 60_000
# With the sun this high the panels wake any inverter, even under an overcast sky (a late December noon puts
# it about 15° above Zduńska Wola): one still silent is without power, or its panels are under snow [deg].
DAYLIGHT_ABOVE_DEG = 10.0
# Severities from the least urgent: a raised condition found worse than when raised is raised again.
URGENCY = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)
# The outbox's card no longer takes writes, and the outbox went on in memory (`edge.outbox`).
STORAGE_FAILED = "storage_failed"

NOTHING_PRODUCED_PL = "Przy ostatnim odczycie nie produkował prądu"
CARD_FAILED_PL = (
    "Karta pamięci komputera szkoły przestała przyjmować zapis (najpewniej jest zużyta). Odczyty nadal idą "
    "do chmury na bieżąco, ale bez zapasu na karcie: przepadną przy wyłączeniu komputera albo przy "
    "przerwie w internecie dłuższej niż kilka dni. Zgłoś to pilnie w urzędzie (dział IT): kartę trzeba "
    "wymienić."
)
FILE_DAMAGED_PL = (
    "Plik bufora odczytów na karcie pamięci komputera szkoły jest uszkodzony (najczęściej po zaniku "
    "zasilania). Odczyty nadal idą do chmury na bieżąco, ale bez zapasu na karcie. Wyłącz i włącz komputer "
    "szkoły: agent odłoży uszkodzony plik i zacznie nowy. Jeśli to się powtarza, zgłoś to w urzędzie (dział "
    "IT): karta może być zużyta."
)
KIND_PL = {DeviceKind.PV_INVERTER: "falownik", DeviceKind.GRID_METER: "licznik energii"}
COUNTER_PL = {"energy_wh": "produkcji", "import_wh": "poboru z sieci", "export_wh": "oddawania do sieci"}
# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7) in the caretaker's words.
EXCEPTION_PL = {
    1: "niedozwolona funkcja",
    2: "niedozwolony adres rejestru",
    3: "niedozwolona wartość",
    4: "awaria urządzenia",
    5: "zapytanie przyjęte, trwa przetwarzanie",
    6: "urządzenie zajęte",
    10: "bramka nie zna drogi do urządzenia",
    11: "urządzenie za bramką nie odpowiada",
}

Details = dict[str, float | str | None]


@dataclass(frozen=True)
class Problem:
    """A raised condition's severity, message and details."""

    severity: Severity
    message_pl: str
    details: Details


@dataclass
class _Condition:
    bad: int = 0
    good: int = 0
    active: bool = False
    raised: Problem | None = None


class Conditions:
    """Conditions identified by (device, code), raised and cleared with hysteresis."""

    def __init__(self) -> None:
        self._conditions: dict[tuple[str | None, str], _Condition] = {}

    def active(self) -> list[tuple[str | None, str]]:
        return [key for key, condition in self._conditions.items() if condition.active]

    def restore(self, raised: NewEvent) -> None:
        """Hold a condition raised before (by an earlier run), as if this run had raised it."""
        self._conditions[(raised.device, raised.code)] = _Condition(
            active=True, raised=Problem(raised.severity, raised.message_pl, raised.details)
        )

    def observe(
        self,
        device: str | None,
        code: str,
        ts_ms: int,
        problem: Problem | None,
        *,
        raise_after: int = 1,
        clear_after: int = CLEAR_AFTER,
        cleared_pl: Callable[[], str],
        evidence: bool = True,
    ) -> NewEvent | None:
        """Take one poll's evidence: ``problem`` when the condition holds, None when it does not.

        ``evidence`` False means the poll said nothing about this condition.
        """
        if not evidence:
            return None
        condition = self._conditions.setdefault((device, code), _Condition())
        if problem is not None:
            condition.bad += 1
            condition.good = 0
            if condition.active and not _worse(problem, condition.raised):
                return None
            if condition.active or condition.bad >= raise_after:
                condition.active, condition.raised = True, problem
                return NewEvent(
                    device, code, problem.severity, True, ts_ms, problem.message_pl, problem.details
                )
            return None
        condition.good += 1
        condition.bad = 0
        if condition.active and condition.good >= clear_after:
            condition.active = False
            severity = condition.raised.severity if condition.raised else Severity.INFO
            return NewEvent(device, code, severity, False, ts_ms, cleared_pl(), {})
        return None


def _silent(device: Device, error: str) -> Problem:
    return Problem(
        Severity.CRITICAL,
        f"Urządzenie {_name(device)} nie odpowiada na zapytania. Sprawdź, czy jest włączone "
        "i czy przewód sieciowy lub RS-485 jest podłączony.",
        {"error": error},
    )


def _asleep(device: Device, why: str, error: str) -> Problem:
    return Problem(
        Severity.INFO,
        f"Falownik „{device.id}” nie odpowiada. {why}, więc najpewniej jest uśpiony na noc. "
        "Jeśli nie odezwie się za dnia, sprawdź jego zasilanie.",
        {"error": error},
    )


def _storage_failed(failure: StorageFailure) -> Problem:
    message = FILE_DAMAGED_PL if failure.file_damaged else CARD_FAILED_PL
    return Problem(Severity.CRITICAL, message, {"error": str(failure)})


def _worse(problem: Problem, raised: Problem | None) -> bool:
    return raised is not None and URGENCY.index(problem.severity) > URGENCY.index(raised.severity)


def _name(device: Device) -> str:
    return f"„{device.id}” ({KIND_PL[device.kind]})"


class HealthMonitor:
    """Turns what the agent sees into health events."""

    def __init__(self, location: Location | None = None) -> None:
        # Where the school is, to tell night from day; None: by the last reading only.
        self.location = location
        self.conditions = Conditions()
        self._counters: dict[tuple[str, str], float] = {}
        self._last_power: dict[str, float | None] = {}

    def outbox_created(self, ts_ms: int) -> NewEvent:
        """The first event of a new outbox file, which tells the cloud to clear what was raised before it
        (`common.wire.OUTBOX_CREATED`)."""
        return NewEvent(
            None,
            OUTBOX_CREATED,
            Severity.INFO,
            False,
            ts_ms,
            "Agent szkoły zaczął pracę z nowym buforem odczytów (pierwsze uruchomienie albo nowa karta "
            "pamięci). Wcześniejsze zgłoszenia zamknięto; to, co nadal trwa, agent zgłosi ponownie.",
        )

    def restore(self, raised: Sequence[NewEvent], devices: Collection[str], ts_ms: int) -> list[NewEvent]:
        """Take back the conditions an earlier run raised and did not clear (the outbox keeps them), so that
        they clear when the evidence says they are over; return the events that clear, now, those of devices
        no longer in the site."""
        gone = []
        for event in raised:
            if event.device is None or event.device in devices:
                self.conditions.restore(event)
            else:
                message = (
                    f"Urządzenia „{event.device}” nie ma już w konfiguracji szkoły; zgłoszenie zamknięto."
                )
                gone.append(NewEvent(event.device, event.code, event.severity, False, ts_ms, message, {}))
        return gone

    def device_polled(
        self, device: Device, profile: Profile, ts_ms: int, outcome: PollResult | DeviceUnreachable
    ) -> list[NewEvent]:
        """The events one poll of one device raises or clears."""
        events = [self._reachability(device, ts_ms, outcome)]
        if isinstance(outcome, PollResult):
            events += self._answers(device, profile, ts_ms, outcome)
            if outcome.values is not None:
                events += self._values(device, profile, ts_ms, outcome.values, bool(outcome.implausible))
                self._last_power[device.id] = outcome.values.get("power_w")
        return [event for event in events if event is not None]

    def _unreachable(self, device: Device, ts_ms: int, error: str) -> Problem:
        """How bad a device's silence is. An inverter that stopped answering after producing nothing, or at
        night, has most likely gone to sleep (many switch their communication off with the panels); so has
        one not heard since the agent started while the sun is low. One that sleeps on with the sun high is a
        warning (raised again if it was a note), not critical: snow on the panels does the same."""
        if device.kind is not DeviceKind.PV_INVERTER:
            return _silent(device, error)
        heard = device.id in self._last_power
        last_power = self._last_power.get(device.id)
        produced_nothing = heard and (last_power is None or last_power <= 0)
        if self.location is None:  # only the last reading tells
            return _asleep(device, NOTHING_PRODUCED_PL, error) if produced_nothing else _silent(device, error)
        sun_deg = sun_elevation_deg(ts_ms / 1000, self.location.lat, self.location.lon)
        if sun_deg < NIGHT_BELOW_DEG:
            return _asleep(device, "Jest noc", error)
        if heard and not produced_nothing:
            return _silent(device, error)
        if sun_deg < DAYLIGHT_ABOVE_DEG:
            return _asleep(device, NOTHING_PRODUCED_PL if heard else "Słońce stoi nisko", error)
        return Problem(
            Severity.WARNING,
            f"Falownik „{device.id}” nie odpowiada, choć słońce jest już wysoko. Jeśli panele nie są "
            "przykryte śniegiem, sprawdź zasilanie falownika i jego połączenie z siecią.",
            {"error": error, "sun_elevation_deg": round(sun_deg, 1)},
        )

    def _reachability(
        self, device: Device, ts_ms: int, outcome: PollResult | DeviceUnreachable
    ) -> NewEvent | None:
        unreachable = isinstance(outcome, DeviceUnreachable)
        problem = self._unreachable(device, ts_ms, str(outcome)) if unreachable else None
        return self.conditions.observe(
            device.id,
            "device_unreachable",
            ts_ms,
            problem,
            raise_after=2,
            cleared_pl=lambda: f"Urządzenie {_name(device)} znów odpowiada.",
        )

    def _answers(
        self, device: Device, profile: Profile, ts_ms: int, result: PollResult
    ) -> list[NewEvent | None]:
        name = _name(device)
        refused = result.refusals[0] if result.refusals else None
        slow = result.slowest_s > SLOW_FRACTION * result.timeout_s
        observe = self.conditions.observe
        return [
            observe(
                device.id,
                "device_refuses",
                ts_ms,
                Problem(
                    Severity.WARNING,
                    f"Urządzenie {name} odrzuca odczyt rejestrów {refused.address}–"
                    f"{refused.address + refused.count - 1} (wyjątek Modbus {refused.exception_code}: "
                    f"{EXCEPTION_PL.get(refused.exception_code, 'nieznany kod')}). Sprawdź, czy profil "
                    f"„{profile.name}” pasuje do urządzenia i czy jego adres Modbus to {device.unit}.",
                    {
                        "address": refused.address,
                        "count": refused.count,
                        "exception_code": refused.exception_code,
                    },
                )
                if refused
                else None,
                raise_after=2,
                cleared_pl=lambda: f"Urządzenie {name} znów przyjmuje odczyty.",
            ),
            observe(
                device.id,
                "device_slow",
                ts_ms,
                Problem(
                    Severity.WARNING,
                    f"Urządzenie {name} odpowiada bardzo wolno ({result.slowest_s:.1f} s przy limicie "
                    f"{result.timeout_s:.1f} s). Odczyty mogą zacząć przepadać: sprawdź sieć lub przewód "
                    "RS-485.",
                    {"seconds": round(result.slowest_s, 3), "timeout_s": result.timeout_s},
                )
                if slow
                else None,
                raise_after=2,
                cleared_pl=lambda: f"Urządzenie {name} znów odpowiada szybko.",
            ),
            observe(
                device.id,
                "device_mismatch",
                ts_ms,
                Problem(
                    Severity.CRITICAL,
                    f"Urządzenie {name} odpowiada, ale nie pasuje do profilu „{profile.name}” "
                    f"({result.mismatch}). Czy zostało wymienione na inny model? Odczyty są wstrzymane.",
                    {"reason": result.mismatch},
                )
                if result.mismatch
                else None,
                raise_after=2,
                cleared_pl=lambda: (
                    f"Urządzenie {name} znów pasuje do swojego profilu; odczyty idą normalnie."
                ),
            ),
            observe(
                device.id,
                "implausible_values",
                ts_ms,
                Problem(
                    Severity.WARNING,
                    f"Urządzenie {name} podaje niewiarygodne wartości ({', '.join(result.implausible)}); te "
                    "odczyty pominięto. Możliwe zakłócenia na przewodzie albo zły profil urządzenia.",
                    {"quantities": ", ".join(result.implausible)},
                )
                if result.implausible
                else None,
                cleared_pl=lambda: f"Urządzenie {name} znów podaje wiarygodne wartości.",
                evidence=result.values is not None,
            ),
            observe(
                device.id,
                "device_replaced",
                ts_ms,
                Problem(
                    Severity.WARNING,
                    f"Urządzenie {name} zostało wymienione: było „{result.replaced[0]}”, jest "
                    f"„{result.replaced[1]}”. Jeśli to nie była zapowiedziana wymiana, zgłoś to w urzędzie.",
                    {"before": result.replaced[0], "now": result.replaced[1]},
                )
                if result.replaced
                else None,
                cleared_pl=lambda: f"Wymiana urządzenia {name} przyjęta; odczyty idą normalnie.",
                evidence=result.values is not None,
            ),
        ]

    def _values(
        self, device: Device, profile: Profile, ts_ms: int, values: dict[str, float | None], implausible: bool
    ) -> list[NewEvent | None]:
        # A poll with garbage in some values may have garbage in the counters too: it says nothing about them.
        events = [self._counters_check(device, ts_ms, values)] if not implausible else []
        for alarm in profile.alarms:
            holds = alarm.active(values.get(alarm.field))
            events.append(
                self.conditions.observe(
                    device.id,
                    alarm.code,
                    ts_ms,
                    Problem(alarm.severity, alarm.message_pl, {alarm.field: values.get(alarm.field)})
                    if holds
                    else None,
                    cleared_pl=functools.partial("Ustąpiło: {}".format, alarm.message_pl),
                    evidence=holds is not None,
                )
            )
        return events

    def _counters_check(self, device: Device, ts_ms: int, values: dict[str, float | None]) -> NewEvent | None:
        backwards = None
        seen = False
        for quantity in COUNTERS[device.kind]:
            value = values.get(quantity)
            if value is None:
                continue
            seen = True
            previous = self._counters.get((device.id, quantity))
            self._counters[(device.id, quantity)] = value
            if previous is not None and value < previous and backwards is None:
                backwards = Problem(
                    Severity.WARNING,
                    f"Licznik {COUNTER_PL.get(quantity, quantity)} urządzenia {_name(device)} cofnął się z "
                    f"{previous:.0f} Wh do {value:.0f} Wh: licznik wyzerowano albo urządzenie wymieniono. "
                    "Odczyty są zachowane; chmura uwzględni nowy stan licznika.",
                    {"quantity": quantity, "previous": previous, "current": value},
                )
        return self.conditions.observe(
            device.id,
            "counter_backwards",
            ts_ms,
            backwards,
            cleared_pl=lambda: f"Licznik urządzenia {_name(device)} znów rośnie normalnie.",
            evidence=seen,
        )

    def clock_checked(self, ts_ms: int, jump_ms: int | None) -> list[NewEvent]:
        """The events of one check of the clock against the monotonic time (``jump_ms`` when it jumped)."""
        event = self.conditions.observe(
            None,
            "clock_jump",
            ts_ms,
            Problem(
                Severity.WARNING,
                f"Zegar komputera w szkole przeskoczył o {jump_ms / 1000:+.0f} s. Sprawdź połączenie z "
                "internetem (synchronizację czasu); odczyty z tej chwili mogą mieć złą godzinę.",
                {"jump_s": jump_ms / 1000},
            )
            if jump_ms is not None
            else None,
            cleared_pl=lambda: "Zegar komputera w szkole chodzi znów równo.",
        )
        return [event] if event else []

    def outbox_checked(
        self, ts_ms: int, dropped: Dropped, usage: float, disk_limited: bool = False
    ) -> list[NewEvent]:
        """The events of one enforcement of the outbox's bounds (``disk_limited``: the card has less room
        than the outbox's own bound)."""
        # Raised when something was dropped; kept raised while the outbox stays nearly full.
        still_full = usage >= FULL_FRACTION and (None, "outbox_dropped") in self.conditions.active()
        full = bool(dropped) or still_full
        why, remedy = (
            ("na karcie pamięci brakuje miejsca", "Zgłoś to w urzędzie (dział IT): trzeba zwolnić miejsce.")
            if disk_limited
            else ("od dawna nie ma połączenia z chmurą", "Przywróć połączenie z internetem.")
        )
        event = self.conditions.observe(
            None,
            "outbox_dropped",
            ts_ms,
            Problem(
                Severity.CRITICAL,
                f"Bufor odczytów jest pełny, bo {why}: usunięto {dropped.samples} najstarszych odczytów "
                f"(łącznie {dropped.samples_total}). {remedy}",
                {
                    "dropped": dropped.samples,
                    "dropped_total": dropped.samples_total,
                    "usage": round(usage, 3),
                },
            )
            if full
            else None,
            cleared_pl=lambda: "Bufor odczytów znów ma miejsce; żadne odczyty nie są usuwane.",
        )
        return [event] if event else []

    def storage_checked(self, ts_ms: int, room_bytes: int, max_bytes: int) -> list[NewEvent]:
        """The events of one look at the room the disk leaves the outbox (``room_bytes``) against the
        outbox's own bound (``max_bytes``)."""
        # Raised when the card cannot hold a full outbox; cleared only with a tenth more room than that, so
        # that logs growing and rotating around the limit do not raise and clear it by turns.
        active = (None, "storage_low") in self.conditions.active()
        short = room_bytes < max_bytes * (STORAGE_CLEAR_MARGIN if active else 1.0)
        event = self.conditions.observe(
            None,
            "storage_low",
            ts_ms,
            Problem(
                Severity.WARNING,
                "Na karcie pamięci komputera szkoły kończy się miejsce: bufor odczytów na czas bez "
                f"internetu zmieści {max(room_bytes, 0) / 1e6:.0f} MB zamiast {max_bytes / 1e6:.0f} MB, "
                "a gdy się zapełni, najstarsze odczyty przepadną. Zgłoś to w urzędzie (dział IT): trzeba "
                "zwolnić miejsce albo wymienić kartę na większą.",
                {"room_mb": round(room_bytes / 1e6, 1), "max_mb": round(max_bytes / 1e6, 1)},
            )
            if short
            else None,
            cleared_pl=lambda: "Na karcie pamięci znów jest miejsce na cały bufor odczytów.",
        )
        return [event] if event else []

    def storage_written(
        self, ts_ms: int, failure: StorageFailure | None, clock_trusted: bool = True
    ) -> list[NewEvent]:
        """The events of one look at whether the card takes the outbox's writes (``failure``: why not).

        Not cleared while the clock is not trusted: a Pi restarted on a repaired card starts with the time it
        saved before the card failed, and a clear dated before the raise would change nothing in the cloud.
        """
        event = self.conditions.observe(
            None,
            STORAGE_FAILED,
            ts_ms,
            None if failure is None else _storage_failed(failure),
            # Also sent after a power cut, when nothing may have failed (`after_unclean_stop`): true anyway.
            cleared_pl=lambda: "Zapis na karcie pamięci komputera szkoły działa.",
            evidence=failure is not None or clock_trusted,
        )
        return [event] if event else []

    def outbox_set_aside(self, ts_ms: int, kept_as: str) -> NewEvent:
        """A notice that the outbox file was found damaged at the start and a new one begun."""
        return NewEvent(
            None,
            "outbox_damaged",
            Severity.WARNING,
            False,
            ts_ms,
            "Plik bufora odczytów na karcie był uszkodzony (najczęściej po zaniku zasilania). Agent "
            f"odłożył go jako {kept_as} i zaczął nowy; odczyty, które w nim czekały, dział IT może "
            "spróbować odzyskać.",
            {"kept_as": kept_as},
        )

    def after_unclean_stop(self) -> None:
        """The last run did not record that it stopped: it may have lost its card and raised
        ``storage_failed`` from memory, which this run clears once the card takes its writes."""
        self.conditions.restore(
            NewEvent(None, STORAGE_FAILED, Severity.CRITICAL, True, 0, CARD_FAILED_PL, {})
        )

    def certificate_checked(self, ts_ms: int, not_after_ms: int) -> list[NewEvent]:
        """The events of one look at when the school's client certificate expires (``not_after_ms``)."""
        until = time.strftime("%d.%m.%Y", time.gmtime(not_after_ms / 1000))
        expires = "wygasł" if not_after_ms <= ts_ms else "wygasa"
        event = self.conditions.observe(
            None,
            "client_certificate_expiring",
            ts_ms,
            Problem(
                Severity.WARNING,
                f"Certyfikat, którym komputer szkoły loguje się do serwera miasta, {expires} {until} r. "
                "Zgłoś to w urzędzie (dział IT): bez nowego certyfikatu odczyty nie docierają do miasta "
                "(czekają na tym komputerze).",
                {"not_after_ms": not_after_ms, "days_left": round((not_after_ms - ts_ms) / DAY_MS, 1)},
            )
            if not_after_ms - ts_ms < CERTIFICATE_WARNING_DAYS * DAY_MS
            else None,
            # Read from the file, not measured: one look is certain, nothing flaps.
            clear_after=1,
            cleared_pl=lambda: f"Certyfikat komputera szkoły został wymieniony; jest ważny do {until} r.",
        )
        return [event] if event else []

    def clock_sync_checked(self, ts_ms: int, unsynchronized_for_ms: float | None) -> list[NewEvent]:
        """The events of one look at whether the clock is synchronised (None: it is; else for how long it has
        not been, on the monotonic clock)."""
        minutes = round((unsynchronized_for_ms or 0) / 60_000)
        event = self.conditions.observe(
            None,
            "clock_unsynchronized",
            ts_ms,
            Problem(
                Severity.WARNING,
                f"Zegar komputera w szkole od {minutes} min nie jest zsynchronizowany z internetem (brak "
                "internetu albo zablokowany serwer czasu NTP). Odczyty czekają na tym komputerze i dostaną "
                "właściwą godzinę po synchronizacji; po dobie zostaną wysłane z godziną, którą pokazuje "
                "zegar.",
                {"minutes": minutes},
            )
            if unsynchronized_for_ms is not None and unsynchronized_for_ms >= CLOCK_UNSYNCHRONIZED_AFTER_MS
            else None,
            clear_after=1,
            cleared_pl=lambda: (
                "Zegar komputera w szkole jest zsynchronizowany; wstrzymane odczyty mają właściwą godzinę."
            ),
        )
        return [event] if event else []
