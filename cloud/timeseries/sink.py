"""The sender of the time-series sink: a thread that moves line protocol from the outbox
(`cloud.timeseries.outbox`) to an InfluxDB 2.x-compatible write API (``/api/v2/write``) through
influxdb-client.

It takes the oldest rows under a lease, up to one request's worth of lines (5,000 by default), writes them
gzip-compressed with millisecond precision, and deletes them once the database has answered 2xx. While the
database is down or answers 5xx/429, the rows stay and the sender retries with a growing pause (0.5 s to
30 s); a request the database refuses as malformed (400, 413, 422) is logged and dropped, since sending it
again cannot succeed.

When the relational store fails between the database's answer and the deletion (its outage beginning in
that moment), the sender keeps the written lease and deletes its rows before it takes anything else, retrying
every `RETRY_MIN_S` meanwhile: no other sender can take them while the lease holds (a minute at least), so an
outage shorter than that writes nothing twice. What a crash of the sender can do: a request the database
accepted but whose rows were not deleted yet is sent again (after the lease ends, or at once by the same
client id's next process); so can a store outage longer than the lease, if another sender takes the rows
before this one deletes them. InfluxDB stores such a
repeated point once (same measurement, tags, field and time: it overwrites); VictoriaMetrics stores it
twice unless run with ``-dedup.minScrapeInterval``. A crash of an ingest worker cannot: its lines are
spooled in its transactions, and a message delivered again spools nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.settings import Settings
from cloud.timeseries import outbox

logger = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
# How long the sender sleeps when the outbox is empty and nobody wakes it.
IDLE_WAIT_S = 0.5
# HTTP answers after which the same request can never succeed.
_HOPELESS = frozenset({400, 413, 422})
# influxdb-client declares its precisions as plain strings in a class.
_MILLISECONDS: WritePrecision = WritePrecision.MS  # type: ignore[assignment]


@dataclass(frozen=True)
class SinkConfig:
    """Where and how to write.

    Attributes
    ----------
    url : str
        The database's base URL (``http://host:8086``); the client appends ``/api/v2/write``.
    token, org, bucket : str
        InfluxDB 2 credentials and target (InfluxDB 1.8 and VictoriaMetrics accept any token and org; the
        bucket is the 1.8 database).
    timeout_s : float
        One request's timeout [s].
    batch_lines : int
        Lines per request at most (one outbox row may be larger and goes alone).
    """

    url: str
    token: str = ""
    org: str = "lokalnie"
    bucket: str = "lokalnie"
    timeout_s: float = 10.0
    batch_lines: int = outbox.DEFAULT_BATCH_LINES

    @classmethod
    def from_settings(cls, settings: Settings) -> SinkConfig | None:
        """The sink's configuration, or None when INFLUX_URL is not set (the sink is off)."""
        if settings.influx_url is None:
            return None
        return cls(
            url=settings.influx_url,
            token=settings.influx_token.get_secret_value(),
            org=settings.influx_org,
            bucket=settings.influx_bucket,
            timeout_s=settings.influx_timeout_s,
            batch_lines=settings.influx_batch_lines,
        )

    @property
    def lease_ms(self) -> int:
        """How long a sender holds rows: well beyond one request, so no other sender takes them meanwhile."""
        return int(max(60.0, 6 * self.timeout_s) * 1000)


class WriteRefused(Exception):
    """The database refused a request for good (malformed lines)."""


class Writer:
    """One influxdb-client connection to the database."""

    def __init__(self, config: SinkConfig) -> None:
        self._config = config
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token or "unused",
            org=config.org,
            timeout=int(config.timeout_s * 1000),
            enable_gzip=True,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, body: bytes) -> None:
        """Write line protocol; `WriteRefused` when retrying is pointless, other exceptions when it is not."""
        try:
            self._api.write(
                bucket=self._config.bucket,
                org=self._config.org,
                record=body,
                write_precision=_MILLISECONDS,
            )
        except ApiException as error:
            if error.status in _HOPELESS:
                raise WriteRefused(f"HTTP {error.status}: {str(error.body)[:300]}") from None
            raise

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def _retryable(error: BaseException) -> bool:
    return isinstance(error, ApiException | urllib3.exceptions.HTTPError | OSError | SQLAlchemyError)


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status}"
    return type(error).__name__


class TimeseriesSink:
    """Sends the outbox to the time-series database in a thread of its own; `start`, `wake`, `stop`.

    ``owner`` names this sender in the leases (the worker's client id: a restart under the same id takes
    back at once what the previous process held); ``worker_id`` is the ``ingest_workers`` row its counters
    go to (None: none).
    """

    def __init__(self, engine: Engine, config: SinkConfig, owner: str, worker_id: str | None = None) -> None:
        self._engine = engine
        self._config = config
        self._owner = owner
        self._worker_id = worker_id
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: Writer | None = None
        # Written to the database, not yet deleted from the outbox (the store failed in between).
        self._written: outbox.Lease | None = None
        self.lines_sent = 0

    def start(self) -> None:
        self._writer = Writer(self._config)
        self._thread = threading.Thread(target=self._run, name="timeseries-sink", daemon=True)
        self._thread.start()
        logger.info("time-series sink writing to %s, bucket %r", self._config.url, self._config.bucket)

    def wake(self) -> None:
        """Something was spooled: send it now rather than at the next idle check."""
        self._wake.set()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Finish the request in progress and stop; what is left waits in the outbox."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("the time-series sink did not stop within %.0f s", timeout_s)
        if self._written is not None and not (self._thread is not None and self._thread.is_alive()):
            try:
                self._confirm(self._written)
            except SQLAlchemyError as error:
                logger.warning(
                    "%d lines written but not deleted from the outbox (%s): they will be written again",
                    self._written.lines,
                    _describe(error),
                )
        if self._writer is not None:
            self._writer.close()

    def send_once(self) -> int:
        """Send one batch from the outbox if there is one; the lines sent (0: nothing waited). Raises what
        the database or the outbox raised, after giving the rows back. Rows written before and not deleted
        yet are deleted first."""
        if self._written is not None:
            return self._confirm(self._written)
        writer = self._writer or Writer(self._config)
        self._writer = writer
        lease = outbox.claim(
            self._engine, self._owner, _real_ms(), self._config.lease_ms, self._config.batch_lines
        )
        if lease is None:
            return 0
        try:
            writer.write(lease.body)
        except WriteRefused as error:
            logger.error(
                "the time-series database refused %d lines for good (%s); dropped", lease.lines, error
            )
            outbox.drop(self._engine, lease)
            raise
        except BaseException:
            try:
                outbox.failed(self._engine, lease, self._worker_id)
            except SQLAlchemyError as error:
                logger.warning(
                    "could not give the outbox rows back (%s); their lease runs out", _describe(error)
                )
            raise
        self._written = lease
        return self._confirm(lease)

    def _confirm(self, lease: outbox.Lease) -> int:
        """Delete the rows of a lease the database accepted; raises while the store is unavailable."""
        outbox.sent(self._engine, lease, self._worker_id)
        self._written = None
        self.lines_sent += lease.lines
        return lease.lines

    def _run(self) -> None:
        delay_s = RETRY_MIN_S
        try:
            released = outbox.release_own(self._engine, self._owner)
            if released:
                logger.warning(
                    "%d outbox rows held by this sender's previous process are sent again", released
                )
        except SQLAlchemyError as error:
            logger.warning("could not check for rows of an earlier process (%s)", _describe(error))
        while not self._stopping.is_set():
            try:
                sent = self.send_once()
            except WriteRefused:
                continue
            except Exception as error:
                if not _retryable(error):
                    logger.exception("time-series sink failed")
                logger.warning(
                    "time-series database unavailable (%s); its lines wait in the outbox, retrying in %.1f s",
                    _describe(error),
                    delay_s,
                )
                if self._stopping.wait(delay_s):
                    return
                # Written rows wait to be deleted: soon, before their lease ends and another sender takes
                # them.
                delay_s = RETRY_MIN_S if self._written is not None else min(delay_s * 2, RETRY_MAX_S)
                continue
            delay_s = RETRY_MIN_S
            if not sent:
                self._wake.wait(IDLE_WAIT_S)
                self._wake.clear()


def _real_ms() -> int:
    return time.time_ns() // 1_000_000
