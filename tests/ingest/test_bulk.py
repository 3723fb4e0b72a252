"""The array literals the ingest sends PostgreSQL its rows in: whatever the values, the server reads back
exactly what was sent."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.ingest.bulk import array_literal
from tests import servers

# Any text PostgreSQL can hold (no NUL), with the characters an array literal treats specially well
# represented.
_texts = st.text(
    st.one_of(
        st.sampled_from(list("\"\\,{} \t\nNULLnull'")),
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    ),
    max_size=12,
)
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "text": _texts,
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "double precision": st.floats(allow_nan=False, width=64),
    "boolean": st.booleans(),
}


@pytest.fixture(scope="module")
def connection(postgres_server: servers.Postgres) -> Iterator[sqlalchemy.Connection]:
    engine = sqlalchemy.create_engine(postgres_server.url)
    with engine.connect() as open_connection:
        yield open_connection
    engine.dispose()


def _read_back(connection: sqlalchemy.Connection, values: list[Any], sql_type: str) -> list[Any]:
    literal = array_literal(values, sql_type)
    result = connection.exec_driver_sql(f"SELECT %s::{sql_type}[]", (literal,)).scalar_one()
    return list(result)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), sql_type=st.sampled_from(sorted(_VALUES)))
def test_values_of_every_type_come_back_unchanged(
    connection: sqlalchemy.Connection, data: st.DataObject, sql_type: str
) -> None:
    values = data.draw(st.lists(st.one_of(st.none(), _VALUES[sql_type]), max_size=20))
    assert _read_back(connection, values, sql_type) == values


def test_json_texts_keep_their_quotes_and_escapes(connection: sqlalchemy.Connection) -> None:
    documents = [{"a": 1.5, "b": None}, {"quote": 'say "hi"', "path": "C:\\temp"}, {}]
    texts = [json.dumps(document) for document in documents]
    assert _read_back(connection, texts, "text") == texts
    found = connection.exec_driver_sql(
        "SELECT json_agg(x::json) FROM unnest(%s::text[]) AS x", (array_literal(texts, "json"),)
    ).scalar_one()
    assert found == documents


def test_infinite_floats_and_empty_lists(connection: sqlalchemy.Connection) -> None:
    assert _read_back(connection, [math.inf, -math.inf, 0.1 + 0.2], "double precision") == [
        math.inf,
        -math.inf,
        0.1 + 0.2,
    ]
    assert _read_back(connection, [], "bigint") == []


def test_a_text_holding_nul_is_refused_not_split() -> None:
    with pytest.raises(ValueError, match="NUL"):
        array_literal(["a\x00b", "c"], "text")
    with pytest.raises(ValueError, match="no array literal"):
        array_literal([1], "numeric")
