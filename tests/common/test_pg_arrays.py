"""Arrays dumped as text by events.common.pg_arrays: the same bytes as psycopg's own dumper, and
read back unchanged by PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st
from psycopg.adapt import AdaptersMap, PyFormat, Transformer
from psycopg.types.array import ListDumper as PsycopgListDumper

from events.common.pg_arrays import ListDumper

# What needs quoting or escaping in an array's text: quotes, backslashes, braces, commas, spaces,
# the empty string, the word NULL; and JSON, as an event's columns carry it. (Text in PostgreSQL holds
# neither NUL nor lone surrogates.)
AWKWARD = ["", "NULL", "null", 'say "hi"', "back\\slash", '\\"', "{a,b}", " lead", "tab\t", '{"k": ["v", 1]}']
elements = st.one_of(
    st.none(), st.sampled_from(AWKWARD), st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
)


def dumped(dumper_class, value: list) -> bytes:
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(list, dumper_class)
    dumper = Transformer(adapters).get_dumper(value, PyFormat.TEXT)
    assert type(dumper) is dumper_class
    return bytes(dumper.dump(value))


@given(st.lists(elements) | st.lists(st.lists(elements, min_size=2, max_size=2), min_size=1))
def test_same_bytes_as_psycopgs_own_dumper(value):
    assert dumped(ListDumper, value) == dumped(PsycopgListDumper, value)


def test_escapes_quotes_and_backslashes():
    assert dumped(ListDumper, ['a"b', "c\\d", "", None]) == b'{"a\\"b","c\\\\d","",NULL}'


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_reads_back_what_was_written():
    value = [*AWKWARD, None, "ordinary"]
    with connection.cursor() as cursor:
        assert connection.connection.adapters.get_dumper(list, PyFormat.TEXT) is ListDumper
        cursor.execute("SELECT %s::text[]", [value])
        assert cursor.fetchone()[0] == value
