"""Publishing the outbox to MQTT: QoS 1 messages, deleted from the outbox only when the broker acknowledges.

Three lanes share the connection, in this order of priority (a fourth while the card has failed):

1. **events**: health events, one per message on the events topic, as soon as they are committed;
2. **live**: samples taken since the connection came up (or within `PublisherSettings.live_window_ms` before
   it), sent at once in batches with ``backfill`` false;
3. **backfill**: the backlog older than that, sent oldest first with ``backfill`` true, after a random start
   delay (so that 16 schools coming back together do not flood the cloud at once), at most
   `PublisherSettings.backfill_samples_per_s`, and never taking the in-flight slots the live lane needs, so
   that live data keeps flowing beside it;
4. **card**: once the outbox has moved to memory because its card failed (`edge.outbox`), what waited on the
   card — its events, then its samples as backfill, under the card's stream, paced with the backlog. Nothing
   can be removed from the card, so an acknowledgement only moves the lane on.

paho runs its network loop in its own thread (connecting, reconnecting with backoff, resending unacknowledged
QoS 1 messages after a reconnect); its callbacks are handed to the agent's asyncio loop, which owns the
outbox. After a restart, whatever the outbox still holds is sent again: the cloud drops what it already has.
The retained status topic says whether the school is online; the broker publishes the will (offline) if the
agent dies without saying goodbye.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

from common.broker import BrokerAddress
from common.clock import Clock
from common.mqtt import KEEPALIVE_S, make_client
from common.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    QOS,
    RETAIN_STATUS,
    RETAIN_TELEMETRY,
    Channel,
    DeviceKind,
    HealthEvent,
    LinkState,
    Sample,
    Status,
    TelemetryBatch,
    encode,
    school_topic,
)
from edge import __version__
from edge.outbox import Outbox, StoredEvent, StoredSample

log = logging.getLogger(__name__)

# paho keeps at most 20 QoS 1 messages in flight by default; we stay within that.
MAX_INFLIGHT_MESSAGES = 16
# In-flight slots the backfill lane leaves free for events and live samples.
RESERVED_FOR_LIVE = 4
# After the broker refuses a message (e.g. not authorised), wait before offering it again.
REFUSAL_PAUSE_S = 30.0
# MQTT 5's PUBACK "No matching subscribers": the broker took the message but nobody was subscribed, so it
# went nowhere. After a restart Mosquitto 2.0 has no ingest subscription until the workers subscribe again
# (shared subscriptions are not kept across restarts), so such rows stay in the outbox and go again soon.
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIBER_PAUSE_S = 3.0
# A message unacknowledged this long while connected is offered again (its rows are still in the outbox), so
# that a message paho lost can never hold an in-flight slot for ever [s].
INFLIGHT_EXPIRY_S = 120.0

Lane = Literal["events", "live", "backfill", "card_events", "card"]


@dataclass(frozen=True)
class PublisherSettings:
    """How the publisher paces itself."""

    batch_size: int = 100
    # Samples older than this when the connection comes up are backlog [ms].
    live_window_ms: int = 60_000
    # Backlog replay: samples per second (0: unlimited), batch size, and the random start delay's upper bound.
    backfill_samples_per_s: float = 200.0
    backfill_batch_size: int = 250
    backfill_delay_max_s: float = 300.0
    # paho's reconnect backoff [s].
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


@dataclass
class _Inflight:
    lane: Lane
    ids: list[int]
    sent_at: float


class Publisher:
    """Moves samples and events from one school's outbox to the broker."""

    def __init__(
        self,
        school_id: str,
        outbox: Outbox,
        broker: BrokerAddress,
        clock: Clock,
        settings: PublisherSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.school_id = school_id
        self.outbox = outbox
        self.broker = broker
        self.clock = clock
        self.settings = settings or PublisherSettings()
        self._rng = rng or random.Random()
        self._telemetry_topic = school_topic(school_id, Channel.TELEMETRY)
        self._status_topic = school_topic(school_id, Channel.STATUS)
        self._events_topic = school_topic(school_id, Channel.EVENTS)
        self._inflight: dict[int, _Inflight] = {}
        # The outbox's stream the cursors and the messages in flight belong to.
        self._stream = outbox.stream
        # Cursors: the highest row id offered to the broker on each lane, and where the backlog ends.
        self._events_after = 0
        self._live_after = 0
        self._backlog_after = 0
        self._backlog_upto = 0
        self._card_events_after = 0
        self._card_after = 0
        self._backfill_from = 0.0
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._connected = False
        self._paused_until = 0.0
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        offline = encode(Status(school=school_id, state=LinkState.OFFLINE, agent=__version__))
        self._client = make_client(
            broker, f"edge-{school_id}", will=(self._status_topic, offline, QOS, RETAIN_STATUS)
        )
        self._client.reconnect_delay_set(
            round(self.settings.reconnect_min_s), round(self.settings.reconnect_max_s)
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self.acknowledged_samples = 0
        self.acknowledged_backfill = 0
        self.acknowledged_events = 0
        self.acknowledged_from_card = 0

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def backlog_pending(self) -> bool:
        """Whether a backlog is waiting to be replayed."""
        return self._backlog_after < self._backlog_upto

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=KEEPALIVE_S, clean_start=True
        )
        self._client.loop_start()

    def wake(self) -> None:
        """New samples or events are in the outbox."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send what the outbox holds whenever connected, until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            self._expire_inflight()
            while self._send_one():
                pass
            # A paced backlog needs a look now and then even when nothing new arrives.
            timeout = 0.1 if self.backlog_pending else 1.0
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    def _send_one(self) -> bool:
        """Publish one message from the first lane that has something to send; False when none can."""
        self._follow_stream()
        if not self._connected or self._loop.time() < self._paused_until:
            return False
        if len(self._inflight) >= MAX_INFLIGHT_MESSAGES:
            return False
        return self._send_event() or self._send_live() or self._send_backfill() or self._send_left_on_card()

    def _send_event(self) -> bool:
        events = self.outbox.pending_events(after_id=self._events_after, limit=1)
        if not events:
            return False
        self._publish(
            self._events_topic, encode(self._event(events[0], self.outbox.stream)), "events", [events[0].id]
        )
        self._events_after = events[0].id
        return True

    def _send_live(self) -> bool:
        rows = self.outbox.pending(
            after_id=max(self._live_after, self._backlog_upto), limit=self.settings.batch_size
        )
        if not rows:
            return False
        self._send_samples(rows, "live")
        self._live_after = rows[-1].id
        return True

    def _send_backfill(self) -> bool:
        if not self.backlog_pending or len(self._inflight) >= MAX_INFLIGHT_MESSAGES - RESERVED_FOR_LIVE:
            return False
        now = self._loop.time()
        if now < self._backfill_from:
            return False
        limit = min(self.settings.backfill_batch_size, MAX_SAMPLES_PER_BATCH)
        rows = self.outbox.pending(after_id=self._backlog_after, upto_id=self._backlog_upto, limit=limit)
        if not rows:
            self._backlog_after = self._backlog_upto
            log.info("school %s: backlog replayed", self.school_id)
            return False
        if not self._paid_for(len(rows), limit):
            return False
        self._send_samples(rows, "backfill")
        self._backlog_after = rows[-1].id
        return True

    def _paid_for(self, count: int, limit: int) -> bool:
        """Whether ``count`` samples may go now at `PublisherSettings.backfill_samples_per_s`: a token bucket
        holding one batch (``limit``), so a full batch (or a backlog's last rows) goes when paid for."""
        rate = self.settings.backfill_samples_per_s
        if rate <= 0:
            return True
        now = self._loop.time()
        self._tokens = min(self._tokens + (now - self._tokens_at) * rate, float(limit))
        self._tokens_at = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True

    def _send_left_on_card(self) -> bool:
        card = self.outbox.left_on_card
        if card is None or len(self._inflight) >= MAX_INFLIGHT_MESSAGES - RESERVED_FOR_LIVE:
            return False
        events = card.pending_events(after_id=self._card_events_after, limit=1)
        if events:
            payload = encode(self._event(events[0], card.stream))
            self._publish(self._events_topic, payload, "card_events", [events[0].id])
            self._card_events_after = events[0].id
            return True
        limit = min(self.settings.backfill_batch_size, MAX_SAMPLES_PER_BATCH)
        rows = card.pending(after_id=self._card_after, limit=limit)
        if not rows or not self._paid_for(len(rows), limit):
            return False
        self._send_samples(rows, "card", card.stream)
        self._card_after = rows[-1].id
        return True

    def _send_samples(self, rows: list[StoredSample], lane: Lane, stream: str | None = None) -> None:
        """Publish rows as one batch (of the outbox's stream unless another is given), or as several if one
        would be over the payload limit."""
        stream = stream or self.outbox.stream
        payload = encode(self._batch(rows, stream, backfill=lane in ("backfill", "card")))
        if len(payload) > MAX_PAYLOAD_BYTES and len(rows) > 1:
            half = len(rows) // 2
            self._send_samples(rows[:half], lane, stream)
            self._send_samples(rows[half:], lane, stream)
            return
        self._publish(self._telemetry_topic, payload, lane, [row.id for row in rows])

    def _publish(self, topic: str, payload: bytes, lane: Lane, ids: list[int]) -> None:
        retain = RETAIN_TELEMETRY  # events are not retained either
        info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        self._inflight[info.mid] = _Inflight(lane, ids, self._loop.time())

    def _batch(self, rows: list[StoredSample], stream: str, *, backfill: bool) -> TelemetryBatch:
        samples = [
            Sample(
                seq=row.id, device=row.device, kind=DeviceKind(row.kind), ts_ms=row.ts_ms, values=row.values
            )
            for row in rows
        ]
        return TelemetryBatch(
            school=self.school_id,
            stream=stream,
            backfill=backfill,
            sent_ms=self.clock.now_ms(),
            samples=samples,
        )

    def _event(self, event: StoredEvent, stream: str) -> HealthEvent:
        return HealthEvent(
            school=self.school_id,
            stream=stream,
            seq=event.id,
            device=event.device,
            code=event.code,
            severity=event.severity,
            active=event.active,
            ts_ms=event.ts_ms,
            message_pl=event.message_pl,
            details=event.details,
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
        if reason.is_failure:
            pause_s = REFUSAL_PAUSE_S
        elif reason.value == NO_MATCHING_SUBSCRIBERS:
            pause_s = NO_SUBSCRIBER_PAUSE_S
        else:
            pause_s = 0.0
        self._loop.call_soon_threadsafe(self._acknowledged, mid, pause_s, str(reason))

    def _set_connected(self, connected: bool) -> None:
        if connected and not self._connected:
            self._new_backlog()
        if connected != self._connected:
            log.info(
                "broker %s %s",
                self.broker,
                "connected" if connected else "disconnected; samples wait in the outbox",
            )
        self._connected = connected
        self._wake.set()

    def _new_backlog(self) -> None:
        """On connecting: what is older than the live window and not yet offered is backlog, replayed after
        a random delay. Rows offered before a disconnect and not acknowledged are resent by paho itself."""
        boundary = self.outbox.last_id_before(self.clock.now_ms() - self.settings.live_window_ms)
        offered = max(self._live_after, self._backlog_upto)
        if boundary <= offered:
            return
        if not self.backlog_pending:
            self._backlog_after = offered
        self._backlog_upto = boundary
        delay_s = self._rng.uniform(0.0, self.settings.backfill_delay_max_s)
        self._backfill_from = self._loop.time() + delay_s
        self._tokens = float(min(self.settings.backfill_batch_size, MAX_SAMPLES_PER_BATCH))
        self._tokens_at = self._backfill_from
        log.info(
            "school %s: backlog up to sample %d; replay starts in %.0f s at %g samples/s",
            self.school_id,
            boundary,
            delay_s,
            self.settings.backfill_samples_per_s,
        )

    def _expire_inflight(self) -> None:
        if not self._connected:
            return
        deadline = self._loop.time() - INFLIGHT_EXPIRY_S
        for mid in [mid for mid, inflight in self._inflight.items() if inflight.sent_at < deadline]:
            inflight = self._inflight.pop(mid)
            log.warning(
                "no acknowledgement for %d rows in %.0f s; offering them again",
                len(inflight.ids),
                INFLIGHT_EXPIRY_S,
            )
            self._rewind(inflight)

    def _rewind(self, inflight: _Inflight) -> None:
        """Offer an in-flight message's rows again: move its lane's cursor back before them."""
        first = inflight.ids[0] - 1
        if inflight.lane == "events":
            self._events_after = min(self._events_after, first)
        elif inflight.lane == "live":
            self._live_after = min(self._live_after, first)
        elif inflight.lane == "backfill":
            self._backlog_after = min(self._backlog_after, first)
        elif inflight.lane == "card_events":
            self._card_events_after = min(self._card_events_after, first)
        else:
            self._card_after = min(self._card_after, first)

    def _follow_stream(self) -> None:
        """Start afresh on an outbox that moved to memory (its card failed): its rows are numbered anew, and
        the messages in flight carry rows that stay on the card, so their acknowledgements must touch
        nothing."""
        if self.outbox.stream == self._stream:
            return
        log.warning("school %s: the outbox moved to memory; sending from there", self.school_id)
        self._stream = self.outbox.stream
        self._inflight.clear()
        self._events_after = self._live_after = self._backlog_after = self._backlog_upto = 0
        self._card_events_after = self._card_after = 0

    def _acknowledged(self, mid: int, pause_s: float, reason: str) -> None:
        """The broker's answer to a message; `pause_s` > 0 when it did not reach a subscriber."""
        self._follow_stream()
        inflight = self._inflight.pop(mid, None)
        if inflight is None:
            return
        if pause_s > 0:
            # Keep the rows: rewind the lane so that they are offered again after a pause.
            log.warning("message not delivered (%s); %d rows stay in the outbox", reason, len(inflight.ids))
            self._rewind(inflight)
            self._paused_until = max(self._paused_until, self._loop.time() + pause_s)
            return
        if inflight.lane in ("card_events", "card"):
            self.acknowledged_from_card += len(inflight.ids)
        elif inflight.lane == "events":
            self.outbox.acknowledge_events(inflight.ids)
            self.acknowledged_events += len(inflight.ids)
        else:
            self.outbox.acknowledge(inflight.ids)
            self.acknowledged_samples += len(inflight.ids)
            if inflight.lane == "backfill":
                self.acknowledged_backfill += len(inflight.ids)
        self._wake.set()
