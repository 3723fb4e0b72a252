"""What receiving costs an ingest worker's MQTT client: messages received and acknowledged per CPU second by
lokalnie's client (`common.mqtt_reader`: socket reads buffered, properties decoded with shared tables)
against paho's own client, on the same queued messages; and the buffering alone, to tell the two apart.

A real Mosquitto holds BENCH_MQTT_MESSAGES (20,000) telemetry-sized messages (QoS 1, about 950 bytes) for a
persistent MQTT 5 session on the ingest's shared subscription; the client then connects and takes them all,
acknowledging each by hand as the ingest does. CPU time is this process's (all its threads), wall time from
the connection to the last message. The three clients take turns, BENCH_MQTT_ROUNDS (5) rounds; the figures
are the medians. Result: bench/results/mqtt_receive.json.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.report import report
from common.mqtt_reader import ReceivingClient, share_property_tables
from tests import servers

MESSAGES = int(os.environ.get("BENCH_MQTT_MESSAGES", "20000"))
ROUNDS = int(os.environ.get("BENCH_MQTT_ROUNDS", "5"))
FILTER = "$share/bench/lokalnie/v1/+/telemetry"
CLIENT_ID = "bench-receiver"
# Like a telemetry message: one poll of a school's inverter and meter.
PAYLOAD = '{"school":"s0001","stream":"a1b2c3d4","samples":[' + ",".join(['{"v":123456.789}'] * 52) + "]}"


def _client(kind: type[mqtt.Client]) -> mqtt.Client:
    return kind(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=CLIENT_ID,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )


def _connect(client: mqtt.Client, port: int) -> None:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 2000
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)


def _queue_messages(port: int) -> None:
    """Subscribe the session, leave, and have mosquitto_pub publish the messages it will find waiting."""
    client = _client(mqtt.Client)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    _connect(client, port)
    client.loop_start()
    client.subscribe(FILTER, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("no SUBACK")
    client.disconnect()
    client.loop_stop()
    lines = "".join(f"{PAYLOAD}\n" for _ in range(MESSAGES))
    command = [servers.require("mosquitto_pub"), "-p", str(port), "-V", "mqttv5", "-q", "1", "-l"]
    subprocess.run([*command, "-t", "lokalnie/v1/s0001/telemetry"], input=lines, text=True, check=True)


def _receive(kind: type[mqtt.Client], port: int) -> tuple[float, float]:
    """Take every queued message with a client of ``kind``: (wall seconds, CPU seconds)."""
    client = _client(kind)
    received = 0
    done = threading.Event()

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        client.ack(message.mid, message.qos)
        received += 1
        if received == MESSAGES:
            done.set()

    client.on_message = on_message
    cpu, wall = time.process_time(), time.perf_counter()
    _connect(client, port)
    client.loop_start()
    if not done.wait(120):
        raise RuntimeError(f"{kind.__name__} received {received} of {MESSAGES}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    return wall, cpu


# Each client, and whether paho's decoder uses the shared tables while it receives.
CLIENTS = (
    ("paho", mqtt.Client, False),
    ("buffered_reads_only", ReceivingClient, False),
    ("lokalnie", ReceivingClient, True),
)


def main() -> None:
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name, _kind, _shared in CLIENTS}
    with tempfile.TemporaryDirectory() as temp, servers.mosquitto(Path(temp)) as broker:
        for number in range(1, ROUNDS + 1):
            for name, kind, shared in CLIENTS:
                _queue_messages(broker.port)
                if shared:
                    share_property_tables()
                else:
                    _packet.Properties = Properties  # type: ignore[attr-defined]
                wall, cpu = _receive(kind, broker.port)
                measured[name].append((wall, cpu))
                print(f"round {number}, {name}: {MESSAGES / cpu:,.0f} messages per CPU second, "
                      f"{MESSAGES / wall:,.0f} per second")  # fmt: skip
    per_cpu = {name: statistics.median(MESSAGES / cpu for _, cpu in runs) for name, runs in measured.items()}
    per_wall = {
        name: statistics.median(MESSAGES / wall for wall, _ in runs) for name, runs in measured.items()
    }
    report(
        "mqtt_receive",
        "telemetry-sized MQTT 5 messages received and acknowledged by hand per CPU second, lokalnie's "
        f"client (buffered socket reads, shared property tables); median of {ROUNDS} rounds of {MESSAGES} "
        "queued messages",
        per_cpu["lokalnie"],
        "messages/CPU s",
        per_cpu["paho"],
        baseline_name="paho-mqtt's own client on the same messages, in the same rounds",
        details={
            "messages_per_wall_second": per_wall,
            "rounds_wall_cpu_seconds": measured,
            "payload_bytes": len(PAYLOAD),
        },
    )


if __name__ == "__main__":
    main()
