"""Health conditions become events within two polls, with a severity and a Polish message, and clear on
recovery; polls that say nothing about a condition leave it as it is."""

from __future__ import annotations

import pytest

from common.clock import parse_iso_ms
from common.sites import Device, Location, TcpTransport
from common.wire import DeviceKind, HealthEvent, Severity
from edge.health import HealthMonitor
from edge.modbus.link import DeviceUnreachable
from edge.modbus.profiles import Function, Profile, load_profile
from edge.outbox import Dropped, NewEvent, StorageFailure
from edge.poller import PollResult, Refusal
from tests.conftest import PROFILES_DIR

CARD_FAILED = StorageFailure("SQLITE_IOERR_WRITE", "disk I/O error", file_damaged=False)
INVERTER = Device(
    id="inverter",
    kind=DeviceKind.PV_INVERTER,
    profile="sunspec-inverter",
    transport=TcpTransport(host="127.0.0.1"),
)
METER = Device(
    id="meter", kind=DeviceKind.GRID_METER, profile="eastron-sdm630", transport=TcpTransport(host="h")
)


@pytest.fixture
def inverter_profile() -> Profile:
    return load_profile(PROFILES_DIR, "sunspec-inverter")


def good(power_w: float = 1000.0, energy_wh: float = 5000.0, **values: float | None) -> PollResult:
    return PollResult(values={"power_w": power_w, "energy_wh": energy_wh, "operating_state": 4.0, **values})


def codes(events: list[NewEvent]) -> list[tuple[str, bool]]:
    return [(event.code, event.active) for event in events]


def run(
    monitor: HealthMonitor, profile: Profile, *outcomes: PollResult | DeviceUnreachable
) -> list[list[NewEvent]]:
    return [monitor.device_polled(INVERTER, profile, 1000 * i, outcome) for i, outcome in enumerate(outcomes)]


def test_a_device_that_stops_answering_is_raised_at_the_second_poll_and_cleared(
    inverter_profile: Profile,
) -> None:
    lost = DeviceUnreachable("127.0.0.1:502: timeout")
    polls = run(HealthMonitor(), inverter_profile, good(), lost, lost, lost, good(), good())
    assert [codes(p) for p in polls] == [
        [],
        [],
        [("device_unreachable", True)],
        [],
        [],
        [("device_unreachable", False)],
    ]
    raised = polls[2][0]
    assert raised.severity is Severity.CRITICAL
    assert "nie odpowiada" in raised.message_pl and "„inverter”" in raised.message_pl
    assert "znów odpowiada" in polls[5][0].message_pl


@pytest.mark.parametrize("night_power_w", [0.0, -3.0, None])
def test_an_inverter_that_went_quiet_after_producing_nothing_is_asleep(
    inverter_profile: Profile, night_power_w: float | None
) -> None:
    lost = DeviceUnreachable("timeout")
    polls = run(HealthMonitor(), inverter_profile, good(power_w=night_power_w), lost, lost)  # type: ignore[arg-type]
    assert polls[2][0].severity is Severity.INFO
    assert "uśpiony na noc" in polls[2][0].message_pl


@pytest.mark.parametrize(
    ("moment", "severity", "why"),
    [
        (
            "2026-12-21T06:15:00Z",
            Severity.INFO,
            "Jest noc",
        ),  # before sunrise in Zduńska Wola (about 06:40 UTC)
        ("2026-12-21T07:30:00Z", Severity.INFO, "Słońce stoi nisko"),  # the sun 4° up
        ("2026-12-21T11:00:00Z", Severity.WARNING, "słońce jest już wysoko"),  # 15° up
        ("2026-12-21T15:15:00Z", Severity.INFO, "Jest noc"),
        ("2026-06-21T01:30:00Z", Severity.INFO, "Jest noc"),
        ("2026-06-21T03:30:00Z", Severity.INFO, "Słońce stoi nisko"),  # 7° up
        ("2026-06-21T05:00:00Z", Severity.WARNING, "słońce jest już wysoko"),
    ],
)
def test_an_agent_started_after_dark_takes_a_silent_inverter_for_asleep_and_a_silent_meter_for_broken(
    inverter_profile: Profile, moment: str, severity: Severity, why: str
) -> None:
    """No reading yet (the agent has just started): only the sun at the school tells night from day; with the
    sun high, a silent inverter is a warning (snow, or no power), a silent meter critical at any hour."""
    lost = DeviceUnreachable("timeout")
    monitor = HealthMonitor(Location(lat=51.5928, lon=18.9452))
    at_ms = parse_iso_ms(moment)
    inverter = [monitor.device_polled(INVERTER, inverter_profile, at_ms + i, lost) for i in range(2)][1]
    meter_profile = load_profile(PROFILES_DIR, "eastron-sdm630")
    meter = [monitor.device_polled(METER, meter_profile, at_ms + i, lost) for i in range(2)][1]
    assert inverter[0].severity is severity and why in inverter[0].message_pl
    assert meter[0].severity is Severity.CRITICAL, "a meter answers at any hour"


def test_an_inverter_that_stops_answering_while_producing_is_critical_by_day(
    inverter_profile: Profile,
) -> None:
    lost = DeviceUnreachable("timeout")
    monitor = HealthMonitor(Location(lat=51.5928, lon=18.9452))
    noon_ms = parse_iso_ms("2026-12-21T11:00:00Z")
    polls = [
        monitor.device_polled(INVERTER, inverter_profile, noon_ms + i, outcome)
        for i, outcome in enumerate([good(power_w=800.0), lost, lost])
    ]
    assert [(e.code, e.severity) for e in polls[2]] == [("device_unreachable", Severity.CRITICAL)]


def test_an_inverter_asleep_since_the_evening_and_silent_in_daylight_is_raised_again_as_a_warning(
    inverter_profile: Profile,
) -> None:
    """Asleep at dusk is a note; still silent with the sun 10° up the next morning is a warning for the
    caretaker (not critical: snow on the panels does the same), raised once, and cleared by answers."""
    lost = DeviceUnreachable("timeout")
    monitor = HealthMonitor(Location(lat=51.5928, lon=18.9452))
    moments = [
        ("2026-12-21T14:20:00Z", good(power_w=0.0)),  # the sun setting (about 14:25 UTC)
        ("2026-12-21T14:30:00Z", lost),
        ("2026-12-21T14:31:00Z", lost),
        ("2026-12-22T08:00:00Z", lost),  # the sun 7° up: waking late is no fault yet
        ("2026-12-22T09:00:00Z", lost),  # 11.7° up
        ("2026-12-22T09:01:00Z", lost),
        ("2026-12-22T09:30:00Z", good()),
        ("2026-12-22T09:31:00Z", good()),
    ]
    polls = [
        monitor.device_polled(INVERTER, inverter_profile, parse_iso_ms(moment), outcome)
        for moment, outcome in moments
    ]
    assert [[(e.code, e.active, e.severity) for e in poll] for poll in polls] == [
        [],
        [],
        [("device_unreachable", True, Severity.INFO)],
        [],
        [("device_unreachable", True, Severity.WARNING)],
        [],
        [],
        [("device_unreachable", False, Severity.WARNING)],
    ]
    warning = polls[4][0]
    assert "słońce jest już wysoko" in warning.message_pl and "śniegiem" in warning.message_pl
    assert warning.details["sun_elevation_deg"] == pytest.approx(11.7, abs=0.1)


def test_without_the_schools_location_an_inverter_asleep_stays_a_note(inverter_profile: Profile) -> None:
    lost = DeviceUnreachable("timeout")
    polls = run(HealthMonitor(), inverter_profile, good(power_w=0.0), *[lost] * 10)
    raised = [event for poll in polls for event in poll]
    assert [(e.active, e.severity) for e in raised] == [(True, Severity.INFO)]


def test_an_alarm_from_the_profile_is_raised_at_once_with_its_message(inverter_profile: Profile) -> None:
    faulted = good(operating_state=7.0, event_flags=1.0)
    polls = run(
        HealthMonitor(), inverter_profile, good(event_flags=0.0), faulted, faulted, good(event_flags=0.0)
    )
    assert sorted(codes(polls[1])) == [("inverter_fault", True), ("inverter_ground_fault", True)]
    assert polls[2] == [] and polls[3] == []
    cleared = run(HealthMonitor(), inverter_profile, faulted, good(event_flags=0.0), good(event_flags=0.0))
    assert sorted(codes(cleared[2])) == [("inverter_fault", False), ("inverter_ground_fault", False)]
    fault = next(e for e in polls[1] if e.code == "inverter_fault")
    assert fault.severity is Severity.CRITICAL and "awarię" in fault.message_pl
    assert next(e for e in cleared[2] if e.code == "inverter_fault").message_pl.startswith("Ustąpiło: ")


def test_a_counter_that_goes_backwards(inverter_profile: Profile) -> None:
    polls = run(
        HealthMonitor(),
        inverter_profile,
        good(energy_wh=9000),
        good(energy_wh=12),
        good(energy_wh=20),
        good(),
    )
    assert codes(polls[1]) == [("counter_backwards", True)]
    assert polls[1][0].details == {"quantity": "energy_wh", "previous": 9000, "current": 12}
    assert "cofnął się z 9000 Wh do 12 Wh" in polls[1][0].message_pl
    assert codes(polls[3]) == [("counter_backwards", False)]


def test_refusals_slowness_garbage_mismatch_and_replacement(inverter_profile: Profile) -> None:
    refused = PollResult(values={}, refusals=[Refusal(Function.HOLDING, 40070, 42, 6)])
    slow = PollResult(values={}, slowest_s=0.9)
    garbage = PollResult(values={"power_w": None}, implausible=["power_w"])
    moved = PollResult(values=None, mismatch="register 40070 holds 7, not 103 (m103_id)")
    replaced = PollResult(values={}, replaced=("lokalnie SIM-1", "Acme SIM-2"))
    for bad, code, polls_to_raise in (
        (refused, "device_refuses", 2),
        (slow, "device_slow", 2),
        (garbage, "implausible_values", 1),
        (moved, "device_mismatch", 2),
        (replaced, "device_replaced", 1),
    ):
        outcomes = [bad] * polls_to_raise + [good(), good()]
        polls = run(HealthMonitor(), inverter_profile, *outcomes)
        assert (code, True) in codes(polls[polls_to_raise - 1]), code
        assert (code, False) in codes(polls[-1]), code
    message = run(HealthMonitor(), inverter_profile, refused, refused)[1][0].message_pl
    assert "wyjątek Modbus 6: urządzenie zajęte" in message


def test_the_clock_and_the_outbox() -> None:
    monitor = HealthMonitor()
    jumped = monitor.clock_checked(1000, 3_600_000)
    assert codes(jumped) == [("clock_jump", True)] and "+3600 s" in jumped[0].message_pl
    assert monitor.clock_checked(2000, None) == []
    assert codes(monitor.clock_checked(3000, None)) == [("clock_jump", False)]
    dropped = monitor.outbox_checked(1000, Dropped(samples=500, samples_total=500), 0.95)
    assert codes(dropped) == [("outbox_dropped", True)] and dropped[0].severity is Severity.CRITICAL
    assert monitor.outbox_checked(2000, Dropped(samples_total=500), 0.95) == [], "still nearly full"
    assert monitor.outbox_checked(3000, Dropped(samples_total=500), 0.2) == []
    assert codes(monitor.outbox_checked(4000, Dropped(samples_total=500), 0.1)) == [("outbox_dropped", False)]


def test_a_card_short_of_room_for_the_outbox_is_a_warning_that_clears_with_a_margin() -> None:
    monitor = HealthMonitor()
    max_bytes = 512_000_000
    assert monitor.storage_checked(0, 2_000_000_000, max_bytes) == []
    short = monitor.storage_checked(1, 300_000_000, max_bytes)
    assert codes(short) == [("storage_low", True)] and short[0].severity is Severity.WARNING
    assert "300 MB zamiast 512 MB" in short[0].message_pl and "karcie pamięci" in short[0].message_pl
    # Just above the bound again (logs rotated, then grew): still raised, not raised and cleared by turns.
    assert [monitor.storage_checked(t, 530_000_000, max_bytes) for t in (2, 3, 4)] == [[], [], []]
    assert monitor.storage_checked(5, 600_000_000, max_bytes) == []
    assert codes(monitor.storage_checked(6, 600_000_000, max_bytes)) == [("storage_low", False)]


def test_an_outbox_full_for_want_of_room_on_the_card_says_so() -> None:
    dropped = HealthMonitor().outbox_checked(
        0, Dropped(samples=20, samples_total=20), 0.95, disk_limited=True
    )
    assert codes(dropped) == [("outbox_dropped", True)]
    assert "brakuje miejsca" in dropped[0].message_pl and "internet" not in dropped[0].message_pl


def test_a_card_that_fails_is_critical_at_once_and_clears_after_a_restart_once_the_clock_is_trusted() -> None:
    failing = HealthMonitor()
    assert failing.storage_written(0, None) == []
    raised = failing.storage_written(1, CARD_FAILED)
    assert codes(raised) == [("storage_failed", True)] and raised[0].severity is Severity.CRITICAL
    assert "wymienić" in raised[0].message_pl and raised[0].details == {
        "error": "SQLITE_IOERR_WRITE: disk I/O error"
    }
    assert failing.storage_written(2, CARD_FAILED) == [], "raised once"

    # The next run, after the card was repaired, does not know what the last one raised from memory.
    restarted = HealthMonitor()
    restarted.after_unclean_stop()
    assert [restarted.storage_written(t, None, clock_trusted=False) for t in (3, 4, 5)] == [[], [], []], (
        "a clear dated by a clock not yet set could be older than the raise, and change nothing"
    )
    assert restarted.storage_written(6, None) == []
    cleared = restarted.storage_written(7, None)
    assert codes(cleared) == [("storage_failed", False)] and cleared[0].ts_ms == 7


def test_a_damaged_outbox_file_tells_the_caretaker_to_restart_and_its_setting_aside_is_a_notice() -> None:
    damaged = StorageFailure("SQLITE_CORRUPT", "database disk image is malformed", file_damaged=True)
    (raised,) = HealthMonitor().storage_written(0, damaged)
    assert raised.severity is Severity.CRITICAL and "Wyłącz i włącz komputer" in raised.message_pl
    notice = HealthMonitor().outbox_set_aside(0, "outbox.db.damaged-20261208T010000Z")
    assert (notice.code, notice.active, notice.severity) == ("outbox_damaged", False, Severity.WARNING)
    assert "outbox.db.damaged-20261208T010000Z" in notice.message_pl


def test_a_restarted_agent_clears_what_an_earlier_run_raised_once_it_is_over(
    inverter_profile: Profile,
) -> None:
    earlier = HealthMonitor()
    lost = DeviceUnreachable("timeout")
    raised = [e for poll in run(earlier, inverter_profile, good(), lost, lost) for e in poll]
    raised += earlier.clock_checked(2000, 60_000)
    gone = NewEvent("old_meter", "device_unreachable", Severity.CRITICAL, True, 0, "Licznik nie odpowiada.")
    assert codes(raised) == [("device_unreachable", True), ("clock_jump", True)]

    restarted = HealthMonitor()
    cleared_now = restarted.restore([*raised, gone], {"inverter", "meter"}, 5000)
    # A device taken out of the site gives no more evidence: its condition is closed at once.
    assert [(e.device, e.code, e.active, e.ts_ms) for e in cleared_now] == [
        ("old_meter", "device_unreachable", False, 5000)
    ]
    assert "nie ma już w konfiguracji" in cleared_now[0].message_pl
    # Still unreachable: nothing new; back: cleared after two good polls, with the severity it was raised.
    polls = run(restarted, inverter_profile, lost, good(), good())
    assert [codes(p) for p in polls] == [[], [], [("device_unreachable", False)]]
    assert polls[2][0].severity is Severity.CRITICAL
    assert restarted.clock_checked(6000, None) == []
    assert codes(restarted.clock_checked(7000, None)) == [("clock_jump", False)]


def test_the_client_certificate_is_reported_a_month_before_it_expires_and_cleared_when_renewed() -> None:
    day_ms = 86_400_000
    now_ms = 1_798_761_600_000  # 1 January 2027, 00:00 UTC
    monitor = HealthMonitor()
    assert monitor.certificate_checked(now_ms, now_ms + 31 * day_ms) == []
    soon = monitor.certificate_checked(now_ms, now_ms + 29 * day_ms)
    assert codes(soon) == [("client_certificate_expiring", True)]
    assert soon[0].severity is Severity.WARNING and soon[0].device is None
    assert "wygasa 30.01.2027 r." in soon[0].message_pl and "dział IT" in soon[0].message_pl
    assert soon[0].details == {"not_after_ms": now_ms + 29 * day_ms, "days_left": 29.0}
    assert monitor.certificate_checked(now_ms + 30 * day_ms, now_ms + 29 * day_ms) == [], "raised once"
    # A renewed certificate (the agent restarted with it): cleared at the first look.
    renewed = now_ms + 3 * 365 * day_ms
    cleared = monitor.certificate_checked(now_ms + 31 * day_ms, renewed)
    assert codes(cleared) == [("client_certificate_expiring", False)]
    assert "ważny do 31.12.2029 r." in cleared[0].message_pl
    expired = HealthMonitor().certificate_checked(now_ms, now_ms - day_ms)
    assert "wygasł 31.12.2026 r." in expired[0].message_pl and expired[0].details["days_left"] == -1.0


def test_every_event_fits_the_wire_contract(inverter_profile: Profile) -> None:
    monitor = HealthMonitor()
    lost = DeviceUnreachable("timeout")
    events = [e for poll in run(monitor, inverter_profile, good(), lost, lost) for e in poll]
    events += monitor.device_polled(METER, load_profile(PROFILES_DIR, "eastron-sdm630"), 0, good())
    events += monitor.clock_checked(0, -45_000) + monitor.outbox_checked(0, Dropped(3, 0, 5, 3), 1.0)
    events += [*monitor.certificate_checked(0, 86_400_000), monitor.outbox_created(0)]
    events += [*monitor.storage_written(0, CARD_FAILED), monitor.outbox_set_aside(0, "outbox.db.damaged-x")]
    assert events
    for seq, event in enumerate(events, start=1):
        HealthEvent(
            school="sp5",
            stream="0123456789abcdef",
            seq=seq,
            device=event.device,
            code=event.code,
            severity=event.severity,
            active=event.active,
            ts_ms=event.ts_ms,
            message_pl=event.message_pl,
            details=event.details,
        )
