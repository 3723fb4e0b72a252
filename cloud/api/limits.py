"""What keeps one client from hurting the others: per-client rate limits (429 with Retry-After), request
bodies over their route's limit refused (413), the client's address behind trusted proxies, and the
security headers every response carries (a strict Content-Security-Policy on HTML pages).

The rate limiter's buckets are shared by the API's processes (`cloud.shared_records`): a client gets the
configured rate however many processes serve it.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from cloud.shared_records import SharedRecords

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Clients remembered at most per limiter; the least recently seen are forgotten first.
MAX_TRACKED_CLIENTS = 100_000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- the client's address


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(connection: HTTPConnection, trusted_proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest address in
    X-Forwarded-For that is not a trusted proxy (a client can put anything at the far end of that header)."""
    peer = connection.client.host if connection.client is not None else "unknown"
    if not trusted_proxies or not _in_networks(peer, trusted_proxies):
        return peer
    forwarded = [
        hop.strip() for hop in connection.headers.get("x-forwarded-for", "").split(",") if hop.strip()
    ]
    for hop in reversed(forwarded):
        if not _in_networks(hop, trusted_proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return forwarded[0] if forwarded else peer


# -- rate limits


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period_s`` seconds, in bursts of up to ``count``."""

    count: int
    period_s: float

    def __str__(self) -> str:
        units = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}
        return f"{self.count}/{units.get(self.period_s, f'{self.period_s:g} s')}"


class RateLimiter:
    """Token buckets per (limit name, client): a bucket holds ``count`` tokens and refills at
    ``count / period_s`` per second; a request takes one.

    The buckets are `SharedRecords`: ``records`` (made before the API's processes were forked, see
    `cloud.api.serve`), or a new table of ``max_clients`` buckets.
    """

    def __init__(
        self,
        rates: Mapping[str, Rate],
        now_ms: Callable[[], int],
        max_clients: int = MAX_TRACKED_CLIENTS,
        records: SharedRecords | None = None,
    ) -> None:
        self.rates = dict(rates)
        self.now_ms = now_ms
        # Each bucket: its tokens and when they were counted [ms].
        self._buckets = records if records is not None else rate_limit_records(max_clients)

    def acquire(self, name: str, client: str) -> int:
        """0 if the client may go ahead (a token is taken), else the whole seconds until it may."""
        rate = self.rates[name]
        refill_per_ms = rate.count / (rate.period_s * 1000)
        now = self.now_ms()
        key = f"{name}\n{client}"
        with self._buckets.locked():
            slot, bucket = self._buckets.read(key)
            tokens, counted_ms = (float(bucket[0]), int(bucket[1])) if bucket else (float(rate.count), now)
            tokens = min(float(rate.count), tokens + max(0, now - counted_ms) * refill_per_ms)
            if tokens >= 1.0:
                self._buckets.write(slot, key, now, (tokens - 1.0, now))
                return 0
            self._buckets.write(slot, key, now, (tokens, now))
        return max(1, math.ceil((1.0 - tokens) / refill_per_ms / 1000))


def rate_limit_records(max_clients: int = MAX_TRACKED_CLIENTS) -> SharedRecords:
    """A table for `RateLimiter`'s buckets, shared with the processes forked after it is made."""
    return SharedRecords("dq", max_clients)


# -- request bodies


class ContentLengthMiddleware:
    """Answer 413 in JSON at once when Content-Length is over the limit of the route the request is for
    (``limit_for``; None: no limit). FastAPI's ``max_body_size`` counts the bytes of bodies without a length;
    it would answer such a request in plain text."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit():
                limit = self.limit_for(scope)
                if limit is not None and int(declared) > limit:
                    await _send_json(send, 413, {"detail": f"request body larger than {limit} bytes"})
                    return
        await self.app(scope, receive, send)


# -- headers

#: On every response: no MIME sniffing, no framing, no referrer, no powerful browser features.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), payment=(), usb=(), interest-cohort=()"),
)
#: JSON and everything else that is not a page: nothing may load from it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
#: HTML pages: scripts, styles, images and calls from the same origin only; no inline script, no eval.
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    """Add `SECURITY_HEADERS`, a Content-Security-Policy (`HTML_CSP` for HTML, `API_CSP` otherwise),
    ``Cache-Control: no-store`` on answers to requests that carry credentials or ask for them, and HSTS when
    asked."""

    def __init__(self, app: ASGIApp, hsts: bool, no_store_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.hsts = hsts
        self.no_store_prefixes = no_store_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentials = (
            _has_header(scope, b"authorization")
            or _has_header(scope, b"x-api-key")
            or str(scope.get("path", "")).startswith(self.no_store_prefixes)
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._headers(list(message.get("headers", [])), credentials)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, headers: list[tuple[bytes, bytes]], credentials: bool) -> list[tuple[bytes, bytes]]:
        content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
        extra = security_headers(content_type.decode("latin-1"), hsts=self.hsts)
        if credentials:
            extra["cache-control"] = "no-store"
        present = {name.lower() for name, _ in headers}
        added = [
            (name.encode(), value.encode()) for name, value in extra.items() if name.encode() not in present
        ]
        return headers + added


def security_headers(content_type: str, hsts: bool) -> dict[str, str]:
    """The security headers of a response of ``content_type``."""
    headers = dict(SECURITY_HEADERS)
    headers["content-security-policy"] = HTML_CSP if content_type.startswith("text/html") else API_CSP
    if hsts:
        headers["strict-transport-security"] = HSTS
    return headers


def _has_header(scope: Scope, name: bytes) -> bool:
    return _header(scope, name) is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


async def _send_json(send: Send, status: int, content: Mapping[str, Any]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
