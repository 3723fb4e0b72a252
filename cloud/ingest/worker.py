"""The ingest service: an MQTT 5 client that takes every school's telemetry, health events and status from
the broker and writes them to the store, acknowledging each message only after the transaction holding it
is committed.

Telemetry and events come through shared subscriptions (``$share/<group>/...``): the broker hands each
message to one process of the group, so starting a second process halves each one's load, and the same
code runs one process in the demo and N in production. Status comes to every process (it is retained and
small).

paho's network thread only queues what arrives (its callbacks never wait for the database); writer threads
take the queued messages in batches, one batch at a time in the order they came, store each batch in one
transaction (`cloud.ingest.store`) and then acknowledge its messages (paho's manual acknowledgement), in
the order the batches were taken (`cloud.ingest.acks`). On PostgreSQL two writers
(``LOKALNIE_INGEST_WRITERS``) let one process work on one batch while the database works on another; SQLite
takes one writer at a time. While the database is unavailable the batch is retried and nothing is
acknowledged, so the broker keeps the messages (beyond the receive maximum it stops sending); a process that
dies loses nothing that was not committed, because the broker redelivers every unacknowledged message when
the client's session resumes. When the time-series sink is configured (``INFLUX_URL``), a sender thread
moves the spooled line protocol to the time-series database (`cloud.timeseries.sink`).
"""

from __future__ import annotations

import gc
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
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from cloud.db.engine import make_engine
from cloud.ingest import stats
from cloud.ingest.acks import InOrder
from cloud.ingest.certificate import broker_certificate_not_after_ms
from cloud.ingest.checks import Limits, load_register
from cloud.ingest.store import Message, StoreOptions, StoreReport, TelemetryStore
from cloud.settings import Settings
from cloud.timeseries.sink import SinkConfig, TimeseriesSink
from common.clock import Clock
from common.mqtt import KEEPALIVE_S, connect_properties, make_client
from common.wire import MAX_PAYLOAD_BYTES, QOS, Channel, all_schools_filter, shared_filter

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# How long the writer waits to fill a batch once a first message is there.
BATCH_WAIT_S = 0.02
# The largest packet the broker may send: messages over the wire contract's limit still arrive (and become
# dead letters), up to this; larger ones the broker drops for this client.
MAX_PACKET_BYTES = 8 * MAX_PAYLOAD_BYTES
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 5
STATS_EVERY_S = 60.0
# Allocations (less deallocations) between two collections of the youngest generation (`run_ingest`).
GC_YOUNG_THRESHOLD = 50_000
HEARTBEAT_EVERY_S = 5.0
# How often a worker asks when the broker's TLS certificate expires (an alert warns 30 days before) [s].
CERTIFICATE_CHECK_EVERY_S = 3600.0


@dataclass(frozen=True)
class _Received:
    message: Message
    mid: int
    qos: int
    # Which connection delivered it: an acknowledgement is only valid on that connection.
    connection: int


def subscriptions(settings: Settings) -> list[tuple[str, SubscribeOptions]]:
    """Telemetry and events shared among the group's ingest processes; status to every process, with the
    retained ones."""
    return [
        (
            shared_filter(settings.ingest_group, all_schools_filter(Channel.TELEMETRY)),
            SubscribeOptions(qos=QOS),
        ),
        (
            shared_filter(settings.ingest_group, all_schools_filter(Channel.EVENTS)),
            SubscribeOptions(qos=QOS),
        ),
        (all_schools_filter(Channel.STATUS), SubscribeOptions(qos=QOS)),
    ]


def _database_unavailable(error: BaseException) -> bool:
    """Whether an error is the database's fault (retry later) rather than the message's."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _real_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestWorker:
    """One ingest process's MQTT client, writer threads and (optionally) time-series sender; `start`, then
    `stop` (or use it as a context).

    ``sender``: whether to run the time-series sender when ``settings.influx_url`` is set (default: as
    ``settings.timeseries_sender`` says). The outbox is written whenever ``influx_url`` is set.
    """

    def __init__(
        self, settings: Settings, clock: Clock, *, engine: Engine | None = None, sender: bool | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._address = settings.broker_address()
        self._own_engine = engine is None
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._connection = 0
        self._report = StoreReport()
        self._report_lock = threading.Lock()
        self._writers: list[threading.Thread] = []
        self._taking = threading.Lock()
        self._acks = InOrder[list[_Received]](self._ack)
        self._client = make_client(self._address, settings.ingest_client_id, manual_ack=True)
        # Back soon after the broker: until the ingest has subscribed again, a restarted Mosquitto 2.0 has no
        # subscriber for the telemetry (it does not keep shared subscriptions across a restart).
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._store: TelemetryStore | None = None
        self._sink_config = SinkConfig.from_settings(settings)
        run_sender = settings.timeseries_sender if sender is None else sender
        self._sink = (
            TimeseriesSink(
                self._engine, self._sink_config, settings.ingest_client_id, settings.ingest_client_id
            )
            if self._sink_config is not None and run_sender
            else None
        )

    @property
    def report(self) -> StoreReport:
        """What this process has stored so far."""
        with self._report_lock:
            return StoreReport(
                **{name: value for name, value in vars(self._report).items() if name != "lags_ms"}
            )

    @property
    def queued(self) -> int:
        """Messages received and not stored yet."""
        return self._queue.qsize()

    def start(self) -> None:
        """Register the worker, load the register of schools, start the writer (and the sender) and connect
        (retrying until the broker answers). The database must be reachable."""
        settings = self._settings
        with self._engine.begin() as connection:
            stats.register_worker(connection, settings.ingest_client_id, settings.ingest_group, _real_ms())
            schools = load_register(connection)
        self._store = TelemetryStore(
            self._engine,
            self._clock,
            schools,
            StoreOptions(
                limits=Limits.from_settings(settings),
                worker_id=settings.ingest_client_id,
                timeseries=self._sink_config is not None,
                timeseries_batch_lines=settings.influx_batch_lines,
            ),
        )
        self._writers = [
            threading.Thread(
                target=self._write_loop, args=(number == 0,), name=f"ingest-writer-{number}", daemon=True
            )
            for number in range(self._writer_count())
        ]
        for writer in self._writers:
            writer.start()
        if self._address.tls:
            threading.Thread(target=self._watch_certificate, name="certificate", daemon=True).start()
        if self._sink is not None:
            self._sink.start()
        properties = connect_properties(settings.ingest_session_expiry_s)
        properties.ReceiveMaximum = settings.ingest_receive_maximum
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        logger.info(
            "connecting to %s as %r in group %r (%d schools registered, %d writers)",
            self._address,
            settings.ingest_client_id,
            settings.ingest_group,
            len(schools),
            len(self._writers),
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
        deadline = time.monotonic() + timeout_s
        for writer in self._writers:
            writer.join(max(deadline - time.monotonic(), 0.0))
            if writer.is_alive():
                logger.warning(
                    "%s did not finish within %.0f s; its batch stays unacknowledged", writer.name, timeout_s
                )
        self._client.disconnect()
        self._client.loop_stop()
        if self._sink is not None:
            self._sink.stop(timeout_s)
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

    # the writer threads

    def _writer_count(self) -> int:
        # SQLite has one writer at a time: a second transaction would only wait for the first's lock.
        return self._settings.ingest_writers if self._engine.dialect.name == "postgresql" else 1

    def _write_loop(self, first: bool) -> None:
        """Store batches until the ingest stops; the ``first`` writer also keeps the heartbeat and the log."""
        next_stats = time.monotonic() + STATS_EVERY_S
        next_heartbeat = time.monotonic() + HEARTBEAT_EVERY_S
        while True:
            taken = self._take_batch()
            if taken is not None:
                number, batch = taken
                self._acks.done(number, batch if self._store_batch(batch) else None)
                next_heartbeat = time.monotonic() + HEARTBEAT_EVERY_S
            elif self._stopping.is_set():
                return
            if not first:
                continue
            now = time.monotonic()
            if now >= next_heartbeat:
                next_heartbeat = now + HEARTBEAT_EVERY_S
                self._heartbeat()
            if now >= next_stats:
                next_stats = now + STATS_EVERY_S
                self._log_stats()

    def _take_batch(self) -> tuple[int, list[_Received]] | None:
        """The next batch with its number; writers take turns, so that a batch is a run of messages in the
        order they came."""
        with self._taking:
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                return None
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < self._settings.ingest_batch_messages:
                try:
                    batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0.0)))
                except queue.Empty:
                    break
            return self._acks.take(), batch

    def _store_batch(self, batch: list[_Received]) -> bool:
        """Store ``batch``; True once all of it is committed, False if the ingest stops before."""
        store = self._store
        assert store is not None
        try:
            report = self._retrying(lambda: store.store([item.message for item in batch]))
        except Exception as error:
            # Not the database's fault: some message of the batch cannot be stored. Find it.
            if len(batch) > 1:
                return all(self._store_batch([item]) for item in batch)
            item = batch[0]
            logger.error("message on %r cannot be stored (%s)", item.message.topic, type(error).__name__)
            reason = f"could not be stored: {type(error).__name__}"
            report = self._retrying(lambda: store.store_refusal(item.message, reason))
        if report is None:
            return False
        with self._report_lock:
            self._report.add(report)
        if report.timeseries_lines and self._sink is not None:
            self._sink.wake()
        return True

    def _ack(self, batch: list[_Received]) -> None:
        # The subscriptions are QoS 1 (`QOS`): a message comes at QoS 1, or at 0 (no acknowledgement) if so
        # published. An acknowledgement is only valid on the connection that delivered the message.
        self._client.ack_many(
            [item.mid for item in batch if item.qos == 1 and item.connection == self._connection]
        )

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

    def _heartbeat(self) -> None:
        try:
            with self._engine.begin() as connection:
                stats.heartbeat(connection, self._settings.ingest_client_id, _real_ms(), self._queue.qsize())
        except SQLAlchemyError as error:
            logger.debug("heartbeat not recorded (%s)", type(error).__name__)

    def _watch_certificate(self) -> None:
        while True:
            try:
                not_after_ms = broker_certificate_not_after_ms(self._address)
                with self._engine.begin() as connection:
                    stats.record_broker_certificate(connection, self._settings.ingest_client_id, not_after_ms)
            except (OSError, SQLAlchemyError) as error:
                # Unreachable or untrusted: the MQTT connection says so too, louder.
                logger.debug("broker certificate not checked (%s)", type(error).__name__)
            if self._stopping.wait(CERTIFICATE_CHECK_EVERY_S):
                return

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
    # What the started worker holds (modules, the register, clients) lives as long as the process: out of the
    # cyclic collector's scans, which otherwise walk it again and again while batches come and go.
    gc.freeze()
    # A batch allocates hundreds of thousands of objects, nearly all freed without cycles by their counts;
    # at the default threshold (700) the collector ran every few messages, for nothing.
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    try:
        stop_event.wait()
    finally:
        worker.stop()


def run_sink(settings: Settings, stop_event: threading.Event) -> None:
    """Run a time-series sender alone (no MQTT) until ``stop_event`` is set. INFLUX_URL must be set."""
    config = SinkConfig.from_settings(settings)
    if config is None:
        raise ValueError("INFLUX_URL is not set: there is no time-series database to send to")
    engine = make_engine(settings.database_url)
    with engine.begin() as connection:
        stats.register_worker(connection, settings.ingest_client_id, settings.ingest_group, _real_ms())
    sink = TimeseriesSink(engine, config, settings.ingest_client_id, settings.ingest_client_id)
    sink.start()
    try:
        stop_event.wait()
    finally:
        sink.stop()
        engine.dispose()
