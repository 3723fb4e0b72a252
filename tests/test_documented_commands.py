"""Every `lokalnie` command the documentation tells a person to run exists: the tests run most commands
through their functions, so a command left out of the `lokalnie` program would otherwise go unnoticed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from lokalnie.cli import app

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted(REPO.glob("deploy/**/README.md")),
    *sorted(REPO.glob("firmware-config/**/README.md")),
]
# Fenced blocks and inline code: where a command is written to be typed.
CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.DOTALL)
# "lokalnie <command> [<subcommand>]", not a path (/opt/lokalnie) or a name (lokalnie-edge).
NAMED = re.compile(r"(?<![\w/.-])lokalnie ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?")


def named_commands(document: Path) -> set[tuple[str, str | None]]:
    found = set()
    for block in CODE.finditer(document.read_text()):
        for match in NAMED.finditer(block.group(1) or block.group(2)):
            found.add((match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_command_a_document_names_exists(document: Path) -> None:
    # Groups (the program, `smog`, `broker`...) have their commands by name; plain commands have none.
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    missing = []
    for command, word in sorted(named_commands(document), key=str):
        found = commands.get(command)
        if found is None:
            missing.append(f"lokalnie {command}")
        elif word is not None and word not in getattr(found, "commands", {word: None}):
            missing.append(f"lokalnie {command} {word}")
    assert missing == []


def test_the_documents_name_commands_at_all() -> None:
    named = set().union(*(named_commands(document) for document in DOCUMENTS))
    assert {("ingest", None), ("timeseries-sink", None), ("smog", "purge")} <= named
