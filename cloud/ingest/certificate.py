"""When the broker's TLS certificate expires, as the broker presents it: an ingest worker asks every hour
(`cloud.ingest.worker`) and records the answer with its counters, so that ``/metrics`` and the alerts see a
certificate that nobody renewed months before it stops every school at once (docs/ingest.md, "Alerts").

A TLS handshake of its own, not the worker's MQTT connection: that one may last for months, and would
still show the old certificate long after a renewal.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from common.broker import BrokerAddress

PROBE_TIMEOUT_S = 5.0


def broker_certificate_not_after_ms(address: BrokerAddress, timeout_s: float = PROBE_TIMEOUT_S) -> int:
    """The end of validity of the certificate the broker at ``address`` presents [ms since the epoch],
    checked as the worker's MQTT client checks it (the address's CA, host name). `OSError` (`ssl.SSLError`
    among them) if the broker cannot be reached or its certificate is not trusted."""
    context = ssl.create_default_context(cafile=str(address.ca_file) if address.ca_file else None)
    if address.cert_file is not None:
        context.load_cert_chain(str(address.cert_file), str(address.key_file) if address.key_file else None)
    with (
        socket.create_connection((address.host, address.port), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=address.host) as tls,
    ):
        certificate = tls.getpeercert()
        # A TLS goodbye (close_notify): without it the broker logs an OpenSSL error for every check.
        with contextlib.suppress(OSError):
            tls.unwrap()
    not_after = certificate.get("notAfter") if certificate else None
    if not isinstance(not_after, str):
        raise ssl.SSLError("the broker presented no certificate")
    return int(ssl.cert_time_to_seconds(not_after)) * 1000
