"""lokalnie's MQTT client against a real Mosquitto: messages queued for its session arrive in bursts, many
packets to a socket read and packets larger than a read, and every payload comes out whole, once, in order.
(A connection dropped mid-buffer is covered by the broker restart in tests/ingest/test_faults.py.) Properties
decoded with shared tables equal paho's own, through the broker and for any set of PUBLISH properties. A
batch acknowledged in one write acknowledges exactly its messages: the broker redelivers the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.broker import parse_broker_url
from common.mqtt import connect_properties, make_client
from common.mqtt_reader import READ_BYTES, ReceivingClient, SharedTablesProperties
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


def _receiver(broker: servers.Broker, client_id: str) -> ReceivingClient:
    client = make_client(parse_broker_url(broker.url), client_id, manual_ack=True)
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


_TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0xD7FF), max_size=20)
_PUBLISH_PROPERTIES = st.fixed_dictionaries(
    {},
    optional={
        "PayloadFormatIndicator": st.integers(0, 1),
        "MessageExpiryInterval": st.integers(0, 2**32 - 1),
        "ContentType": _TEXT,
        "ResponseTopic": _TEXT.filter(bool),
        "CorrelationData": st.binary(max_size=20),
        "UserProperty": st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=3),
    },
)


@given(st.lists(_PUBLISH_PROPERTIES, min_size=1, max_size=4))
def test_shared_tables_decode_any_publish_properties_as_paho_does(
    property_sets: list[dict[str, object]],
) -> None:
    for values in property_sets:
        sent = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        for name, value in values.items():
            setattr(sent, name, value)
        packed = sent.pack() + b"payload"  # type: ignore[no-untyped-call]
        theirs, their_length = Properties(PacketTypes.PUBLISH).unpack(packed)  # type: ignore[no-untyped-call]
        ours, our_length = SharedTablesProperties(PacketTypes.PUBLISH).unpack(packed)
        assert our_length == their_length
        # In turn, so that an instance's properties leaking into the shared tables would show.
        assert ours.json() == theirs.json()  # type: ignore[no-untyped-call]


def test_received_messages_carry_their_properties_decoded_with_shared_tables(
    broker: servers.Broker, publisher: mqtt.Client
) -> None:
    receiver = _receiver(broker, unique_id("properties-"))
    subscribed = threading.Event()
    both = threading.Event()
    received: list[mqtt.MQTTMessage] = []

    def on_message(client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message)
        client.ack(message.mid, message.qos)
        if len(received) == 2:
            both.set()

    receiver.on_subscribe = lambda *_args: subscribed.set()
    receiver.on_message = on_message
    receiver.loop_start()
    try:
        receiver.subscribe(TOPIC, qos=1)
        assert subscribed.wait(10)
        with_properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        with_properties.UserProperty = ("source", "test")
        with_properties.MessageExpiryInterval = 600
        publisher.publish(TOPIC, b"first", qos=1, properties=with_properties).wait_for_publish(10)
        publisher.publish(TOPIC, b"second", qos=1).wait_for_publish(10)
        assert both.wait(20), f"{len(received)} of 2 messages"
    finally:
        receiver.unsubscribe(TOPIC)
        receiver.disconnect()
        receiver.loop_stop()
    first, second = received
    assert all(isinstance(message.properties, SharedTablesProperties) for message in received)
    assert first.payload == b"first"
    decoded = first.properties.json()  # type: ignore[union-attr]
    # The broker counts the expiry down while it holds the message.
    assert 0 < decoded.pop("MessageExpiryInterval") <= 600
    assert decoded == {"UserProperty": [("source", "test")]}
    assert second.properties.json() == {}  # type: ignore[union-attr]


def test_ack_many_acknowledges_exactly_the_messages_named(
    broker: servers.Broker, publisher: mqtt.Client
) -> None:
    client_id = unique_id("acks-")
    count = 30
    arrived: list[tuple[int, int]] = []
    lock = threading.Lock()

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with lock:
            arrived.append((int(message.payload), message.mid))

    def take(expected: int) -> list[tuple[int, int]]:
        deadline = time.monotonic() + 20
        while len(arrived) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # anything more the broker would send
        with lock:
            return list(arrived)

    receiver = _receiver(broker, client_id)
    subscribed = threading.Event()
    receiver.on_subscribe = lambda *_args: subscribed.set()
    receiver.on_message = on_message
    receiver.loop_start()
    receiver.subscribe(TOPIC, qos=1)
    assert subscribed.wait(10)
    for number in range(count):
        publisher.publish(TOPIC, str(number).encode(), qos=1).wait_for_publish(10)
    first = take(count)
    assert sorted(number for number, _mid in first) == list(range(count))
    receiver.ack_many([mid for number, mid in first if number % 3])
    receiver.disconnect()  # after the acknowledgement, which paho writes first
    receiver.loop_stop()

    arrived.clear()
    receiver = _receiver(broker, client_id)
    receiver.on_message = on_message
    receiver.loop_start()
    try:
        again = take(count // 3)
    finally:
        receiver.unsubscribe(TOPIC)
        receiver.disconnect()
        receiver.loop_stop()
    assert sorted(number for number, _mid in again) == list(range(0, count, 3))
