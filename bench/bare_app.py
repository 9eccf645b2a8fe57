"""The baseline for `bench/ingest.py`: the least a WSGI app can do to keep a postback.

One `INSERT ... ON CONFLICT DO NOTHING` per request (autocommit, so one commit per
request, like the product's store), on one persistent connection per gunicorn worker:
psycopg to PostgreSQL (`BARE_DATABASE_URL`), or sqlite3 to a file (`BARE_SQLITE_PATH`, WAL and
a busy timeout, like the product's SQLite settings). No framework, no authentication, no parsing
beyond finding the ActionId. Run it under the same gunicorn settings as the product:

    BARE_DATABASE_URL=postgres://... gunicorn -c postbacks_site/gunicorn.conf.py bench.bare_app:application
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import parse_qsl

import psycopg

TABLE = "bench_bare_postback"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    action_id text PRIMARY KEY,
    query_string text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
CREATE_TABLE_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    action_id text PRIMARY KEY,
    query_string text NOT NULL,
    received_at text NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""
# psycopg's placeholders; Django's SQLite backend (bench/naive_drf.py) translates them.
INSERT = f"INSERT INTO {TABLE} (action_id, query_string) VALUES (%s, %s) ON CONFLICT DO NOTHING"
INSERT_SQLITE = f"INSERT INTO {TABLE} (action_id, query_string) VALUES (?, ?) ON CONFLICT DO NOTHING"

_connection = None


def create_table_sql(vendor: str) -> str:
    return CREATE_TABLE_SQLITE if vendor == "sqlite" else CREATE_TABLE


def _insert(action_id: str, query_string: str) -> None:
    global _connection
    sqlite_path = os.environ.get("BARE_SQLITE_PATH")
    if sqlite_path:
        if _connection is None:
            _connection = sqlite3.connect(sqlite_path, isolation_level=None, timeout=30)
            _connection.execute("PRAGMA journal_mode=WAL")
        _connection.execute(INSERT_SQLITE, (action_id, query_string))
        return
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["BARE_DATABASE_URL"], autocommit=True)
    with _connection.cursor() as cursor:
        cursor.execute(INSERT, (action_id, query_string))


def application(environ, start_response):
    query_string = environ.get("QUERY_STRING", "")
    action_id = next((value for name, value in parse_qsl(query_string) if name == "ActionId"), "")
    if not action_id:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [b'{"error": "ActionId missing"}']
    _insert(action_id, query_string)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"outcome": "stored"}']
