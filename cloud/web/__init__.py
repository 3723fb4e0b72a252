"""The residents' web pages, static files served by the API: the Stop Smog calculator and application form
at ``/kalkulator/`` (plain HTML, CSS and ES modules, no build step, nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
SMOG_DIR = STATIC_DIR / "smog"
SMOG_PATH = "/kalkulator"

# Scripts, styles and requests from this server only; no inline script or style, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The status link's secret travels in the URL fragment; never let a URL leave in a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecureStaticFiles(StaticFiles):
    """Static files with the page's security headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        if path.endswith((".js", ".css", ".html")) or path in ("", "."):
            response.headers["Cache-Control"] = "no-cache"
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the Stop Smog page at ``/kalkulator/`` (``index.html``, ``app.js``, ``style.css``), declared
    public for `cloud.api.security.install_rules` (call this before it)."""
    from cloud.api.security import Public, declare

    app.mount(SMOG_PATH, SecureStaticFiles(directory=SMOG_DIR, html=True), name="kalkulator")
    declare(app.router.routes[-1], Public())
