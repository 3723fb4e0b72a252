"""A paho client that receives cheaply: it reads the socket in large pieces, decodes properties without
rebuilding paho's tables for every packet, and acknowledges a batch of messages in one write.

paho 2.x reads one packet per ``select()``, and a packet in three or four ``recv()`` calls (its first
byte, each byte of its length, the rest). Under load that is most of what receiving costs in Python:
profiled in an ingest worker at full speed, paho's network thread took about as much of the process as
storing the messages did. Here ``recv()`` takes whatever the socket holds, up to `READ_BYTES`, and paho's
reads are served from that buffer; after each of paho's reads the packets left in the buffer are handled
too, because ``select()`` would not announce bytes already taken from the socket.

Only the buffering changes: paho still parses every packet, and every byte read from a socket is handed to it
before the next ``select()``. The buffer is dropped whenever paho closes its socket (a reconnection starts a
new stream).

paho also decodes every received PUBLISH's MQTT 5 properties into a new `Properties`, whose ``__init__``
builds three lookup tables (the properties' names, their types, the packets each applies to): about 10 µs a
message, a sixteenth of an ingest worker's time per message. `SharedTablesProperties` takes the tables once
from paho's class and keeps paho's methods; `share_property_tables` has paho's decoder use it.

Acknowledging by hand, paho queues each PUBACK alone, and each costs a wake-up of its network thread and a
``send()``; `ReceivingClient.ack_many` queues a batch's as one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PUBACK = int(mqtt.PUBACK)
# The most one recv() takes: many ~1 KiB telemetry messages, and less than a TLS socket may hold at once.
READ_BYTES = 64 * 1024


class ReceivingClient(mqtt.Client):
    """`paho.mqtt.client.Client` with its socket reads buffered and its acknowledgements batched (see the
    module's docstring)."""

    _read_buffer: bytes = b""
    _read_offset: int = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_offset >= len(self._read_buffer):
            # Raises like a socket when nothing is there (BlockingIOError), which paho expects.
            self._read_buffer = super()._sock_recv(READ_BYTES)
            self._read_offset = 0
        start = self._read_offset
        self._read_offset = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start : self._read_offset]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        result = super().loop_read(max_packets)
        while result == MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered_bytes():
            result = super().loop_read(max_packets)
        return result

    def _sock_close(self) -> None:
        self._read_buffer, self._read_offset = b"", 0
        super()._sock_close()

    def _buffered_bytes(self) -> int:
        return len(self._read_buffer) - self._read_offset

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge the QoS 1 messages ``mids`` (manual acknowledgement), in one write to the socket.

        paho's `ack` queues each PUBACK alone: a wake-up of its network thread and a ``send()`` for every
        message. These are the same PUBACK packets (MQTT 5 allows the short form, reason code success,
        that paho sends too), handed to paho as one outgoing packet.
        """
        if not mids or not self._manual_ack:
            return
        self._packet_queue(PUBACK, b"".join(struct.pack("!BBH", PUBACK, 2, mid) for mid in mids), 0, 0)


class SharedTablesProperties(Properties):
    """paho's `Properties` with its lookup tables built once and shared by every instance (see the module's
    docstring).

    The tables are only ever read, by paho's own methods, which are all kept.
    """

    _tables = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    types = _tables.types
    names = _tables.names
    properties = _tables.properties

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)

    def unpack(self, buffer: bytes) -> tuple[Properties, int]:
        # A property length of zero, one byte, is what lokalnie's publishers send; a new instance has
        # nothing to clear, so there is nothing to do (paho's own unpack walks every name twice).
        if buffer[:1] == b"\x00" and len(self.__dict__) == 1:
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        return result


def share_property_tables() -> None:
    """Have paho decode the packets it receives into `SharedTablesProperties`, in this whole process.

    paho's decoder looks its ``Properties`` up by name in its ``_packet`` module at every packet; the test
    of this module checks that received messages carry the shared-tables kind, so a paho release that
    decodes elsewhere fails it rather than silently losing the saving.
    """
    _packet.Properties = SharedTablesProperties  # type: ignore[attr-defined,misc]
