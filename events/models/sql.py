"""Every hand-written SQL statement of the project, behind named functions.

The ORM compiles every statement anew, and on this machine that compiling was most of a
postback's cost: about 0.6 ms of CPU per statement against 0.15 ms to send the same SQL
(bench/ingest.py). The postback path's single-row reads and writes are therefore written here
once per model from its metadata and run through Django's connection, so transactions, execute
wrappers and query logging still apply. Values go through each field's own
`pre_save`/`get_db_prep_save` on the way in and its converters on the way out, as the ORM does,
so instances behave as if the ORM had made them.

- Single rows: `get()` (optionally locking it), `exists()`, `insert()` (optionally doing nothing
  on a unique conflict), `update()`.
- The postback path's guarded writes: `insert_delivery_if_authenticated()`,
  `insert_action_if_brand_unchanged()`, `create_first_postback()`.
- Advisory locks (`advisory_lock()`, `advisory_xact_lock()`) and the silent-brand query
  (`recent_postbacks_per_brand()`), which the ORM cannot express.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

import psycopg
from django.conf import settings
from django.db import connection as default_connection
from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model

from .actions import Action, ActionEvent, Brand
from .deliveries import AllowedNetwork, Credential, Delivery
from .reconciliation import ApiChange


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


def _insert_values(obj: Model, using: str = "default", skip: frozenset[str] = frozenset()) -> list:
    """The instance's values ready for the database, in `_fields()` order (the ORM's preparation)."""
    connection = connections[using]
    return [
        field.get_db_prep_save(field.pre_save(obj, True), connection)
        for field in _fields(type(obj))
        if field.name not in skip
    ]


def _insert_statement(
    obj: Model,
    *,
    unique: str | None = None,
    where: tuple[str, list] | None = None,
    computed: dict[str, str] | None = None,
    source: str | None = None,
    using: str = "default",
) -> tuple[str, list]:
    """The INSERT that `_insert()` runs (SQL and parameters, `RETURNING` the new primary key), to
    compose into a larger statement: `computed` gives an SQL expression for some fields instead of
    the instance's values, and `source` a FROM clause those expressions may use."""
    computed = computed or {}
    sql, params = where or (None, [])
    statement = _insert_sql(type(obj), using, unique, sql, tuple(sorted(computed.items())), source)
    return statement, [*_insert_values(obj, using, frozenset(computed)), *params]


def insert(obj: Model, *, unique: str | None = None, using: str = "default") -> bool:
    """INSERT the instance and set its primary key; False if no row was inserted.

    With `unique` (a field with a unique constraint), a row already holding that value makes this
    do nothing, with no error (so no savepoint is needed around it).
    """
    return _insert(obj, unique=unique, using=using)


def _insert(
    obj: Model, *, unique: str | None = None, where: tuple[str, list] | None = None, using: str = "default"
) -> bool:
    """`insert()`, made only if `where` (SQL and its parameters) holds when the statement runs."""
    with cursor(using) as db:
        db.execute(*_insert_statement(obj, unique=unique, where=where, using=using))
        row = db.fetchone()
    if row is None:
        return False
    _saved(obj, row[0], using)
    return True


def _saved(obj: Model, pk, using: str = "default") -> None:
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


def _update_statement(
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
        db.execute(*_update_statement(obj, names, using=using))


# --- The postback path's guarded writes --------------------------------------------------------
# Table names come from the models; every value is a parameter.


def insert_delivery_if_authenticated(delivery: Delivery, credential: Credential, networks: Sequence[str], now) -> bool:
    """INSERT the delivery only while `credential` is unchanged, active and unexpired at `now`, and
    the active allow-list holds exactly `networks` (what the request was checked against)."""
    sql = (
        f"EXISTS (SELECT 1 FROM {Credential._meta.db_table} WHERE id = %s AND secret_hash = %s AND active"
        " AND (expires_at IS NULL OR expires_at > %s))"
        f" AND (SELECT COUNT(*) FROM {AllowedNetwork._meta.db_table} WHERE active) = %s"
    )
    params = [credential.pk, credential.secret_hash, now, len(networks)]
    if networks:
        placeholders = ", ".join(["%s"] * len(networks))
        table = AllowedNetwork._meta.db_table
        sql += f" AND NOT EXISTS (SELECT 1 FROM {table} WHERE active AND cidr NOT IN ({placeholders}))"
        params += list(networks)
    return _insert(delivery, where=(sql, params))


def _brand_unchanged(action: Action, campaign_id: str) -> tuple[str, list]:
    """True while the brand remembered for the action's campaign still has that id (an admin may
    delete a brand that has no actions, and SQLite may give its id to another)."""
    return f"EXISTS (SELECT 1 FROM {Brand._meta.db_table} WHERE id = %s AND campaign_id = %s)", [
        action.brand_id,
        campaign_id,
    ]


def insert_action_if_brand_unchanged(action: Action, campaign_id: str) -> bool:
    """INSERT a new action; False if another transaction created it first, or if its brand is no
    longer the one remembered for `campaign_id`."""
    return _insert(action, unique="action_id", where=_brand_unchanged(action, campaign_id))


def create_first_postback(
    action: Action, event: ActionEvent, delivery: Delivery, outcome_fields: list[str], campaign_id: str
) -> bool:
    """An action's first postback in one statement: the action, its first event and the delivery's
    outcome (`outcome_fields` and its event), written only if the action is still unknown, its
    brand unchanged, and no change reported by impact.com's API waits for this action's postback.
    False, with nothing written, otherwise. PostgreSQL only (SQLite has no INSERT in a WITH)."""
    brand_sql, brand_params = _brand_unchanged(action, campaign_id)
    waiting = (
        f"NOT EXISTS (SELECT 1 FROM {ApiChange._meta.db_table} WHERE action_id = %s AND postback_event_id IS NULL)"
    )
    where = (f"{brand_sql} AND {waiting}", [*brand_params, action.action_id])
    action_sql, action_params = _insert_statement(action, unique="action_id", where=where)
    event_sql, event_params = _insert_statement(event, computed={"action": "new_action.id"}, source="new_action")
    delivery_sql, delivery_params = _update_statement(
        delivery, [*outcome_fields, "event"], computed={"event": "new_event.id"}, source="new_event"
    )
    sql = (
        f"WITH new_action AS ({action_sql}), new_event AS ({event_sql}), outcome AS ({delivery_sql}) "
        "SELECT new_action.id, new_event.id FROM new_action, new_event"
    )
    with cursor() as db:
        db.execute(sql, [*action_params, *event_params, *delivery_params])
        row = db.fetchone()
    if row is None:
        return False
    _saved(action, row[0])
    event.action = action
    _saved(event, row[1])
    delivery.event = event
    return True


# --- Locks and the silent-brand query -----------------------------------------------------------


@contextmanager
def advisory_lock(key: int) -> Iterator[bool]:
    """A PostgreSQL session advisory lock, if free (yields whether it was taken); always granted on
    SQLite, where one process at a time is the deployment."""
    if default_connection.vendor != "postgresql":
        yield True
        return
    with default_connection.cursor() as db:
        db.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = db.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with default_connection.cursor() as db:
                db.execute("SELECT pg_advisory_unlock(%s)", [key])


def advisory_xact_lock(key: int) -> None:
    """Wait for a PostgreSQL advisory lock held to the end of the transaction (SQLite's IMMEDIATE
    transactions already run one writer at a time)."""
    if default_connection.vendor == "postgresql":
        with default_connection.cursor() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def recent_postbacks_per_brand(source: str, sample: int) -> dict[int, tuple]:
    """{brand id: (newest, oldest, count)} over each brand's last `sample` events from `source`:
    one LATERAL query, an index range scan (event_brand_recv) per brand. PostgreSQL only."""
    sql = f"""
        SELECT b.id, max(x.received_at), min(x.received_at), count(*) FROM {Brand._meta.db_table} b
        CROSS JOIN LATERAL (
            SELECT e.received_at FROM {ActionEvent._meta.db_table} e
            WHERE e.brand_id = b.id AND e.source = %s
            ORDER BY e.received_at DESC, e.id DESC LIMIT %s
        ) x
        GROUP BY b.id"""
    with default_connection.cursor() as db:
        db.execute(sql, [source, sample])
        return {brand_id: (newest, oldest, n) for brand_id, newest, oldest, n in db.fetchall()}
