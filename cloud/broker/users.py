"""Who logs in to the broker: one user per school's edge agent, one per ingest worker, the city's operators
and the broker's own health check. A user's name is also its MQTT client id (the broker enforces it) and,
for a client certificate, its common name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EDGE_PREFIX = "edge-"
INGEST_PREFIX = "lokalnie-ingest-"
OPS_USER = "lokalnie-ops"
HEALTH_USER = "lokalnie-health"
DEFAULT_INGEST_WORKERS = 2
MAX_INGEST_WORKERS = 16


class Role(StrEnum):
    """What a user is for, which fixes what the ACL lets it do."""

    EDGE = "edge"  # one school's agent: writes its own school's topics, reads its own config
    INGEST = "ingest"  # a cloud ingest worker: reads every school's telemetry, status and events
    OPS = "ops"  # the city's operators: read everything, write the schools' config
    HEALTH = "health"  # the broker container's health check: reads the broker's uptime


@dataclass(frozen=True)
class MqttUser:
    username: str
    role: Role
    school: str | None = None


def edge_username(school_id: str) -> str:
    """The user name of a school's edge agent, ``edge-<school>``; the agent uses it as its client id too."""
    return f"{EDGE_PREFIX}{school_id}"


def ingest_username(worker: int) -> str:
    """The user name (and client id) of the ingest worker numbered ``worker`` (from 1)."""
    return f"{INGEST_PREFIX}{worker}"


def expected_users(school_ids: list[str], ingest_workers: int = DEFAULT_INGEST_WORKERS) -> list[MqttUser]:
    """Every user the broker should know for these schools and ingest workers, in a stable order."""
    if not 1 <= ingest_workers <= MAX_INGEST_WORKERS:
        raise ValueError(
            f"the number of ingest workers must be from 1 to {MAX_INGEST_WORKERS}, got {ingest_workers}"
        )
    users = [MqttUser(edge_username(school), Role.EDGE, school) for school in sorted(school_ids)]
    users += [MqttUser(ingest_username(worker), Role.INGEST) for worker in range(1, ingest_workers + 1)]
    users += [MqttUser(OPS_USER, Role.OPS), MqttUser(HEALTH_USER, Role.HEALTH)]
    return users
