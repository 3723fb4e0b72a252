"""Publishing the outbox to MQTT: QoS 1 batches, deleted from the outbox only when the broker acknowledges.

paho runs its network loop in its own thread (connecting, reconnecting with backoff, resending unacknowledged
QoS 1 messages after a reconnect); its callbacks are handed to the agent's asyncio loop, which owns the
outbox. After a restart, whatever the outbox still holds is sent again: the cloud drops what it already has.
The retained status topic says whether the school is online; the broker publishes the will (offline) if the
agent dies without saying goodbye.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from common.broker import BrokerAddress
from common.clock import Clock
from common.mqtt import KEEPALIVE_S, make_client
from common.wire import (
    QOS,
    RETAIN_STATUS,
    RETAIN_TELEMETRY,
    Channel,
    DeviceKind,
    LinkState,
    Sample,
    Status,
    TelemetryBatch,
    encode,
    school_topic,
)
from edge import __version__
from edge.outbox import Outbox, StoredSample

log = logging.getLogger(__name__)

# paho keeps at most 20 QoS 1 messages in flight by default; we stay within that.
MAX_INFLIGHT_MESSAGES = 16
# After the broker refuses a message (e.g. not authorised), wait before offering the samples again.
REFUSAL_PAUSE_S = 30.0


class Publisher:
    """Moves samples from one school's outbox to the broker."""

    def __init__(
        self,
        school_id: str,
        outbox: Outbox,
        broker: BrokerAddress,
        clock: Clock,
        *,
        batch_size: int = 100,
        backfill_after_ms: int = 60_000,
    ) -> None:
        self.school_id = school_id
        self.outbox = outbox
        self.broker = broker
        self.clock = clock
        self.batch_size = batch_size
        self.backfill_after_ms = backfill_after_ms
        self._telemetry_topic = school_topic(school_id, Channel.TELEMETRY)
        self._status_topic = school_topic(school_id, Channel.STATUS)
        self._inflight: dict[int, list[int]] = {}
        self._last_sent_id = 0
        self._connected = False
        self._paused_until = 0.0
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        offline = encode(Status(school=school_id, state=LinkState.OFFLINE, agent=__version__))
        self._client = make_client(
            broker, f"edge-{school_id}", will=(self._status_topic, offline, QOS, RETAIN_STATUS)
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self.acknowledged_samples = 0

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=KEEPALIVE_S, clean_start=True
        )
        self._client.loop_start()

    def wake(self) -> None:
        """New samples are in the outbox."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send pending samples whenever connected and below the in-flight limit, until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            while self._may_send() and self._send_next_batch():
                pass
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    def _may_send(self) -> bool:
        return (
            self._connected
            and len(self._inflight) < MAX_INFLIGHT_MESSAGES
            and self._loop.time() >= self._paused_until
        )

    def _send_next_batch(self) -> bool:
        rows = self.outbox.pending(after_id=self._last_sent_id, limit=self.batch_size)
        if not rows:
            return False
        batch = self._batch(rows)
        info = self._client.publish(self._telemetry_topic, encode(batch), qos=QOS, retain=RETAIN_TELEMETRY)
        self._inflight[info.mid] = [row.id for row in rows]
        self._last_sent_id = rows[-1].id
        return True

    def _batch(self, rows: list[StoredSample]) -> TelemetryBatch:
        now_ms = self.clock.now_ms()
        samples = [
            Sample(
                seq=row.id, device=row.device, kind=DeviceKind(row.kind), ts_ms=row.ts_ms, values=row.values
            )
            for row in rows
        ]
        backfill = now_ms - rows[0].ts_ms > self.backfill_after_ms
        return TelemetryBatch(
            school=self.school_id,
            stream=self.outbox.stream,
            backfill=backfill,
            sent_ms=now_ms,
            samples=samples,
        )

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Say offline (retained), wait briefly for what is in flight, and disconnect."""
        if self._connected:
            status = Status(school=self.school_id, state=LinkState.OFFLINE, since_ms=self.clock.now_ms())
            info = self._client.publish(self._status_topic, encode(status), qos=QOS, retain=RETAIN_STATUS)
            deadline = self._loop.time() + timeout_s
            while (self._inflight or not info.is_published()) and self._loop.time() < deadline:
                await asyncio.sleep(0.02)
        self._client.disconnect()
        self._client.loop_stop()

    # paho callbacks: they run on paho's thread and hand over to the asyncio loop.

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self.broker, reason)
            return
        status = Status(
            school=self.school_id, state=LinkState.ONLINE, since_ms=self.clock.now_ms(), agent=__version__
        )
        client.publish(self._status_topic, encode(status), qos=QOS, retain=RETAIN_STATUS)
        self._loop.call_soon_threadsafe(self._set_connected, True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._loop.call_soon_threadsafe(self._set_connected, False)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._loop.call_soon_threadsafe(self._acknowledged, mid, bool(reason.is_failure), str(reason))

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            log.info(
                "broker %s %s",
                self.broker,
                "connected" if connected else "disconnected; samples wait in the outbox",
            )
        self._connected = connected
        self._wake.set()

    def _acknowledged(self, mid: int, refused: bool, reason: str) -> None:
        row_ids = self._inflight.pop(mid, None)
        if row_ids is None:
            return
        if refused:
            # Keep the samples: they will be offered again after the outbox is re-read.
            log.error(
                "broker refused a telemetry message (%s); %d samples stay in the outbox", reason, len(row_ids)
            )
            self._last_sent_id = min(self._last_sent_id, row_ids[0] - 1)
            self._paused_until = self._loop.time() + REFUSAL_PAUSE_S
            return
        self.outbox.acknowledge(row_ids)
        self.acknowledged_samples += len(row_ids)
        self._wake.set()
