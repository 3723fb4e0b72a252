"""When the school's client certificate expires: the agent reads it when it starts, as its MQTT client loads
it, and compares it with the clock every hour (`edge.agent`); a month before, a health event reaches the
city by mail (deploy/monitoring/alerts.yaml) while the school can still connect. A renewed file counts from
the agent's next start, when its client loads it."""

from __future__ import annotations

from pathlib import Path


def certificate_not_after_ms(path: Path) -> int:
    """The end of validity of the first certificate in a PEM file [ms since the epoch]; `OSError` if the file
    cannot be read, `ValueError` if it holds no certificate."""
    # Imported here, by the agents that log in with a certificate only: it adds 8 MB to an agent's memory,
    # a tenth of what it may take beside the kiosk's browser (bench/bench_edge_memory.py).
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return int(certificate.not_valid_after_utc.timestamp()) * 1000
