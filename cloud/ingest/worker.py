"""The ingest service: an MQTT 5 client that takes every school's telemetry and status from the broker and
writes it to the store, acknowledging each message only after the transaction holding it is committed.

paho's network thread only queues what arrives; one writer thread takes the queued messages in small
batches, stores each batch in one transaction (`cloud.ingest.store`) and then acknowledges its messages.
While the database is unavailable the batch is retried and nothing is acknowledged, so the broker keeps
the messages; a process that dies loses nothing that was not committed, because the broker redelivers
every unacknowledged message when the client's session resumes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from cloud.db.engine import make_engine
from cloud.ingest.store import Message, StoreReport, TelemetryStore, known_school_ids
from cloud.settings import Settings
from common.broker import parse_broker_url
from common.clock import Clock
from common.mqtt import KEEPALIVE_S, connect_properties, make_client
from common.wire import QOS, Channel, all_schools_filter, shared_filter

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# How many messages one transaction takes at most, and how long the writer waits to fill a batch.
MAX_BATCH_MESSAGES = 200
BATCH_WAIT_S = 0.02
# How many unacknowledged messages the broker may send before it waits for acknowledgements.
RECEIVE_MAXIMUM = 1000
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
STATS_EVERY_S = 60.0


@dataclass(frozen=True)
class _Received:
    message: Message
    mid: int
    qos: int
    # Which connection delivered it: an acknowledgement is only valid on that connection.
    connection: int


def subscriptions(settings: Settings) -> list[tuple[str, SubscribeOptions]]:
    """Telemetry shared among the group's ingest processes; status to every process, with retained ones."""
    return [
        (
            shared_filter(settings.ingest_group, all_schools_filter(Channel.TELEMETRY)),
            SubscribeOptions(qos=QOS),
        ),
        (all_schools_filter(Channel.STATUS), SubscribeOptions(qos=QOS)),
    ]


def _database_unavailable(error: BaseException) -> bool:
    """Whether an error is the database's fault (retry later) rather than the message's."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class IngestWorker:
    """One ingest process's MQTT client and writer thread; `start`, then `stop` (or use it as a context)."""

    def __init__(self, settings: Settings, clock: Clock, *, engine: Engine | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._address = parse_broker_url(settings.mqtt_url)
        self._own_engine = engine is None
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._connection = 0
        self._report = StoreReport()
        self._report_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._client = make_client(self._address, settings.ingest_client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._store: TelemetryStore | None = None

    @property
    def report(self) -> StoreReport:
        """What the ingest has stored so far."""
        with self._report_lock:
            return StoreReport(**vars(self._report))

    def start(self) -> None:
        """Load the register of schools, start the writer and connect (retrying until the broker answers)."""
        self._store = TelemetryStore(self._engine, self._clock, known_school_ids(self._engine))
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        properties = connect_properties(self._settings.ingest_session_expiry_s)
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        logger.info(
            "connecting to %s as %r in group %r",
            self._address,
            self._settings.ingest_client_id,
            self._settings.ingest_group,
        )
        self._client.connect_async(
            self._address.host, self._address.port, KEEPALIVE_S, clean_start=False, properties=properties
        )
        self._client.loop_start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until the broker has confirmed the subscriptions; False after ``timeout_s``."""
        return self._subscribed.wait(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Store and acknowledge what has been received, then disconnect; the rest stays with the broker."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.join(timeout_s)
            if self._writer.is_alive():
                logger.warning(
                    "the writer did not finish within %.0f s; its batch stays unacknowledged", timeout_s
                )
        self._client.disconnect()
        self._client.loop_stop()
        if self._own_engine:
            self._engine.dispose()
        report = self.report
        logger.info(
            "stopped: %d messages, %d samples stored, %d duplicates, %d dead letters",
            report.messages,
            report.samples_stored,
            report.duplicates,
            report.dead_letters,
        )

    def __enter__(self) -> IngestWorker:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # paho's network thread

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.error("the broker refused the connection: %s", reason)
            return
        self._connection += 1
        logger.info("connected (session %s)", "resumed" if flags.session_present else "new")
        client.subscribe(subscriptions(self._settings))

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            logger.error("the broker refused a subscription: %s", ", ".join(refused))
            return
        logger.info("subscribed to %s", ", ".join(topic for topic, _ in subscriptions(self._settings)))
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            # Not acknowledged: the broker delivers it again when the session resumes.
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)
        received = Message(topic, bytes(message.payload), self._clock.now_ms())
        self._queue.put(_Received(received, message.mid, message.qos, self._connection))

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._subscribed.clear()
        if not self._stopping.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", reason)

    # the writer thread

    def _write_loop(self) -> None:
        next_stats = time.monotonic() + STATS_EVERY_S
        while True:
            batch = self._take_batch()
            if batch:
                self._store_and_ack(batch)
            elif self._stopping.is_set():
                return
            if time.monotonic() >= next_stats:
                next_stats += STATS_EVERY_S
                self._log_stats()

    def _take_batch(self) -> list[_Received]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < MAX_BATCH_MESSAGES:
            try:
                batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0.0)))
            except queue.Empty:
                break
        return batch

    def _store_and_ack(self, batch: list[_Received]) -> None:
        store = self._store
        assert store is not None
        try:
            report = self._retrying(lambda: store.store([item.message for item in batch]))
        except Exception as error:
            # Not the database's fault: some message of the batch cannot be stored. Find it.
            if len(batch) > 1:
                for item in batch:
                    self._store_and_ack([item])
                return
            item = batch[0]
            logger.error("message on %r cannot be stored (%s)", item.message.topic, type(error).__name__)
            reason = f"could not be stored: {type(error).__name__}"
            if self._retrying(lambda: store.store_refusal(item.message, reason)) is None:
                return
            report = StoreReport(messages=1, dead_letters=1)
        if report is None:
            return
        for item in batch:
            if item.qos > 0 and item.connection == self._connection:
                self._client.ack(item.mid, item.qos)
        with self._report_lock:
            self._report.add(report)

    def _retrying(self, work: Callable[[], _T]) -> _T | None:
        """Run ``work``, retrying while the database is unavailable; None if the ingest stops meanwhile."""
        delay_s = RETRY_MIN_S
        while True:
            try:
                return work()
            except Exception as error:
                if not _database_unavailable(error):
                    raise
                logger.warning(
                    "database unavailable (%s); messages stay unacknowledged, retrying in %.1f s",
                    type(error.orig if isinstance(error, DBAPIError) else error).__name__,
                    delay_s,
                )
            if self._stopping.wait(delay_s):
                return None
            delay_s = min(delay_s * 2, RETRY_MAX_S)

    def _log_stats(self) -> None:
        report = self.report
        logger.info(
            "%d messages, %d samples stored, %d duplicates, %d dead letters, %d queued",
            report.messages,
            report.samples_stored,
            report.duplicates,
            report.dead_letters,
            self._queue.qsize(),
        )


def run_ingest(settings: Settings, clock: Clock, stop_event: threading.Event) -> None:
    """Run the ingest until ``stop_event`` is set, then stop cleanly. The database must be prepared."""
    worker = IngestWorker(settings, clock)
    worker.start()
    try:
        stop_event.wait()
    finally:
        worker.stop()
