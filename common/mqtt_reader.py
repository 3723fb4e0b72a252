"""A paho client that reads the socket in large pieces.

paho 2.x reads one packet per ``select()``, and a packet in three or four ``recv()`` calls (its first
byte, each byte of its length, the rest). Under load that is most of what receiving costs in Python:
profiled in an ingest worker at full speed, paho's network thread took about as much of the process as
storing the messages did. Here ``recv()`` takes whatever the socket holds, up to `READ_BYTES`, and paho's
reads are served from that buffer; after each of paho's reads the packets left in the buffer are handled
too, because ``select()`` would not announce bytes already taken from the socket.

Only the buffering changes: paho still parses every packet, and every byte read from a socket is handed to it
before the next ``select()``. The buffer is dropped whenever paho closes its socket (a reconnection starts a
new stream).
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

# The most one recv() takes: many ~1 KiB telemetry messages, and less than a TLS socket may hold at once.
READ_BYTES = 64 * 1024


class BufferedReadClient(mqtt.Client):
    """`paho.mqtt.client.Client` with its socket reads buffered (see the module's docstring)."""

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
