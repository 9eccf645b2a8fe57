"""Single-row reads and writes for the postback hot path, with their SQL built once per model.

The ORM compiles every statement anew, and on this machine that compiling was most of a
postback's cost: about 0.6 ms of CPU per statement against 0.15 ms to send the same SQL
(bench/ingest.py). These helpers write that SQL once per model from its metadata and run it
through Django's connection, so transactions, execute wrappers and query logging still apply.
Values go through each field's own `pre_save`/`get_db_prep_save` on the way in and its
converters on the way out, as the ORM does, so instances behave as if the ORM had made them.

Only what the pipeline needs: `get()` (optionally locking the row), `exists()`, `insert()`
(optionally doing nothing on a unique conflict, or only if a condition holds) and `update()`, and
the statements of the last two, to compose into one (`insert_statement()`, `update_statement()`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import psycopg
from django.conf import settings
from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model


class PreparedCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares each statement the first time it runs."""

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        # Django switches preparing off (None), and psycopg then ignores prepare=True. Any number
        # turns it back on; Django's own cursors bind on the client and never prepare.
        if connection.prepare_threshold is None:
            connection.prepare_threshold = 5

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


@contextmanager
def cursor(using: str = "default") -> Iterator[CursorWrapper]:
    """Django's cursor (health check, execute wrappers, query log), preparing its statements on
    PostgreSQL with POSTBACK_PREPARED_STATEMENTS.

    Django binds parameters into the SQL text, so PostgreSQL parses and plans every statement
    anew: for a postback's long INSERTs that was half its CPU (bench/ingest.py). These statements
    are few and always the same, so each connection prepares them once. Only them: a dashboard
    query prepared would be planned once for any parameters, and a generic plan doubled the time
    of a page at a million events (bench/dashboard.py --runs 25). While Django logs queries (DEBUG,
    assertNumQueries) its own cursor is kept: the log can only show the SQL of a client-bound one.
    """
    connection = connections[using]
    with connection.cursor() as wrapper:
        prepare = settings.POSTBACK_PREPARED_STATEMENTS and not connection.queries_logged
        if prepare and connection.vendor == "postgresql":
            wrapper.cursor.close()
            wrapper.cursor = PreparedCursor(connection.connection)
        yield wrapper


def _quote(using: str, name: str) -> str:
    return connections[using].ops.quote_name(name)


def _fields(model: type[Model]) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@cache
def _select_sql(model: type[Model], using: str, column: str, lock: bool) -> str:
    connection = connections[using]
    columns = ", ".join(_quote(using, f.column) for f in model._meta.concrete_fields)
    sql = f"SELECT {columns} FROM {_quote(using, model._meta.db_table)} WHERE {_quote(using, column)} = %s"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql


@cache
def _converters(model: type[Model], using: str) -> list[tuple[int, list, object]]:
    """Per column: the backend's and the field's converters, as the SQL compiler applies them."""
    connection = connections[using]
    result = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if converters:
            result.append((index, converters, column))
    return result


def _prepared(model: type[Model], name: str, value, using: str):
    """A value to compare a field with, as the ORM prepares it for a lookup."""
    return model._meta.get_field(name).get_db_prep_value(value, connections[using], prepared=False)


def get(model: type[Model], field: str, value, *, lock: bool = False, using: str = "default"):
    """The one row whose `field` (unique) equals `value`, or None; `lock` reads it FOR UPDATE."""
    column = model._meta.get_field(field).column
    connection = connections[using]
    with cursor(using) as db:
        db.execute(_select_sql(model, using, column, lock), [_prepared(model, field, value, using)])
        row = db.fetchone()
    if row is None:
        return None
    row = list(row)
    for index, converters, column in _converters(model, using):
        for converter in converters:
            row[index] = converter(row[index], column, connection)
    return model.from_db(using, [f.attname for f in model._meta.concrete_fields], row)


@cache
def _exists_sql(model: type[Model], using: str, lookups: tuple[tuple[str, bool], ...]) -> str:
    conditions = " AND ".join(
        f"{_quote(using, model._meta.get_field(name).column)} " + ("IS NULL" if is_null else "= %s")
        for name, is_null in lookups
    )
    return f"SELECT 1 FROM {_quote(using, model._meta.db_table)} WHERE {conditions} LIMIT 1"


def exists(model: type[Model], *, using: str = "default", **equal) -> bool:
    """Is there a row whose fields equal these values (None: IS NULL)? Field names, not lookups."""
    key = tuple((name, value is None) for name, value in equal.items())
    params = [_prepared(model, name, value, using) for name, value in equal.items() if value is not None]
    with cursor(using) as db:
        db.execute(_exists_sql(model, using, key), params)
        return db.fetchone() is not None


@cache
def _insert_sql(
    model: type[Model], using: str, unique: str | None, where: str | None, computed: tuple, source: str | None
) -> str:
    fields = _fields(model)
    expressions = dict(computed)
    columns = ", ".join(_quote(using, f.column) for f in fields)
    values = ", ".join(expressions.get(f.name, "%s") for f in fields)
    sql = f"INSERT INTO {_quote(using, model._meta.db_table)} ({columns}) "
    if where or source:
        sql += f"SELECT {values}" + (f" FROM {source}" if source else "") + (f" WHERE {where}" if where else "")
    else:
        sql += f"VALUES ({values})"
    if unique is not None:
        sql += f" ON CONFLICT ({_quote(using, model._meta.get_field(unique).column)}) DO NOTHING"
    return sql + f" RETURNING {_quote(using, model._meta.pk.column)}"


def insert_values(obj: Model, using: str = "default", skip: frozenset[str] = frozenset()) -> list:
    """The instance's values ready for the database, in `_fields()` order (the ORM's preparation)."""
    connection = connections[using]
    return [
        field.get_db_prep_save(field.pre_save(obj, True), connection)
        for field in _fields(type(obj))
        if field.name not in skip
    ]


def insert_statement(
    obj: Model,
    *,
    unique: str | None = None,
    where: tuple[str, list] | None = None,
    computed: dict[str, str] | None = None,
    source: str | None = None,
    using: str = "default",
) -> tuple[str, list]:
    """The INSERT that `insert()` runs (SQL and parameters, `RETURNING` the new primary key), to
    compose into a larger statement: `computed` gives an SQL expression for some fields instead of
    the instance's values, and `source` a FROM clause those expressions may use."""
    computed = computed or {}
    sql, params = where or (None, [])
    statement = _insert_sql(type(obj), using, unique, sql, tuple(sorted(computed.items())), source)
    return statement, [*insert_values(obj, using, frozenset(computed)), *params]


def insert(
    obj: Model, *, unique: str | None = None, where: tuple[str, list] | None = None, using: str = "default"
) -> bool:
    """INSERT the instance and set its primary key; False if no row was inserted.

    With `unique` (a field with a unique constraint), a row already holding that value makes this
    do nothing, with no error (so no savepoint is needed around it). With `where` (SQL and its
    parameters), the row is inserted only if that condition holds when the statement runs.
    """
    with cursor(using) as db:
        db.execute(*insert_statement(obj, unique=unique, where=where, using=using))
        row = db.fetchone()
    if row is None:
        return False
    saved(obj, row[0], using)
    return True


def saved(obj: Model, pk, using: str = "default") -> None:
    """Mark an instance as stored with primary key `pk`, as Model.save() would."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = using


@cache
def _update_sql(model: type[Model], using: str, names: tuple[str, ...], computed: tuple, source: str | None) -> str:
    expressions = dict(computed)
    assignments = ", ".join(
        f"{_quote(using, model._meta.get_field(name).column)} = {expressions.get(name, '%s')}" for name in names
    )
    table = _quote(using, model._meta.db_table)
    where = f"{table}.{_quote(using, model._meta.pk.column)} = %s"
    return f"UPDATE {table} SET {assignments}" + (f" FROM {source}" if source else "") + f" WHERE {where}"


def update_statement(
    obj: Model,
    names: list[str] | None = None,
    *,
    computed: dict[str, str] | None = None,
    source: str | None = None,
    using: str = "default",
) -> tuple[str, list]:
    """The UPDATE that `update()` runs (SQL and parameters), to compose into a larger statement;
    `computed` and `source` as for `insert_statement()`."""
    model = type(obj)
    computed = computed or {}
    names = tuple(names) if names is not None else tuple(f.name for f in _fields(model))
    connection = connections[using]
    values = []
    for name in names:
        if name not in computed:
            field = model._meta.get_field(name)
            values.append(field.get_db_prep_save(field.pre_save(obj, False), connection))
    return _update_sql(model, using, names, tuple(sorted(computed.items())), source), [*values, obj.pk]


def update(obj: Model, names: list[str] | None = None, *, using: str = "default") -> None:
    """UPDATE the named fields (default: every field) of a stored instance."""
    with cursor(using) as db:
        db.execute(*update_statement(obj, names, using=using))
