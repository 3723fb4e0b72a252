"""The buffered MQTT client against a real Mosquitto: messages queued for its session arrive in bursts, many
packets to a socket read and packets larger than a read, and every payload comes out whole, once, in order.
(A connection dropped mid-buffer is covered by the broker restart in tests/ingest/test_faults.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.broker import parse_broker_url
from common.mqtt import connect_properties, make_client
from common.mqtt_reader import READ_BYTES, BufferedReadClient
from tests import servers
from tests.ingest.conftest import unique_id

pytestmark = pytest.mark.integration
TOPIC = "lokalnie/v1/reader/telemetry"


@pytest.fixture(scope="module")
def publisher(broker: servers.Broker) -> Iterator[mqtt.Client]:
    client = make_client(parse_broker_url(broker.url), unique_id("publisher-"))
    client.connect(broker.host, broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def _receiver(broker: servers.Broker, client_id: str) -> mqtt.Client:
    client = make_client(parse_broker_url(broker.url), client_id, manual_ack=True)
    assert isinstance(client, BufferedReadClient)
    client.connect(broker.host, broker.port, clean_start=False, properties=connect_properties(600))
    return client


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(st.integers(0, 2_000), st.integers(READ_BYTES - 100, 3 * READ_BYTES)),
        min_size=1,
        max_size=40,
    )
)
def test_queued_messages_come_out_whole_once_and_in_order(
    broker: servers.Broker, publisher: mqtt.Client, sizes: list[int]
) -> None:
    client_id = unique_id("reader-")
    payloads = [bytes([index % 251]) * size for index, size in enumerate(sizes)]
    # Subscribe, leave, and let the broker queue the messages for the session.
    receiver = _receiver(broker, client_id)
    subscribed = threading.Event()
    receiver.on_subscribe = lambda *_args: subscribed.set()
    receiver.loop_start()
    receiver.subscribe(TOPIC, qos=1)
    assert subscribed.wait(10)
    receiver.disconnect()
    receiver.loop_stop()
    for payload in payloads:
        publisher.publish(TOPIC, payload, qos=1).wait_for_publish(10)

    received: list[bytes] = []
    everything = threading.Event()

    def on_message(client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(bytes(message.payload))
        client.ack(message.mid, message.qos)
        if len(received) >= len(payloads):
            everything.set()

    receiver = _receiver(broker, client_id)
    receiver.on_message = on_message
    receiver.loop_start()
    try:
        assert everything.wait(20), f"{len(received)} of {len(payloads)} messages"
    finally:
        receiver.unsubscribe(TOPIC)
        receiver.disconnect()
        receiver.loop_stop()
    assert [len(payload) for payload in received] == sizes
    assert received == payloads
