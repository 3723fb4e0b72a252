"""The smog routers and the residents' page over a database with the sample data, for a real server in the
page test: ``uvicorn --factory tests.smog_api.serve:create`` with ``SMOG_TEST_DATABASE_URL`` set."""

from __future__ import annotations

import os

from fastapi import FastAPI

from cloud.applications.config import ApplicationsConfig
from cloud.db.engine import make_engine
from common.clock import SystemClock
from tests.smog_api.conftest import build_app, load_sample


def create() -> FastAPI:
    engine = make_engine(os.environ["SMOG_TEST_DATABASE_URL"])
    load_sample(engine)
    return build_app(engine, SystemClock(), ApplicationsConfig.for_tests(), with_page=True)
