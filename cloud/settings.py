"""The cloud's configuration: where the database and the broker are, where the site files live, how the
ingest and the API present themselves, and the API's secret, token lifetimes and limits. Read from
environment variables by pydantic-settings."""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.broker import DEFAULT_BROKER_URL, BrokerAddress, parse_broker_url

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///var/lokalnie.db"
# A shared-subscription group or a client id goes into MQTT topics and packets: no wildcards, no slashes.
_MQTT_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_DATABASE_SCHEMES = ("sqlite", "postgresql")

MIB = 1024 * 1024
SECRET_KEY_MIN_CHARS = 32
# Values people copy from examples; refused as a secret outside development.
_PLACEHOLDER_WORDS = ("change", "secret", "example", "placeholder", "default", "password", "lokalnie")
_ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_RATE_PATTERN = re.compile(r"^\s*(?P<count>[0-9]+)\s*/\s*(?P<unit>second|minute|hour|day)\s*$")
_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

Environment = Literal["development", "production"]

#: The API's named rate limits per client (address, or key for a signed-in caller) and their defaults;
#: a route names one (`cloud.api.security.Public`), LOKALNIE_RATE_LIMITS overrides them.
DEFAULT_RATE_LIMITS: dict[str, str] = {
    # Sign-ins (POST /api/v1/auth/token), on top of the per-username throttle.
    "login": "10/minute",
    # Refreshing and signing out.
    "auth": "60/minute",
    # Public searches (addresses).
    "search": "120/minute",
    # Public writes: the heating calculator's estimates, subsidy applications, enrolments, B2B requests.
    "estimates": "30/minute",
    "applications": "10/hour",
    "enrolments": "20/hour",
    "b2b": "10/hour",
}


class Settings(BaseSettings):
    """Everything the ingest and the API need to start; each field names the environment variable it reads."""

    model_config = SettingsConfigDict(extra="ignore", validate_by_name=True, frozen=True)

    database_url: Annotated[
        str,
        Field(
            validation_alias="DATABASE_URL",
            repr=False,
            description=(
                "SQLAlchemy URL of the store: sqlite:///path (the directory is created when needed) or "
                "postgresql+psycopg://user:password@host:port/name (postgresql:// means the same)."
            ),
        ),
    ] = DEFAULT_DATABASE_URL
    mqtt_url: Annotated[
        str,
        Field(
            validation_alias="MQTT_URL",
            repr=False,
            description="The broker, mqtt[s]://[user[:password]@]host[:port].",
        ),
    ] = DEFAULT_BROKER_URL
    mqtt_ca_file: Annotated[
        Path | None,
        Field(
            validation_alias="MQTT_CA_FILE",
            description=(
                "CA certificate that signed the broker's, for mqtts:// (the city's CA, `lokalnie broker "
                "pki-init`); unset: the system's trust store."
            ),
        ),
    ] = None
    sites_dir: Annotated[
        Path,
        Field(
            validation_alias="LOKALNIE_SITES_DIR",
            description="Directory of the schools' site files (<school>.yaml), the register of schools.",
        ),
    ] = Path("firmware-config/sites")
    ingest_group: Annotated[
        str,
        Field(
            validation_alias="LOKALNIE_INGEST_GROUP",
            pattern=_MQTT_NAME_PATTERN,
            description="MQTT 5 shared-subscription group; ingest processes of a group share the work.",
        ),
    ] = "ingest"
    ingest_client_id: Annotated[
        str,
        Field(
            validation_alias="LOKALNIE_INGEST_CLIENT_ID",
            pattern=_MQTT_NAME_PATTERN,
            description=(
                "MQTT client id of this ingest process; the broker keeps its session (and queues its "
                "messages) under this id while the process is down, so keep it stable across restarts."
            ),
        ),
    ] = "lokalnie-ingest-1"
    ingest_session_expiry_s: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_INGEST_SESSION_EXPIRY_S",
            ge=0,
            le=2**32 - 1,
            description="How long the broker keeps an absent ingest's session and queued messages.",
        ),
    ] = 7 * 24 * 3600
    ingest_batch_messages: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_INGEST_BATCH_MESSAGES",
            ge=1,
            le=10_000,
            description="How many messages the ingest stores in one transaction at most.",
        ),
    ] = 500
    ingest_writers: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_INGEST_WRITERS",
            ge=1,
            le=8,
            description="How many batches one ingest process stores side by side, each in its own "
            "transaction (PostgreSQL; SQLite takes one writer at a time, so there it is always 1).",
        ),
    ] = 2
    ingest_receive_maximum: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_INGEST_RECEIVE_MAXIMUM",
            ge=1,
            le=65_535,
            description="How many unacknowledged messages the broker may send one ingest process (MQTT 5).",
        ),
    ] = 2000
    ingest_max_future_s: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_INGEST_MAX_FUTURE_S",
            ge=0,
            description="A sample further ahead of the ingest's clock than this is refused [s].",
        ),
    ] = 24 * 3600
    ingest_max_past_days: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_INGEST_MAX_PAST_DAYS",
            ge=1,
            description="A sample further behind the ingest's clock than this is refused [days].",
        ),
    ] = 400
    raw_retention_days: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_RAW_RETENTION_DAYS",
            ge=2,
            description="Raw samples, counter readings and dead letters older than this are deleted by "
            "'lokalnie prune' [days]; longer than LOKALNIE_INGEST_MAX_PAST_DAYS.",
        ),
    ] = 730
    ingest_pv_power_margin: Annotated[
        float,
        Field(
            validation_alias="LOKALNIE_INGEST_PV_POWER_MARGIN",
            gt=0,
            description="An inverter delivers at most this many times its school's peak power (pv_kwp).",
        ),
    ] = 1.5
    ingest_max_grid_power_w: Annotated[
        float,
        Field(
            validation_alias="LOKALNIE_INGEST_MAX_GRID_POWER_W",
            gt=0,
            description="The most a school's grid connection carries either way [W].",
        ),
    ] = 1_000_000.0
    influx_url: Annotated[
        str | None,
        Field(
            validation_alias="INFLUX_URL",
            description=(
                "Base URL of the time-series database's InfluxDB 2.x write API (InfluxDB 2.x or 3, 1.8+, "
                "VictoriaMetrics), e.g. http://127.0.0.1:8086; unset: the time-series sink is off."
            ),
        ),
    ] = None
    influx_token: Annotated[
        SecretStr,
        Field(validation_alias="INFLUX_TOKEN", description="API token of the time-series database."),
    ] = SecretStr("")
    influx_org: Annotated[
        str, Field(validation_alias="INFLUX_ORG", min_length=1, description="InfluxDB organisation.")
    ] = "lokalnie"
    influx_bucket: Annotated[
        str,
        Field(
            validation_alias="INFLUX_BUCKET",
            min_length=1,
            description="InfluxDB bucket (the database on InfluxDB 1.8).",
        ),
    ] = "lokalnie"
    influx_timeout_s: Annotated[
        float,
        Field(
            validation_alias="INFLUX_TIMEOUT_S", gt=0, le=300, description="One write request's timeout [s]."
        ),
    ] = 10.0
    influx_batch_lines: Annotated[
        int,
        Field(
            validation_alias="INFLUX_BATCH_LINES",
            ge=1,
            le=100_000,
            description="Lines per write request at most (InfluxDB recommends 5,000).",
        ),
    ] = 5000
    timeseries_sender: Annotated[
        bool,
        Field(
            validation_alias="LOKALNIE_TIMESERIES_SENDER",
            description=(
                "Whether an ingest process also sends the outbox to the time-series database; off in "
                "processes whose sending another process (lokalnie timeseries-sink) does."
            ),
        ),
    ] = True
    api_host: Annotated[
        str,
        Field(validation_alias="LOKALNIE_API_HOST", min_length=1, description="Address the API listens on."),
    ] = "127.0.0.1"
    api_port: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_API_PORT", ge=1, le=65535, description="TCP port the API listens on."
        ),
    ] = 8000
    api_processes: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_API_PROCESSES",
            ge=1,
            le=64,
            description="Processes serving the API on its port (about one per core); they share the rate "
            "limits and the sign-in throttle.",
        ),
    ] = 1

    env: Annotated[
        Environment,
        Field(
            validation_alias="LOKALNIE_ENV",
            description=(
                "development (a missing secret key is generated per process, placeholders allowed, '*' "
                "allowed in CORS) or production (every secret set and real)."
            ),
        ),
    ] = "development"
    secret_key: Annotated[
        SecretStr | None,
        Field(
            validation_alias="LOKALNIE_SECRET_KEY",
            repr=False,
            description=(
                f"Key that signs the API's access tokens (HS256), at least {SECRET_KEY_MIN_CHARS} "
                "characters; required outside development. Changing it ends every access token at once."
            ),
        ),
    ] = None
    access_token_ttl_s: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_ACCESS_TOKEN_TTL_S",
            ge=60,
            le=3600,
            description="Lifetime of an access token [s].",
        ),
    ] = 15 * 60
    refresh_token_ttl_s: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_REFRESH_TOKEN_TTL_S",
            ge=300,
            le=30 * 86400,
            description="How long a refresh token stays usable when not used [s]; each use gives a new one.",
        ),
    ] = 12 * 3600
    session_max_s: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_SESSION_MAX_S",
            ge=300,
            le=90 * 86400,
            description="How long a login lasts at most, however often it is refreshed [s].",
        ),
    ] = 7 * 86400
    cors_origins: Annotated[
        tuple[str, ...],
        NoDecode,
        Field(
            validation_alias="LOKALNIE_CORS_ORIGINS",
            description=(
                "Comma-separated origins (scheme://host[:port]) whose pages may call the API from a browser; "
                "none by default."
            ),
        ),
    ] = ()
    trusted_proxies: Annotated[
        tuple[str, ...],
        NoDecode,
        Field(
            validation_alias="LOKALNIE_TRUSTED_PROXIES",
            description=(
                "Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For the API "
                "believes; none by default (the peer address is the client)."
            ),
        ),
    ] = ()
    max_body_bytes: Annotated[
        int,
        Field(
            validation_alias="LOKALNIE_MAX_BODY_BYTES",
            ge=1024,
            le=100 * MIB,
            description="Largest request body a route takes unless it declares its own limit [bytes].",
        ),
    ] = MIB
    rate_limits: Annotated[
        dict[str, str],
        NoDecode,
        Field(
            validation_alias="LOKALNIE_RATE_LIMITS",
            description=(
                "Overrides of the named rate limits, comma-separated name=count/unit with unit second, "
                "minute, hour or day, e.g. 'estimates=60/minute,applications=10/hour'."
            ),
        ),
    ] = Field(default_factory=dict)

    _development_key: str | None = PrivateAttr(default=None)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme == "postgres":
            scheme = "postgresql"
        if scheme not in _DATABASE_SCHEMES or "://" not in url:
            raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got one starting with {scheme!r}")
        return url

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", url.strip()):
            raise ValueError("must be an http:// or https:// URL")
        return url.strip()

    @field_validator("mqtt_url")
    @classmethod
    def _valid_broker(cls, url: str) -> str:
        parse_broker_url(url)
        return url

    @field_validator("mqtt_ca_file")
    @classmethod
    def _readable_ca(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    def broker_address(self) -> BrokerAddress:
        """Where the broker is and how to reach it (the CA for TLS)."""
        return parse_broker_url(self.mqtt_url, ca_file=self.mqtt_ca_file)

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return proxies

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin != "*" and not _ORIGIN_PATTERN.match(origin):
                raise ValueError(f"{origin!r} is not an origin like https://host[:port] (no path, no slash)")
        return origins

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rate_overrides(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        overrides: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            name, equals, rate = item.partition("=")
            if not equals or not name.strip():
                raise ValueError(f"{item.strip()!r} is not name=count/unit")
            overrides[name.strip()] = rate.strip()
        return overrides

    @field_validator("rate_limits")
    @classmethod
    def _rates(cls, rates: dict[str, str]) -> dict[str, str]:
        for name, rate in rates.items():
            if name not in DEFAULT_RATE_LIMITS:
                raise ValueError(f"no rate limit called {name!r}; there are {', '.join(DEFAULT_RATE_LIMITS)}")
            parse_rate(rate, name)
        return rates

    @model_validator(mode="after")
    def _retention_beyond_acceptance(self) -> Settings:
        # A reading the ingest still accepts needs its neighbours and duplicates (cloud.ingest.retention).
        if self.raw_retention_days <= self.ingest_max_past_days:
            raise ValueError(
                f"LOKALNIE_RAW_RETENTION_DAYS ({self.raw_retention_days}) must be longer than "
                f"LOKALNIE_INGEST_MAX_PAST_DAYS ({self.ingest_max_past_days}): the ingest still accepts "
                "readings that old, and they need the raw rows around them"
            )
        return self

    @model_validator(mode="after")
    def _production_ready(self) -> Settings:
        """Outside development: a real secret key, and no origin wildcard."""
        if self.env == "development":
            return self
        if self.secret_key is None:
            raise ValueError(f"LOKALNIE_SECRET_KEY must be set when LOKALNIE_ENV is {self.env}")
        problem = secret_key_problem(self.secret_key.get_secret_value())
        if problem is not None:
            raise ValueError(f"LOKALNIE_SECRET_KEY {problem} (LOKALNIE_ENV is {self.env})")
        if "*" in self.cors_origins:
            raise ValueError(f"LOKALNIE_CORS_ORIGINS may not be '*' when LOKALNIE_ENV is {self.env}")
        return self

    def rates(self) -> dict[str, tuple[int, float]]:
        """Every named rate limit as (count, period in seconds): the defaults with the overrides."""
        return {
            name: parse_rate(rate, name) for name, rate in (DEFAULT_RATE_LIMITS | self.rate_limits).items()
        }

    def signing_key(self) -> str:
        """The key that signs access tokens: the configured one, or in development without one a random key
        made once per settings object (tokens then last until the process ends)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env != "development":  # pragma: no cover - refused by validation
            raise RuntimeError("no secret key outside development")
        if self._development_key is None:
            logger.warning("LOKALNIE_SECRET_KEY is not set: access tokens are signed with a per-process key")
            self._development_key = secrets.token_urlsafe(48)
        return self._development_key


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` may not sign tokens in production, or None if it may."""
    if len(key) < SECRET_KEY_MIN_CHARS:
        return f"must be at least {SECRET_KEY_MIN_CHARS} characters"
    lowered = key.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS) or len(set(key)) < 8:
        return "looks like a placeholder; generate one with: openssl rand -base64 48"
    return None


def parse_rate(rate: str, name: str = "rate") -> tuple[int, float]:
    """``count/unit`` as (count, period in seconds); ValueError naming ``name`` otherwise."""
    match = _RATE_PATTERN.match(rate)
    if match is None or int(match["count"]) < 1:
        raise ValueError(
            f"{name}: {rate!r} is not count/unit with count >= 1 and unit second|minute|hour|day"
        )
    return int(match["count"]), float(_UNIT_S[match["unit"]])
