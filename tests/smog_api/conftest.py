"""A small app of the smog routers over a fresh database (SQLite and PostgreSQL) with the sample addresses
and networks, a manual clock and a throw-away encryption key; the officer dependency overridden on demand."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud.api.routes import smog, smog_applications
from cloud.applications.config import ApplicationsConfig
from cloud.applications.tables import create_application_tables
from cloud.db.engine import make_engine, make_session_factory
from cloud.db.models import Base
from cloud.smog import create_smog_tables, import_addresses, import_networks
from common.clock import Clock, ManualClock, parse_iso_ms

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "cloud" / "smog" / "data" / "sample"
NOW_MS = parse_iso_ms("2026-03-02T10:00:00Z")
OFFICER = "officer-7"


def load_sample(engine: Engine) -> None:
    Base.metadata.create_all(engine)  # the store's tables, for the audit log
    create_smog_tables(engine)
    create_application_tables(engine)
    with Session(engine) as session, session.begin():
        import_networks(session, SAMPLE_DIR / "gas.geojson", "gas")
        import_networks(session, SAMPLE_DIR / "heat.geojson", "heat")
        import_addresses(session, SAMPLE_DIR / "addresses.csv")


def build_app(engine: Engine, clock: Clock, config: ApplicationsConfig) -> FastAPI:
    app = FastAPI()
    app.state.sessions = make_session_factory(engine)
    app.state.clock = clock
    app.state.smog_applications = config
    app.include_router(smog.router)
    app.include_router(smog_applications.router)
    return app


@dataclass
class SmogApi:
    client: TestClient
    app: FastAPI
    engine: Engine
    clock: ManualClock
    config: ApplicationsConfig

    def as_officer(self) -> None:
        self.app.dependency_overrides[smog_applications.require_smog_officer] = lambda: OFFICER

    def as_anonymous(self) -> None:
        self.app.dependency_overrides.pop(smog_applications.require_smog_officer, None)


@pytest.fixture
def api(database_url: str) -> Iterator[SmogApi]:
    engine = make_engine(database_url)
    load_sample(engine)
    clock = ManualClock(NOW_MS)
    config = ApplicationsConfig.for_tests(max_proof_bytes=64 * 1024)
    app = build_app(engine, clock, config)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield SmogApi(client, app, engine, clock, config)
    engine.dispose()


# A 1×1 PNG and a minimal PDF: real magic bytes.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def proof_file(
    content: bytes = PNG, name: str = "piec.png", declared: str = "image/png"
) -> dict[str, object]:
    return {"proof": (name, io.BytesIO(content), declared)}
