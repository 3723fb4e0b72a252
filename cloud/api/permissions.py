"""The permission table of docs/permissions.md: every method and path of the app, who may call it, its rate
limit and its body limit, rendered from the rules the routes declare and read back for the test that holds
the document to the app.

``python -m cloud.api.permissions`` prints the table; ``--write docs/permissions.md`` replaces the table
between the document's markers.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from cloud.api.security import RoutePermission, route_permissions
from cloud.settings import DEFAULT_RATE_LIMITS

BEGIN = "<!-- permissions:begin -->"
END = "<!-- permissions:end -->"
HEADER = ("Method", "Path", "Who may call", "Rate limit", "Body limit")
NONE = "—"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    method: str
    path: str
    who: str
    rate_limit: str
    body_limit: str

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


def _size(limit: int | None) -> str:
    if limit is None:
        return NONE
    if limit % _MIB == 0:
        return f"{limit // _MIB} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} B"


def row_of(permission: RoutePermission) -> Row:
    """The table's row for one method and path (rate limits at their defaults)."""
    name = permission.rule.rate_limit
    rate = f"{name} ({DEFAULT_RATE_LIMITS[name]})" if name is not None else NONE
    body = _size(permission.max_body_size) if permission.method in ("POST", "PUT", "PATCH") else NONE
    return Row(permission.method, permission.path, permission.rule.who(), rate, body)


def rows_of(app: FastAPI) -> list[Row]:
    return [row_of(permission) for permission in route_permissions(app)]


def render(rows: list[Row]) -> str:
    """The Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += [f"| {r.method} | `{r.path}` | {r.who} | {r.rate_limit} | {r.body_limit} |" for r in rows]
    return "\n".join(lines) + "\n"


def parse(text: str) -> list[Row]:
    """The rows of the table between the markers of ``text`` (the whole text if it has none)."""
    if BEGIN in text and END in text:
        text = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = []
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if tuple(cells) == HEADER or all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue
        if len(cells) != len(HEADER):
            raise ValueError(f"a table row needs {len(HEADER)} cells: {line!r}")
        method, path, who, rate_limit, body_limit = cells
        rows.append(Row(method.upper(), path.strip("`"), who, rate_limit, body_limit))
    return rows


def _app() -> FastAPI:
    from cloud.api.main import create_app
    from cloud.settings import Settings
    from common.clock import SystemClock

    return create_app(Settings(DATABASE_URL="sqlite:///:memory:", LOKALNIE_ENV="development"), SystemClock())


def main(argv: list[str]) -> int:
    table = render(rows_of(_app()))
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        text = path.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            sys.stderr.write(f"{path} has no {BEGIN} ... {END} markers\n")
            return 1
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        path.write_text(f"{before}{BEGIN}\n{table}{END}{after}", encoding="utf-8")
        return 0
    if argv:
        sys.stderr.write("usage: python -m cloud.api.permissions [--write docs/permissions.md]\n")
        return 2
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
