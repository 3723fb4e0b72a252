"""Fixtures of the edge tests: a school whose devices a test chooses, served by the simulators on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.clock import Clock, parse_iso_ms
from common.sites import Device, RtuTransport, Site, TcpTransport, load_site
from common.wire import (
    Channel,
    DeviceKind,
    HealthEvent,
    TelemetryBatch,
    decode_batch,
    decode_event,
    school_topic,
)
from edge.agent import EdgeAgent
from edge.outbox import Outbox
from lokalnie.ports import free_port
from simulators.server import SiteSimulator
from tests.conftest import SITES_DIR

NOON_MS = parse_iso_ms("2026-06-15T12:00:00+02:00")
NIGHT_MS = parse_iso_ms("2026-06-15T23:30:00+02:00")


def device(
    device_id: str,
    profile: str,
    *,
    port: int | None = None,
    unit: int = 1,
    serial: str | None = None,
    baud: int = 9600,
) -> Device:
    """A device on loopback (a free port unless given) or, with ``serial``, on that serial port."""
    kind = DeviceKind.GRID_METER if "sdm" in profile or "meter" in profile else DeviceKind.PV_INVERTER
    transport: TcpTransport | RtuTransport = (
        RtuTransport(device=serial, baud=baud)
        if serial
        else TcpTransport(host="127.0.0.1", port=port or free_port())
    )
    return Device(id=device_id, kind=kind, profile=profile, unit=unit, transport=transport)


def school(devices: Sequence[Device], *, school_id: str = "sp5", poll_period_s: int = 10) -> Site:
    """sp5 with the given devices instead of its own."""
    site = load_site(SITES_DIR / f"{school_id}.yaml")
    return site.model_copy(update={"devices": list(devices), "poll_period_s": poll_period_s})


def write_site(site: Site, directory: Path) -> Path:
    """Write a site file where `load_site` accepts it (the file name is the school id)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{site.id}.yaml"
    path.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True))
    return path


class Collector:
    """A real MQTT subscriber keeping the telemetry batches and health events of a school, in arrival order.

    With ``session`` it keeps a persistent session (MQTT 5, clean start off): a broker with persistence queues
    what arrives while the collector is away, across a broker restart.
    """

    def __init__(self, broker_url: str, school_id: str, *, client_id: str, session: bool = False) -> None:
        from common.broker import parse_broker_url
        from common.mqtt import connect_properties, make_client

        self.batches: list[TelemetryBatch] = []
        # When each batch arrived (monotonic seconds), for tests of pacing.
        self.arrivals: list[float] = []
        self.events: list[HealthEvent] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._topics = [school_topic(school_id, Channel.TELEMETRY), school_topic(school_id, Channel.EVENTS)]
        address = parse_broker_url(broker_url)
        self._client = make_client(address, client_id)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect_async(
            address.host,
            address.port,
            clean_start=not session,
            properties=connect_properties(3600) if session else None,
        )
        self._client.loop_start()
        assert self._subscribed.wait(10), "the collector could not subscribe"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            if message.topic.endswith("/events"):
                self.events.append(decode_event(message.payload))
            else:
                self.batches.append(decode_batch(message.payload))
                self.arrivals.append(time.monotonic())

    def seqs(self, *, backfill: bool | None = None) -> list[int]:
        """Sequence numbers received, in arrival order (with repeats), of live or backfill batches or both."""
        with self._lock:
            return [
                sample.seq
                for batch in self.batches
                if backfill is None or batch.backfill == backfill
                for sample in batch.samples
            ]

    def event_codes(self) -> list[tuple[str | None, str, bool]]:
        with self._lock:
            return [(event.device, event.code, event.active) for event in self.events]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Block (a test thread, not the event loop) until ``condition`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Await (on the event loop) until ``condition`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent) -> AsyncIterator[EdgeAgent]:
    """The agent polling and publishing until the block ends; then stopped (it says offline) and its outbox
    closed."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await task
        agent.outbox.close()


@contextlib.contextmanager
def simulator_thread(site: Site, clock: Clock, **options: Any) -> Iterator[SiteSimulator]:
    """A `SiteSimulator` serving from its own thread and event loop, for tests whose code under test runs
    its own loop (the command line)."""
    ready: queue.Queue[SiteSimulator | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        try:
            simulator = SiteSimulator(site, clock, **options)
            await simulator.start()
        except BaseException as error:  # the test must see why the simulator did not start
            ready.put(error)
            return
        ready.put(simulator)
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await simulator.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    started = ready.get(timeout=20)
    if isinstance(started, BaseException):
        raise started
    try:
        yield started
    finally:
        stop.set()
        thread.join(timeout=10)


class Disk:
    """A disk of ``capacity_bytes`` holding only the outbox's directory: its free space is what the files
    there leave."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes

    def free(self, directory: Path) -> int:
        return self.capacity_bytes - self.used(directory)

    @staticmethod
    def used(directory: Path) -> int:
        return sum(path.stat().st_size for path in directory.iterdir())


def refuse_writes(box: Outbox) -> None:
    """Make the outbox's file refuse every write from now on, as a card the kernel remounted read-only does
    (reads still work)."""
    box._db.close()
    box._db = sqlite3.connect(f"file:{box.path}?mode=ro", uri=True, isolation_level=None)


class FailingCard:
    """A real ext4 filesystem on a loop device, mounted as a Pi's root is (``errors=remount-ro``), whose
    failure a test triggers: the kernel then remounts it read-only, as it does a worn SD card."""

    def __init__(self, image: Path, mount_point: Path) -> None:
        self.image = image
        self.path = mount_point
        self.mounted = False

    def mount(self) -> None:
        self._run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path))
        self.mounted = True

    def trigger(self) -> Path:
        """The kernel's switch that records an error on the mounted filesystem (ext4's sysfs)."""
        source = self._run("findmnt", "-n", "-o", "SOURCE", str(self.path)).strip()
        return Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"

    def fail(self) -> None:
        """Record a filesystem error, as ext4 does on a write the card refuses: the card goes read-only."""
        self.trigger().write_text("test: the card fails\n")
        options = self._run("findmnt", "-n", "-o", "OPTIONS", str(self.path))
        assert "emergency_ro" in options or options.startswith("ro"), (
            f"the card should be read-only: {options}"
        )

    def repair(self) -> None:
        """What a technician does: unmount, check the filesystem, mount it again."""
        self.unmount()
        checked = subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, check=False)
        # 0: clean; 1: errors corrected.
        assert checked.returncode in (0, 1), checked.stdout.decode() + checked.stderr.decode()
        self.mount()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False

    @staticmethod
    def _run(*command: str) -> str:
        return subprocess.run(command, capture_output=True, check=True, text=True).stdout


@pytest.fixture
def failing_card(tmp_path: Path) -> Iterator[FailingCard]:
    """A 32 MB ext4 card (`FailingCard`), where loop devices can be mounted (as root with CAP_SYS_ADMIN)."""
    if shutil.which("mkfs.ext4") is None or shutil.which("e2fsck") is None:
        pytest.skip("e2fsprogs is not installed")
    image = tmp_path / "card.img"
    with image.open("wb") as file:
        file.truncate(32 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
    card = FailingCard(image, tmp_path / "card")
    card.path.mkdir()
    try:
        card.mount()
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot mount a loop device here: {error.stderr.strip()}")
    if not card.trigger().exists():
        card.unmount()
        pytest.skip("this kernel cannot trigger an ext4 error")
    try:
        yield card
    finally:
        card.unmount()
