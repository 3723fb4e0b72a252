"""An MQTT consumer that receives and acknowledges as an ingest worker does and stores nothing, for the
ingest benchmark's bound on what receiving costs in the same pipeline.

``python -m bench.receive_only <broker port> <messages>``, with the worker's settings in the environment
(``LOKALNIE_INGEST_GROUP``...): connects with the worker's client, session properties and subscriptions
(`cloud.ingest.worker`), prints ``subscribed``, takes the messages off a queue in batches of up to
``LOKALNIE_INGEST_BATCH_MESSAGES`` as the worker's writer does, acknowledges each batch in one write
(`ReceivingClient.ack_many`), and once ``<messages>`` have come prints ``done <time of the last
acknowledgement, Unix seconds>``.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any

from cloud.ingest.worker import BATCH_WAIT_S, MAX_PACKET_BYTES, subscriptions
from cloud.settings import Settings
from common.broker import parse_broker_url
from common.mqtt import KEEPALIVE_S, connect_properties, make_client

CLIENT_ID = "bench-receive-only"


def main(port: int, expected: int) -> None:
    settings = Settings()
    received: queue.Queue[tuple[int, int, bytes]] = queue.Queue()
    subscribed = threading.Event()
    client = make_client(parse_broker_url(f"mqtt://127.0.0.1:{port}"), CLIENT_ID, manual_ack=True)

    def on_connect(client: Any, _userdata: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        client.subscribe(subscriptions(settings))

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        # What the worker's callback does with a message: the payload copied, queued for the writer.
        received.put((message.mid, message.qos, bytes(message.payload)))

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    properties = connect_properties(settings.ingest_session_expiry_s)
    properties.ReceiveMaximum = settings.ingest_receive_maximum
    properties.MaximumPacketSize = MAX_PACKET_BYTES
    client.connect("127.0.0.1", port, KEEPALIVE_S, clean_start=True, properties=properties)
    client.loop_start()
    if not subscribed.wait(60):
        raise TimeoutError("not subscribed")
    print("subscribed", flush=True)
    taken = 0
    while taken < expected:
        batch = [received.get(timeout=600)]
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < settings.ingest_batch_messages:
            try:
                batch.append(received.get(timeout=max(deadline - time.monotonic(), 0.0)))
            except queue.Empty:
                break
        client.ack_many([mid for mid, qos, _ in batch if qos == 1])
        taken += len(batch)
    print(f"done {time.time():.6f}", flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
