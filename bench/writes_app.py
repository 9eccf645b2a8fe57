"""A third baseline for `bench/ingest.py`: the pipeline's own SQL, with no framework around it.

What the database work of a postback costs by itself. `record()` (run by bench/ingest.py before
the servers start) sends postbacks through the real endpoint in-process and keeps the statements
and parameters of the last one, in its transactions, as Django handed them to psycopg: by then
the process's caches are warm (credentials, brands), as in a running server. This WSGI app replays
those statements for every request with psycopg on one persistent connection per worker, changing
only what must differ per postback: the ActionId (and every value that contains it), the
fingerprint, the ids the INSERTs return, and the times of the request. Before them it sends the
`SELECT 1` of Django's per-request connection health check. Parameters are bound (and statements
prepared) as they were in the product. No Django, no DRF, no parsing beyond
finding the ActionId, no lifecycle decisions: the pipeline can only be slower than this.

    WRITES_SCRIPT=statements.pickle BARE_DATABASE_URL=postgres://... \
        gunicorn -c postbacks_site/gunicorn.conf.py bench.writes_app:application
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from psycopg import Binary
from psycopg.types.json import Jsonb

RECORDED_ACTION_ID = "bench-writes-recorded"
# So that no other number in a statement (a count, a brand id, milliseconds, another table's
# id) can be taken for one of the ids the recorded INSERTs returned, each table's recorded row
# gets an id of its own range.
RECORDED_ID_FLOORS = {"events_delivery": 10**12, "events_action": 2 * 10**12, "events_actionevent": 3 * 10**12}
_RETURNING_TABLE = re.compile(r'^INSERT INTO "?(\w+)"?', re.IGNORECASE)


@dataclass
class Statement:
    sql: str
    params: Any
    in_transaction: bool
    prepared: bool  # run through events.models.sql's preparing cursor (DATABASE_PREPARED_STATEMENTS)
    returns: str | None = None  # the table whose new id the statement returns


@dataclass
class Script:
    statements: list[Statement]
    action_id: str
    fingerprint: str
    ids: dict[str, int]  # table -> id of the recorded row
    started_at: datetime  # datetimes at or after this are the request's own times


def record(path: Path, url: str, headers: dict[str, str]) -> Script:
    """Send two postbacks to `url` through the endpoint in this process; save the SQL of the second."""
    from django.db import connection
    from django.test import Client

    from events.models import ActionEvent, Delivery

    with connection.cursor() as cursor:
        for table, floor in RECORDED_ID_FLOORS.items():
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST(%s, (SELECT COALESCE(MAX(id), 0) FROM "
                f"{table})))",
                [table, floor],
            )
    client = Client(SERVER_NAME="127.0.0.1", **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    client.get(url.replace("\x00", RECORDED_ACTION_ID + "-warm"))  # fills the process's caches
    statements: list[Statement] = []

    def capture(execute, sql, params, many, context):
        prepared = type(context["cursor"].cursor).__name__ == "PreparedCursor"
        statements.append(Statement(sql, params, connection.in_atomic_block, prepared))
        return execute(sql, params, many, context)

    started_at = datetime.now(UTC)
    with connection.execute_wrapper(capture):
        response = client.get(url.replace("\x00", RECORDED_ACTION_ID))
    body = response.json()
    if response.status_code != 200 or body.get("outcome") != "applied":
        raise SystemExit(f"recording the pipeline's statements failed: {response.status_code} {body}")
    delivery = Delivery.objects.select_related("event__action").get(pk=body["delivery"])
    event: ActionEvent = delivery.event
    ids = {"events_delivery": delivery.pk, "events_action": event.action.pk, "events_actionevent": event.pk}
    for statement in statements:
        statement.params = _plain(statement.params)
        match = _RETURNING_TABLE.match(statement.sql)
        if match and "RETURNING" in statement.sql:
            statement.returns = match.group(1)
    script = Script(statements, RECORDED_ACTION_ID, event.fingerprint, ids, started_at)
    path.write_bytes(pickle.dumps(script))
    return script


def _plain(value: Any) -> Any:
    """The value with Python's own types only (choices, Django's JSON wrapper), so the app needs no Django."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Jsonb):
        return Jsonb(_plain(value.obj))
    if isinstance(value, Binary):
        return Binary(value.obj)
    if type(value).__module__.startswith("psycopg."):  # psycopg's own wrappers (Int4...) need no Django
        return value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or type(value) in (str, bytes, bool, int, float, Decimal, datetime, memoryview):
        return value
    raise TypeError(f"cannot replay a parameter of type {type(value).__name__}: {value!r}")


class Replay:
    """The recorded statements for one new ActionId."""

    def __init__(self, script: Script, action_id: str):
        self.script, self.action_id = script, action_id
        self.fingerprint = hashlib.sha256(action_id.encode()).hexdigest()
        self.now = datetime.now(UTC)
        self.ids: dict[int, int] = {}  # recorded id -> the id its replay got

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            if value == self.script.fingerprint:
                return self.fingerprint
            return value.replace(self.script.action_id, self.action_id)
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return self.ids.get(value, value)
        if isinstance(value, datetime):
            return self.now if value >= self.script.started_at else value
        if isinstance(value, Jsonb):
            return Jsonb(self.value(value.obj), dumps=value.dumps)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def run(self, connection: psycopg.Connection) -> None:
        connection.execute("SELECT 1")  # Django's health check of a persistent connection
        pending: list[Statement] = []
        for statement in [*self.script.statements, None]:
            if statement is not None and statement.in_transaction:
                pending.append(statement)
                continue
            if pending:
                with connection.transaction():
                    for queued in pending:
                        self.execute(connection, queued)
                pending = []
            if statement is not None:
                self.execute(connection, statement)

    def execute(self, connection: psycopg.Connection, statement: Statement) -> None:
        # Bind (and prepare) as the product did: Django binds on the client, events.models.sql's cursor
        # on the server, preparing each statement once per connection.
        cursor_class = psycopg.Cursor if statement.prepared else psycopg.ClientCursor
        with cursor_class(connection) as cursor:
            cursor.execute(statement.sql, self.value(statement.params), prepare=statement.prepared or None)
            if statement.returns:
                row = cursor.fetchone()
                if row is None:
                    raise RuntimeError(f"replayed INSERT into {statement.returns} returned no row")
                self.ids[self.script.ids[statement.returns]] = row[0]


_connection: psycopg.Connection | None = None
_script: Script | None = None


def application(environ, start_response):
    global _connection, _script
    if _script is None:
        _script = pickle.loads(Path(os.environ["WRITES_SCRIPT"]).read_bytes())
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["BARE_DATABASE_URL"], autocommit=True)
    query_string = environ.get("QUERY_STRING", "")
    action_id = next((value for name, value in parse_qsl(query_string) if name == "ActionId"), "")
    if not action_id:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [b'{"error": "ActionId missing"}']
    Replay(_script, action_id).run(_connection)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"outcome": "applied"}']
