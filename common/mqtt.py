"""A paho-mqtt 2.x client set up the one way lokalnie uses MQTT: version 5, credentials and TLS from a
`BrokerAddress`, reconnects with backoff handled by paho's network thread, socket reads buffered, properties
decoded with shared tables and acknowledgements batched (`common.mqtt_reader`).

Both the edge agent and the cloud ingest build their clients here, so a change to how lokalnie talks to
its broker (TLS settings, keepalive, protocol version) is made once.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from common.broker import BrokerAddress

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties

    from common.mqtt_reader import ReceivingClient

KEEPALIVE_S = 30
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60


def make_client(
    address: BrokerAddress,
    client_id: str,
    *,
    manual_ack: bool = False,
    will: tuple[str, bytes, int, bool] | None = None,
) -> ReceivingClient:
    """A paho client for MQTT 5 with the address's credentials and TLS; not yet connected.

    ``will`` is (topic, payload, qos, retain), published by the broker if the client dies.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from common.mqtt_reader import ReceivingClient, share_property_tables

    share_property_tables()
    client = ReceivingClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(
            ca_certs=str(address.ca_file) if address.ca_file else None,
            certfile=str(address.cert_file) if address.cert_file else None,
            keyfile=str(address.key_file) if address.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if will is not None:
        topic, payload, qos, retain = will
        client.will_set(topic, payload, qos=qos, retain=retain)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    """CONNECT properties: how long the broker keeps the session (and its queued QoS 1 messages)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = session_expiry_s
    return properties
