"""A small blocking MQTT 5 client for the broker tests: connect and say how it went, publish and return the
broker's PUBACK reason, collect what arrives. Every wait is bounded."""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT_S = 5.0
# How long a test waits for a message that must not arrive, after the one that must has arrived.
SETTLE_S = 0.3

CONNECTED = "connected"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Client:
    """One MQTT 5 connection over TLS (or plain TCP) to 127.0.0.1."""

    def __init__(
        self,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        client_id: str = "",
        tls: bool = True,
        server_name: str = "localhost",
        will: tuple[str, bytes, bool] | None = None,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self.port = port
        self.server_name = server_name
        self.clean_start = clean_start
        self.session_expiry_s = session_expiry_s
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connack: queue.Queue[str] = queue.Queue()
        self._acks: dict[int, queue.Queue[ReasonCode]] = {}
        self._subacks: dict[int, queue.Queue[list[ReasonCode]]] = {}
        self._lock = threading.Lock()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            # A refused or dropped connection stays closed: the tests look at why.
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
            )
            if cert_file is not None:
                context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
            self.client.tls_set_context(context)
        if will is not None:
            topic, payload, retain = will
            self.client.will_set(topic, payload, qos=1, retain=retain)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # connecting

    def connect(self, timeout_s: float = TIMEOUT_S) -> str:
        """``connected``, or why not: the CONNACK's reason, a TLS error, or the connection closing."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.session_expiry_s
        try:
            # paho makes the TCP connection and the TLS handshake here; the server is given by name so that
            # the certificate's host name is checked.
            self.client.connect(
                self.server_name, self.port, keepalive=30, clean_start=self.clean_start, properties=properties
            )
        except ssl.SSLError as error:
            return f"tls error: {error.reason or error}"
        except OSError as error:
            return f"connection error: {error}"
        self.client.loop_start()
        try:
            return self._connack.get(timeout=timeout_s)
        except queue.Empty:
            return "no answer"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Disconnect with reason 0x04 so that the broker publishes the will, as if the client had died."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=0x04))
        self.client.loop_stop()

    # publishing and subscribing

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = TIMEOUT_S
    ) -> str:
        """Publish with QoS 1 and return the broker's PUBACK reason (``Success``, ``Not authorized``, ...)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        # The PUBACK may come before this line: whichever of the two comes first makes the queue.
        with self._lock:
            waiter = self._acks.setdefault(info.mid, queue.Queue())
        try:
            return str(waiter.get(timeout=timeout_s))
        except queue.Empty:
            return "no PUBACK"

    def subscribe(self, *topics: str, timeout_s: float = TIMEOUT_S) -> list[str]:
        """Subscribe with QoS 1 and return the SUBACK's reason per topic."""
        _result, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert mid is not None, "not connected"
        with self._lock:
            waiter = self._subacks.setdefault(mid, queue.Queue())
        return [str(reason) for reason in waiter.get(timeout=timeout_s)]

    def wait_for(self, topic: str, payload: bytes, timeout_s: float = TIMEOUT_S) -> bool:
        """Whether the message arrives within ``timeout_s`` (the messages before it are consumed)."""
        return any(
            message.topic == topic and message.payload == payload
            for message in self.receive(timeout_s, until=(topic, payload))
        )

    def receive(
        self, timeout_s: float, until: tuple[str, bytes] | None = None, count: int | None = None
    ) -> list[Received]:
        """What arrives within ``timeout_s``, or until the given message or ``count`` messages arrived."""
        deadline = time.monotonic() + timeout_s
        received = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            received.append(message)
            if until is not None and (message.topic, message.payload) == until:
                break
            if count is not None and len(received) >= count:
                break
        return received

    # paho's network thread

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any) -> None:
        self._connack.put(CONNECTED if not reason.is_failure else f"refused: {reason}")

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self.disconnected.set()
        self._connack.put(f"closed: {reason}")

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, reason: ReasonCode, _props: Any) -> None:
        with self._lock:
            self._acks.setdefault(mid, queue.Queue()).put(reason)

    def _on_subscribe(
        self, _client: Any, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        with self._lock:
            self._subacks.setdefault(mid, queue.Queue()).put(reasons)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(message.topic, bytes(message.payload), bool(message.retain)))


@contextmanager
def connected(port: int, **options: Any) -> Iterator[Client]:
    """A client that must connect; closed at the end."""
    client = Client(port, **options)
    outcome = client.connect()
    try:
        assert outcome == CONNECTED, f"could not connect: {outcome}"
        yield client
    finally:
        client.close()


def try_connect(port: int, **options: Any) -> str:
    """How a connection attempt ends; the client is closed either way."""
    client = Client(port, **options)
    try:
        return client.connect()
    finally:
        client.close()
