"""The cloud's configuration: where the database and the broker are, where the site files live, and how the
ingest and the API present themselves. Read from environment variables by pydantic-settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.broker import DEFAULT_BROKER_URL, parse_broker_url

DEFAULT_DATABASE_URL = "sqlite:///var/lokalnie.db"
# A shared-subscription group or a client id goes into MQTT topics and packets: no wildcards, no slashes.
_MQTT_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_DATABASE_SCHEMES = ("sqlite", "postgresql")


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

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme == "postgres":
            scheme = "postgresql"
        if scheme not in _DATABASE_SCHEMES or "://" not in url:
            raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got one starting with {scheme!r}")
        return url

    @field_validator("mqtt_url")
    @classmethod
    def _valid_broker(cls, url: str) -> str:
        parse_broker_url(url)
        return url
