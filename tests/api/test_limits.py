"""The limits and the headers: request bodies over the limit (413, JSON), rate limits (429 with Retry-After),
the client's address behind trusted proxies, CORS for configured origins only, security headers on every
answer and a strict Content-Security-Policy on HTML pages; and the settings that configure them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.staticfiles import StaticFiles

from cloud.api import routes
from cloud.api.limits import (
    HTML_CSP,
    Rate,
    RateLimiter,
    SecurityHeadersMiddleware,
    client_address,
    parse_networks,
)
from cloud.api.main import create_app
from cloud.api.security import Public, UndeclaredAccess, install_rules, mount_public
from cloud.settings import DEFAULT_RATE_LIMITS, Settings
from common.clock import SystemClock
from tests.api.conftest import Now, SecuredApi, open_api, sqlite_only

REFRESH = "/api/v1/auth/refresh"


@pytest.fixture
def configured(registered: tuple[Settings, list[str]]) -> Iterator[SecuredApi]:
    """The app with CORS for one origin, a trusted proxy and a small body limit."""
    settings, school_ids = registered
    settings = settings.model_copy(
        update={
            "cors_origins": ("https://zdunskawola.pl",),
            "trusted_proxies": ("10.0.0.0/8",),
            "max_body_bytes": 4096,
            "rate_limits": {"auth": "3/minute"},
        }
    )
    yield from open_api(settings, school_ids)


@sqlite_only
def test_a_body_over_the_limit_is_refused_with_413_in_json(configured: SecuredApi) -> None:
    big = {"refresh_token": "x" * 5000}
    response = configured.client.post(REFRESH, json=big)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 4096 bytes"}
    assert response.headers["x-content-type-options"] == "nosniff"

    def chunks() -> Iterator[bytes]:
        yield b'{"refresh_token": "'
        yield b"x" * 5000
        yield b'"}'

    # Without a Content-Length the bytes are counted as they come.
    streamed = configured.client.post(REFRESH, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "detail" in streamed.json()
    assert configured.client.post(REFRESH, json={"refresh_token": "x" * 40}).status_code == 401


@sqlite_only
def test_a_public_write_route_answers_429_with_retry_after_per_client(configured: SecuredApi) -> None:
    statuses = [configured.client.post(REFRESH, json={"refresh_token": "t"}).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = configured.client.post(REFRESH, json={"refresh_token": "t"})
    assert limited.json() == {"detail": "too many requests; try again in 20 s"}
    assert limited.headers["retry-after"] == "20"
    # Clients behind the trusted proxy have their own buckets; the proxy itself does not share theirs.
    with TestClient(configured.app, client=("10.0.0.5", 50000)) as proxy:
        for address in ("203.0.113.9", "203.0.113.10"):
            statuses = [
                proxy.post(
                    REFRESH, json={"refresh_token": "t"}, headers={"X-Forwarded-For": address}
                ).status_code
                for _ in range(4)
            ]
            assert statuses == [401, 401, 401, 429]
    configured.now.advance(20)
    assert configured.client.post(REFRESH, json={"refresh_token": "t"}).status_code == 401


@sqlite_only
def test_cors_admits_the_configured_origins_only(configured: SecuredApi) -> None:
    allowed = configured.client.get("/api/v1/schools", headers={"Origin": "https://zdunskawola.pl"})
    assert allowed.headers["access-control-allow-origin"] == "https://zdunskawola.pl"
    assert "access-control-allow-credentials" not in allowed.headers
    other = configured.client.get("/api/v1/schools", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = configured.client.options(
        "/api/v1/auth/me",
        headers={
            "Origin": "https://zdunskawola.pl",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    refused = configured.client.options(
        "/api/v1/auth/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 400


@sqlite_only
def test_every_answer_carries_the_security_headers(api: SecuredApi) -> None:
    for response in (
        api.client.get("/api/v1/schools"),
        api.client.get("/nowhere"),
        api.client.get("/api/v1/auth/me"),
        api.client.get("/openapi.json"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in response.headers
    assert api.client.get("/api/v1/auth/me").headers["cache-control"] == "no-store"
    assert "cache-control" not in api.client.get("/api/v1/schools").headers


def test_html_pages_get_the_strict_policy() -> None:
    page = FastAPI()

    @page.get("/kalkulator/", response_class=HTMLResponse)
    def index() -> str:
        return "<!doctype html><script src='app.js'></script>"

    page.add_middleware(SecurityHeadersMiddleware, hsts=True)
    with TestClient(page) as client:
        response = client.get("/kalkulator/")
    assert response.headers["content-security-policy"] == HTML_CSP
    assert (
        "script-src 'self'" in HTML_CSP and "unsafe-inline" not in HTML_CSP and "unsafe-eval" not in HTML_CSP
    )
    assert response.headers["strict-transport-security"].startswith("max-age=")


@sqlite_only
def test_an_internal_error_is_a_bare_500_with_the_headers(
    registered: tuple[Settings, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = APIRouter()

    @broken.get("/api/v1/broken", dependencies=[Public()])
    def fail() -> None:
        raise RuntimeError("secret detail")

    combined = APIRouter()
    combined.include_router(routes.api_router)
    combined.include_router(broken)
    monkeypatch.setattr("cloud.api.main.api_router", combined)
    settings, school_ids = registered
    for api in open_api(settings, school_ids):
        response = api.client.get("/api/v1/broken")
        assert response.status_code == 500
        assert response.json() == {"detail": "internal error"}
        assert response.headers["x-content-type-options"] == "nosniff"


def _connection(peer: str, forwarded: str | None = None) -> HTTPConnection:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return HTTPConnection({"type": "http", "client": (peer, 1234), "headers": headers})


def test_x_forwarded_for_is_believed_from_trusted_proxies_only() -> None:
    proxies = parse_networks(["10.0.0.0/8", "192.0.2.1"])
    assert client_address(_connection("198.51.100.7", "1.2.3.4"), proxies) == "198.51.100.7"
    assert client_address(_connection("10.1.2.3", "1.2.3.4"), proxies) == "1.2.3.4"
    # The client may write anything at the far end; the nearest untrusted hop counts.
    assert client_address(_connection("10.1.2.3", "6.6.6.6, 1.2.3.4, 192.0.2.1"), proxies) == "1.2.3.4"
    assert client_address(_connection("10.1.2.3", "not-an-address"), proxies) == "10.1.2.3"
    assert client_address(_connection("10.1.2.3"), proxies) == "10.1.2.3"
    assert client_address(_connection("10.1.2.3", "1.2.3.4"), ()) == "10.1.2.3"


def test_the_token_bucket_allows_a_burst_then_refills() -> None:
    now = Now(0)
    limiter = RateLimiter({"estimates": Rate(3, 60.0)}, now, max_clients=2)
    assert [limiter.acquire("estimates", "a") for _ in range(4)] == [0, 0, 0, 20]
    now.advance(20)
    assert limiter.acquire("estimates", "a") == 0
    assert limiter.acquire("estimates", "a") == 20
    assert limiter.acquire("estimates", "b") == 0
    # A third client pushes out the least recently seen, which starts afresh.
    assert limiter.acquire("estimates", "c") == 0
    assert limiter.acquire("estimates", "a") == 0


def test_production_settings_need_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOKALNIE_ENV", "LOKALNIE_SECRET_KEY", "LOKALNIE_CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOKALNIE_ENV", "production")
    with pytest.raises(ValidationError, match="LOKALNIE_SECRET_KEY must be set"):
        Settings()
    for placeholder in (
        "change-me",
        "change-me-please-change-me-please-00",
        "a" * 40,
        "lokalnie-secret-key-for-production!!",
    ):
        monkeypatch.setenv("LOKALNIE_SECRET_KEY", placeholder)
        with pytest.raises(ValidationError, match="LOKALNIE_SECRET_KEY"):
            Settings()
    monkeypatch.setenv("LOKALNIE_SECRET_KEY", "q7Vn0c2pXwR4tY8uJk3mZs9bLh6dFg1eAa5iOo0wEe")
    settings = Settings()
    assert settings.signing_key().startswith("q7Vn") and "q7Vn" not in repr(settings)
    monkeypatch.setenv("LOKALNIE_CORS_ORIGINS", "*")
    with pytest.raises(ValidationError, match="may not be"):
        Settings()


def test_development_settings_make_a_key_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOKALNIE_SECRET_KEY", raising=False)
    monkeypatch.delenv("LOKALNIE_ENV", raising=False)
    first, second = Settings(), Settings()
    assert first.env == "development"
    assert first.signing_key() == first.signing_key() != second.signing_key()
    assert len(first.signing_key()) >= 32


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("LOKALNIE_CORS_ORIGINS", "https://a.pl/path", "not an origin"),
        ("LOKALNIE_TRUSTED_PROXIES", "proxy.local", "not an IP"),
        ("LOKALNIE_RATE_LIMITS", "estimates=many", "count/unit"),
        ("LOKALNIE_RATE_LIMITS", "guesses=1/minute", "no rate limit called 'guesses'"),
        ("LOKALNIE_ACCESS_TOKEN_TTL_S", "86400", "LOKALNIE_ACCESS_TOKEN_TTL_S"),
        ("LOKALNIE_MAX_BODY_BYTES", "10", "LOKALNIE_MAX_BODY_BYTES"),
    ],
)
def test_bad_limit_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=words):
        Settings()


def test_settings_lists_parse_from_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKALNIE_CORS_ORIGINS", "https://zdunskawola.pl, http://localhost:8080")
    monkeypatch.setenv("LOKALNIE_TRUSTED_PROXIES", "10.0.0.1,fd00::/8")
    monkeypatch.setenv("LOKALNIE_RATE_LIMITS", "estimates=60/minute, applications=5/hour")
    settings = Settings()
    assert settings.cors_origins == ("https://zdunskawola.pl", "http://localhost:8080")
    assert settings.trusted_proxies == ("10.0.0.1", "fd00::/8")
    assert settings.rates()["estimates"] == (60, 60.0) and settings.rates()["applications"] == (5, 3600.0)
    assert set(settings.rates()) == set(DEFAULT_RATE_LIMITS)


def test_hsts_is_sent_in_production() -> None:
    settings = Settings(
        database_url="sqlite:///:memory:",
        env="production",
        secret_key="q7Vn0c2pXwR4tY8uJk3mZs9bLh6dFg1eAa5iOo0wEe",
    )
    with TestClient(create_app(settings, SystemClock())) as client:
        assert client.get("/openapi.json").headers["strict-transport-security"].startswith("max-age=31536000")


def test_a_mounted_page_is_public_and_gets_the_html_policy(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        "<!doctype html><title>Kalkulator</title><script src=app.js></script>"
    )
    app = FastAPI(openapi_url=None)
    mount_public(app, "/kalkulator", StaticFiles(directory=tmp_path, html=True), name="kalkulator")
    (permission,) = install_rules(app, {})
    assert (permission.method, permission.path, permission.rule.who()) == (
        "GET",
        "/kalkulator/{path}",
        "public",
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=False)
    with TestClient(app) as client:
        page = client.get("/kalkulator/")
    assert page.status_code == 200 and page.headers["content-security-policy"] == HTML_CSP
    unmounted = FastAPI(openapi_url=None)
    unmounted.mount("/files", StaticFiles(directory=tmp_path))
    with pytest.raises(UndeclaredAccess, match="'/files' has no access rule"):
        install_rules(unmounted, {})
