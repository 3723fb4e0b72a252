"""The production broker configuration, run for real with the generated CA, passwords and ACL: who may
connect, publish and read what. Each negative case is paired with a positive one in the same test, so that
"never arrived" means "was refused" and not "the test was broken"."""

from __future__ import annotations

import asyncio
import queue
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography import x509
from sqlalchemy import text

from cloud.broker import pki
from cloud.broker.files import SecretsLayout
from cloud.broker.users import HEALTH_USER, OPS_USER, edge_username, ingest_username
from cloud.db.engine import make_engine
from cloud.db.register import prepare_database
from cloud.ingest.certificate import broker_certificate_not_after_ms
from cloud.ingest.worker import IngestWorker
from cloud.settings import Settings
from common.broker import BrokerAddress, parse_broker_url
from common.clock import ManualClock, SystemClock
from common.mqtt import make_client
from common.wire import Channel, decode_event, school_topic
from edge.agent import EdgeAgent, build_pollers
from edge.outbox import Outbox
from simulators.server import SiteSimulator
from tests.cloud.conftest import write_sites
from tests.conftest import PROFILES_DIR
from tests.deploy.conftest import Broker, password_of
from tests.deploy.mqtt import CONNECTED, SETTLE_S, Client, connected, try_connect
from tests.edge.conftest import device, running, school, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

A, B = "sp5", "sp6"


def login(broker: Broker, username: str, **options: Any) -> dict[str, Any]:
    """Connection options for a user of the generated credentials, over TLS with the city's CA."""
    return {
        "username": username,
        "password": password_of(broker.layout, username),
        "ca_file": broker.layout.ca_cert,
        "client_id": username,
        **options,
    }


def ingest(broker: Broker, worker: int = 1) -> dict[str, Any]:
    return login(broker, ingest_username(worker))


def test_anonymous_clients_are_refused(broker: Broker) -> None:
    assert try_connect(broker.tls_port, ca_file=broker.layout.ca_cert).startswith("refused")
    assert try_connect(broker.tls_port, **login(broker, edge_username(A))) == CONNECTED


def test_a_wrong_password_is_refused(broker: Broker) -> None:
    assert try_connect(broker.tls_port, **login(broker, edge_username(A), password="wrong")).startswith(
        "refused"
    )
    # Another school's password does not open this school's account, nor does an unknown user get in.
    other = password_of(broker.layout, edge_username(B))
    assert try_connect(broker.tls_port, **login(broker, edge_username(A), password=other)).startswith(
        "refused"
    )
    assert try_connect(
        broker.tls_port, **{**login(broker, edge_username(B)), "username": "edge-x"}
    ).startswith("refused")
    assert try_connect(broker.tls_port, **login(broker, edge_username(A))) == CONNECTED


def test_a_client_without_the_city_ca_cannot_connect(broker: Broker, tmp_path: Path) -> None:
    other_ca = SecretsLayout(tmp_path / "other")
    pki.create_ca(other_ca, common_name="Somebody else's CA")
    user = login(broker, edge_username(A))
    # The system's trusted CAs do not vouch for the broker, and neither does another CA.
    assert try_connect(broker.tls_port, **{**user, "ca_file": None}).startswith("tls error")
    assert try_connect(broker.tls_port, **{**user, "ca_file": other_ca.ca_cert}).startswith("tls error")
    # Plain MQTT to the TLS port gets nowhere.
    assert try_connect(broker.tls_port, **{**user, "tls": False}) != CONNECTED
    # The certificate names the host the client asked for (here its IP address, also in the certificate).
    assert try_connect(broker.tls_port, **{**user, "server_name": "127.0.0.1"}) == CONNECTED
    assert try_connect(broker.tls_port, **user) == CONNECTED


def test_a_school_publishes_only_its_own_topics(broker: Broker) -> None:
    with (
        connected(broker.tls_port, **ingest(broker)) as watcher,
        connected(broker.tls_port, **login(broker, edge_username(A))) as school,
    ):
        watcher.subscribe("lokalnie/v1/+/telemetry", "lokalnie/v1/+/status", "lokalnie/v1/+/events")
        forged = [school_topic(B, channel) for channel in (Channel.TELEMETRY, Channel.STATUS, Channel.EVENTS)]
        for topic in forged:
            assert school.publish(topic, b"forged", retain=topic.endswith("status")) == "Not authorized"
        own = [school_topic(A, channel) for channel in (Channel.TELEMETRY, Channel.STATUS, Channel.EVENTS)]
        for topic in own:
            assert school.publish(topic, b"own", retain=topic.endswith("status")) == "Success"
        arrived = watcher.receive(5.0, until=(own[-1], b"own")) + watcher.receive(SETTLE_S)
        assert {(message.topic, message.payload) for message in arrived} == {(topic, b"own") for topic in own}
        # Not even a retained message was left behind on the other school's status.
        with connected(broker.tls_port, **ingest(broker, 2)) as late:
            late.subscribe(school_topic(B, Channel.STATUS), school_topic(A, Channel.STATUS))
            retained = late.receive(1.0, until=(school_topic(A, Channel.STATUS), b"own"))
            assert [(message.topic, message.retain) for message in retained] == [(own[1], True)]


def test_a_school_writes_no_config_and_reads_no_other_school(broker: Broker) -> None:
    with (
        connected(broker.tls_port, **login(broker, OPS_USER)) as city,
        connected(broker.tls_port, **login(broker, edge_username(A))) as school_a,
        connected(broker.tls_port, **login(broker, edge_username(B))) as school_b,
    ):
        # Every subscription is granted (Mosquitto 2.0 checks reading at delivery), but only the school's own
        # config ever arrives.
        school_a.subscribe(
            "#", "lokalnie/v1/+/telemetry", "lokalnie/v1/+/config", school_topic(B, Channel.CONFIG)
        )
        school_a.subscribe(school_topic(A, Channel.CONFIG))
        school_b.subscribe(school_topic(B, Channel.CONFIG))
        assert school_a.publish(school_topic(A, Channel.CONFIG), b"self-made") == "Not authorized"
        assert city.publish(school_topic(B, Channel.CONFIG), b"config-b", retain=True) == "Success"
        assert school_b.publish(school_topic(B, Channel.TELEMETRY), b"telemetry-b") == "Success"
        assert city.publish(school_topic(A, Channel.CONFIG), b"config-a", retain=True) == "Success"
        assert school_b.wait_for(school_topic(B, Channel.CONFIG), b"config-b")
        arrived = school_a.receive(5.0, until=(school_topic(A, Channel.CONFIG), b"config-a"))
        arrived += school_a.receive(SETTLE_S)
        assert {(message.topic, message.payload) for message in arrived} == {
            (school_topic(A, Channel.CONFIG), b"config-a")
        }


def test_the_ingest_reads_every_school_with_its_real_subscriptions_and_writes_nothing(broker: Broker) -> None:
    # Imported here: the other tests do not depend on the ingest's code.
    from cloud.ingest.worker import subscriptions

    settings = Settings(LOKALNIE_INGEST_GROUP="ingest")
    topics = [topic for topic, _options in subscriptions(settings)]
    assert topics[0].startswith("$share/ingest/")
    with (
        connected(broker.tls_port, **ingest(broker, 1)) as worker_1,
        connected(broker.tls_port, **ingest(broker, 2)) as worker_2,
        connected(broker.tls_port, **login(broker, OPS_USER)) as city,
        connected(broker.tls_port, **login(broker, edge_username(A))) as school,
    ):
        assert worker_1.subscribe(*topics) == ["Granted QoS 1"] * len(topics)
        assert worker_2.subscribe(*topics) == ["Granted QoS 1"] * len(topics)
        city.subscribe("lokalnie/v1/#")
        for topic in (
            school_topic(A, Channel.TELEMETRY),
            school_topic(A, Channel.STATUS),
            school_topic(A, Channel.CONFIG),
        ):
            assert worker_1.publish(topic, b"from-ingest") == "Not authorized"
        payloads = [f"batch-{number}".encode() for number in range(6)]
        for payload in payloads:
            assert school.publish(school_topic(A, Channel.TELEMETRY), payload) == "Success"
        last = (school_topic(A, Channel.TELEMETRY), payloads[-1])
        assert city.wait_for(*last)
        seen = city.receive(SETTLE_S)
        assert all(message.payload != b"from-ingest" for message in seen)
        # The shared subscription hands each batch to exactly one worker of the group.
        got: list[bytes] = []
        deadline = time.monotonic() + 5.0
        while len(got) < len(payloads) and time.monotonic() < deadline:
            for worker in (worker_1, worker_2):
                got += [message.payload for message in worker.receive(0.05) if message.topic == last[0]]
        got += [m.payload for w in (worker_1, worker_2) for m in w.receive(SETTLE_S) if m.topic == last[0]]
        assert sorted(got) == sorted(payloads)


def test_a_school_s_will_goes_only_to_its_own_status(broker: Broker) -> None:
    status_a, status_b = school_topic(A, Channel.STATUS), school_topic(B, Channel.STATUS)
    with connected(broker.tls_port, **ingest(broker)) as watcher:
        watcher.subscribe(status_a, status_b)
        watcher.receive(0.5)  # the retained ones
        # Mosquitto 2.0 accepts a will on another school's status at CONNECT, and checks it when it would
        # publish it: it is dropped.
        forger = Client(broker.tls_port, **login(broker, edge_username(A), will=(status_b, b"forged", True)))
        assert forger.connect() == CONNECTED
        forger.drop()
        school = Client(broker.tls_port, **login(broker, edge_username(A), will=(status_a, b"offline", True)))
        assert school.connect() == CONNECTED
        school.drop()
        arrived = watcher.receive(5.0, until=(status_a, b"offline")) + watcher.receive(SETTLE_S)
        assert [(message.topic, message.payload) for message in arrived] == [(status_a, b"offline")]


def test_one_school_cannot_take_over_another_client_s_session(broker: Broker) -> None:
    with (
        connected(broker.tls_port, **ingest(broker)) as worker,
        connected(broker.tls_port, **login(broker, edge_username(A))) as school,
    ):
        worker.subscribe("lokalnie/v1/+/telemetry")
        # A school's agent connects under the ingest worker's client id: the broker gives it its user name as
        # its client id instead, so the worker stays connected and keeps its messages.
        with connected(
            broker.tls_port, **login(broker, edge_username(B), client_id=ingest_username(1))
        ) as intruder:
            intruder.subscribe("lokalnie/v1/+/telemetry")
            assert school.publish(school_topic(A, Channel.TELEMETRY), b"still-mine") == "Success"
            assert worker.wait_for(school_topic(A, Channel.TELEMETRY), b"still-mine")
            assert not worker.disconnected.is_set()
            assert intruder.receive(SETTLE_S) == []


def test_messages_over_the_wire_contract_s_limit_are_refused(broker: Broker) -> None:
    limit = 256 * 1024
    topic = school_topic("s" * 32, Channel.TELEMETRY)  # under the longest school id there can be
    with (
        connected(broker.tls_port, **login(broker, OPS_USER)) as watcher,
        connected(broker.tls_port, **login(broker, edge_username(A))) as school,
    ):
        watcher.subscribe("lokalnie/v1/+/telemetry")
        # The broker closes the connection of a client that sends a larger packet.
        oversized = Client(broker.tls_port, **login(broker, edge_username(B)))
        assert oversized.connect() == CONNECTED
        too_big = b"x" * (limit + 256)
        assert oversized.publish(school_topic(B, Channel.TELEMETRY), too_big, timeout_s=1.0) == "no PUBACK"
        assert oversized.disconnected.is_set()
        oversized.close()
        # 256 KiB on a school's topic gets through, even under the longest topic a school can have.
        assert len(topic) == len("lokalnie/v1//telemetry") + 32
        assert school.publish(topic, b"z" * limit) == "Not authorized"
        assert school.publish(school_topic(A, Channel.TELEMETRY), b"y" * limit) == "Success"
        arrived = watcher.receive(5.0, until=(school_topic(A, Channel.TELEMETRY), b"y" * limit))
        assert [len(message.payload) for message in arrived + watcher.receive(SETTLE_S)] == [limit]


def test_the_health_check_user_reads_the_uptime_only(broker: Broker) -> None:
    with connected(broker.tls_port, **login(broker, HEALTH_USER)) as health:
        health.subscribe("$SYS/broker/uptime", "$SYS/broker/clients/connected", "lokalnie/v1/#")
        arrived = health.receive(3.0, count=1) + health.receive(SETTLE_S)
        assert arrived, "the broker's uptime did not arrive"
        assert {message.topic for message in arrived} == {"$SYS/broker/uptime"}


def test_a_school_logs_in_with_a_client_certificate(broker: Broker, tmp_path: Path) -> None:
    username = edge_username(A)
    paths = pki.issue_client_cert(broker.layout, username)
    files = {path.name: path for path in paths}
    certificate, key = files["client.crt"], files["client.key"]
    with_cert = {"ca_file": broker.layout.ca_cert, "cert_file": certificate, "key_file": key}
    with (
        connected(broker.tls_port, **ingest(broker)) as watcher,
        connected(broker.cert_port, **with_cert) as school,
    ):
        watcher.subscribe("lokalnie/v1/+/telemetry")
        # The certificate's name is the user: the same ACL applies.
        assert school.publish(school_topic(B, Channel.TELEMETRY), b"forged") == "Not authorized"
        assert school.publish(school_topic(A, Channel.TELEMETRY), b"by-cert") == "Success"
        arrived = watcher.receive(5.0, until=(school_topic(A, Channel.TELEMETRY), b"by-cert"))
        assert [message.payload for message in arrived + watcher.receive(SETTLE_S)] == [b"by-cert"]
    # Without a certificate, or with one of another CA, the certificate port does not let a client in.
    assert try_connect(broker.cert_port, ca_file=broker.layout.ca_cert) != CONNECTED
    other = SecretsLayout(tmp_path / "other")
    pki.create_ca(other)
    other_files = {path.name: path for path in pki.issue_client_cert(other, username)}
    forged = {
        "ca_file": broker.layout.ca_cert,
        "cert_file": other_files["client.crt"],
        "key_file": other_files["client.key"],
    }
    assert try_connect(broker.cert_port, **forged) != CONNECTED


def test_a_school_s_agent_with_a_client_certificate_reports_it_expiring(
    broker: Broker, tmp_path: Path
) -> None:
    """The edge agent itself on the certificate port, with a certificate issued for 10 days: its readings get
    through, and so does the health event that puts it on the caretaker's screen and in the city's mail."""
    paths = {path.name: path for path in pki.issue_client_cert(broker.layout, edge_username(A), days=10)}
    address = parse_broker_url(
        f"mqtts://localhost:{broker.cert_port}",
        ca_file=paths["ca.crt"],
        cert_file=paths["client.crt"],
        key_file=paths["client.key"],
    )
    site = school([device("meter", "eastron-sdm630")], school_id=A)
    events, telemetry = school_topic(A, Channel.EVENTS), school_topic(A, Channel.TELEMETRY)

    async def run_agent(clock: ManualClock) -> None:
        async with SiteSimulator(site, clock):
            box = Outbox(tmp_path / "outbox.db")
            agent = EdgeAgent(site, build_pollers(site, PROFILES_DIR), box, address, clock)

            def sent() -> bool:
                return agent.last_poll_ms > 0 and box.count() == 0 and box.count_events() == 0

            async with running(agent):
                await clock.advance_to(clock.now_ms() + site.poll_period_s * 1000)
                await wait_until(sent, 15, "the first poll's sample and event to be acknowledged")

    with connected(broker.tls_port, **ingest(broker)) as watcher:
        watcher.subscribe(events)
        watcher.subscribe(telemetry)
        asyncio.run(run_agent(ManualClock(time.time_ns() // 10**10 * 10**4)))
        # The new outbox's first event, the certificate's, and the first poll's sample.
        arrived = watcher.receive(10.0, count=3)
    assert sorted(message.topic for message in arrived) == [events, events, telemetry]
    sent = [decode_event(message.payload) for message in arrived if message.topic == events]
    assert [event.code for event in sent] == ["outbox_created", "client_certificate_expiring"]
    event = sent[1]
    assert (event.active, event.severity) == (True, "warning")
    assert 9.9 < float(event.details["days_left"] or 0) <= 10.0 and "wygasa" in event.message_pl


def test_the_generated_env_files_connect_the_edge_and_the_ingest(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def local(url: str) -> str:
        # The files name the public host (the schools) or the compose service (the ingest); here both are us.
        parts = urlsplit(url)
        user = parts.netloc.rsplit("@", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}@localhost:{broker.tls_port}"))

    school_env = read_env(broker.layout.school_dir(A) / "edge.env")
    address = parse_broker_url(local(school_env["MQTT_URL"]), ca_file=broker.layout.school_dir(A) / "ca.crt")
    assert school_env["MQTT_CA_FILE"] == "/etc/lokalnie/ca.crt"
    assert_connects(address, edge_username(A))
    # The ingest: its settings from its env file and the CA file compose mounts (deploy/compose.yaml).
    ingest_env = read_env(broker.layout.service_env(ingest_username(1)))
    monkeypatch.setenv("MQTT_URL", local(ingest_env["MQTT_URL"]))
    monkeypatch.setenv("MQTT_CA_FILE", str(broker.layout.broker_ca))
    assert_connects(Settings().broker_address(), ingest_env["LOKALNIE_INGEST_CLIENT_ID"])
    # Without the city's CA the system's trust store does not know the broker's certificate.
    monkeypatch.delenv("MQTT_CA_FILE")
    with pytest.raises(ssl.SSLCertVerificationError):
        assert_connects(Settings().broker_address(), ingest_env["LOKALNIE_INGEST_CLIENT_ID"])


def read_env(path: Path) -> dict[str, str]:
    assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {key: value for key, value in pairs}


def assert_connects(address: BrokerAddress, client_id: str) -> None:
    """A client made by common.mqtt, as the edge agent and the ingest make theirs, gets in."""
    client = make_client(address, client_id)
    outcomes: queue.Queue[str] = queue.Queue()
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: outcomes.put(str(reason))
    try:
        client.connect(address.host, address.port)
        client.loop_start()
        assert outcomes.get(timeout=5.0) == "Success"
    finally:
        client.disconnect()
        client.loop_stop()


def test_an_ingest_worker_records_when_the_broker_s_certificate_expires(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the certificate alert reads (deploy/monitoring/alerts.yaml): the expiry of the certificate the
    broker really presents, recorded by a worker with its counters; an untrusted broker records nothing."""
    issued = x509.load_pem_x509_certificate(broker.layout.server_cert.read_bytes())
    expected_ms = int(issued.not_valid_after_utc.timestamp()) * 1000
    address = parse_broker_url(f"mqtts://localhost:{broker.tls_port}", ca_file=broker.layout.broker_ca)
    logged = broker.log.read_text(errors="replace")
    assert broker_certificate_not_after_ms(address) == expected_ms
    time.sleep(SETTLE_S)
    # The check says goodbye properly: the broker logs the connection, not an error, every hour.
    assert "OpenSSL Error" not in broker.log.read_text(errors="replace")[len(logged) :]
    with pytest.raises(ssl.SSLCertVerificationError):
        broker_certificate_not_after_ms(parse_broker_url(f"mqtts://localhost:{broker.tls_port}"))

    ingest_env = read_env(broker.layout.service_env(ingest_username(1)))
    parts = urlsplit(ingest_env["MQTT_URL"])
    user = parts.netloc.rsplit("@", 1)[0]
    monkeypatch.setenv("MQTT_URL", urlunsplit(parts._replace(netloc=f"{user}@localhost:{broker.tls_port}")))
    monkeypatch.setenv("MQTT_CA_FILE", str(broker.layout.broker_ca))
    monkeypatch.setenv("LOKALNIE_INGEST_CLIENT_ID", ingest_env["LOKALNIE_INGEST_CLIENT_ID"])
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ingest.db'}", sites_dir=write_sites(tmp_path / "sites", [A])
    )
    prepare_database(settings)
    worker = IngestWorker(settings, SystemClock())
    worker.start()
    try:
        assert worker.wait_subscribed(10), "the ingest did not subscribe"
        deadline = time.monotonic() + 10
        while (recorded := _recorded_expiry(settings)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert recorded == expected_ms


def _recorded_expiry(settings: Settings) -> int | None:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            value = connection.execute(text("SELECT broker_cert_not_after_ms FROM ingest_workers")).scalar()
    finally:
        engine.dispose()
    return int(value) if value is not None else None
