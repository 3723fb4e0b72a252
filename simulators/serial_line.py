"""A virtual RS-485 line between two serial ports of this machine: two pseudo-terminals joined in-process.

Each end is a real tty device (``/dev/pts/N``) that pyserial opens as it would a USB RS-485 adapter, so the
edge agent and the simulator speak Modbus RTU over it with real serial framing (pymodbus's RTU framer on both
sides, CRC and all). A thread copies bytes between the two pseudo-terminal masters; with ``pace`` it holds
each chunk for as long as the line's baud rate would take to carry it (10 bits a byte), so that timings are
those of a real line. No ``socat`` is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import tty
from collections.abc import Sequence
from contextlib import ExitStack
from types import TracebackType

from common.sites import RtuTransport, Site

logger = logging.getLogger(__name__)

_POLL_S = 0.02
_CHUNK = 4096


class VirtualSerialLine:
    """Two serial ports joined like a cable: what one end writes, the other reads.

    Use as a context manager; `client_port` is given to the edge agent (the site file's ``device``),
    `server_port` to the simulator (`SiteSimulator(serial_ports=...)`).
    """

    def __init__(self, baud: int = 9600, *, pace: bool = False) -> None:
        self.baud = baud
        self.pace = pace
        self._masters: list[int] = []
        self._slaves: list[int] = []
        self.server_port = self._open_end()
        self.client_port = self._open_end()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="virtual-serial-line", daemon=True)
        self.bytes_carried = 0
        self._thread.start()

    def _open_end(self) -> str:
        master, slave = os.openpty()
        # Raw mode until pyserial opens the port: no echo, no line editing, no CR/LF translation.
        tty.setraw(slave)
        self._masters.append(master)
        self._slaves.append(slave)
        return os.ttyname(slave)

    def _copy(self) -> None:
        first, second = self._masters
        other = {first: second, second: first}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([first, second], [], [], _POLL_S)
            except (OSError, ValueError):
                return
            for source in ready:
                try:
                    data = os.read(source, _CHUNK)
                except OSError:
                    continue  # the end's port is closed and not yet reopened: bytes on a dead line are lost
                if self.pace:
                    time.sleep(len(data) * 10 / self.baud)
                with contextlib.suppress(OSError):
                    os.write(other[source], data)
                    self.bytes_carried += len(data)

    def close(self) -> None:
        """Stop carrying bytes and close both pseudo-terminals."""
        self._stop.set()
        self._thread.join(timeout=2)
        for descriptor in self._masters + self._slaves:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._masters, self._slaves = [], []

    def __enter__(self) -> VirtualSerialLine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def on_virtual_lines(sites: Sequence[Site], stack: ExitStack) -> tuple[list[Site], list[dict[str, str]]]:
    """Each site's serial lines replaced by virtual ones, paced at the line's baud rate and closed with
    ``stack``.

    Returns the sites as their agents see them (every RTU device on the agent's end of its line; devices that
    shared a line share the new one) and, for each site, the simulator's end of each of those lines (its
    `SiteSimulator`'s ``serial_ports``).
    """
    moved: list[Site] = []
    simulator_ends: list[dict[str, str]] = []
    for site in sites:
        lines: dict[str, VirtualSerialLine] = {}
        devices = []
        for device in site.devices:
            transport = device.transport
            if isinstance(transport, RtuTransport):
                line = lines.get(transport.device)
                if line is None:
                    line = stack.enter_context(VirtualSerialLine(transport.baud, pace=True))
                    lines[transport.device] = line
                end = line.client_port
                logger.info("%s/%s: the agent's end of its serial line is %s", site.id, device.id, end)
                moved_transport = transport.model_copy(update={"device": end})
                device = device.model_copy(update={"transport": moved_transport})
            devices.append(device)
        moved.append(site.model_copy(update={"devices": devices}))
        simulator_ends.append({line.client_port: line.server_port for line in lines.values()})
    return moved, simulator_ends
