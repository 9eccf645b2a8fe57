"""The baseline for `bench/ingest.py`: the least a WSGI app can do to keep a postback.

One `INSERT ... ON CONFLICT DO NOTHING` per request (autocommit, so one commit per
request, like the real pipeline's durability), with psycopg on one persistent
connection per gunicorn worker. No framework, no authentication, no parsing beyond
finding the ActionId. Run it under the same gunicorn settings as the product:

    BARE_DATABASE_URL=postgres://... gunicorn -c postbacks_site/gunicorn.conf.py bench.bare_app:application
"""

from __future__ import annotations

import os
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
INSERT = f"INSERT INTO {TABLE} (action_id, query_string) VALUES (%s, %s) ON CONFLICT DO NOTHING"

_connection: psycopg.Connection | None = None


def _cursor() -> psycopg.Cursor:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["BARE_DATABASE_URL"], autocommit=True)
    return _connection.cursor()


def application(environ, start_response):
    query_string = environ.get("QUERY_STRING", "")
    action_id = next((value for name, value in parse_qsl(query_string) if name == "ActionId"), "")
    if not action_id:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [b'{"error": "ActionId missing"}']
    with _cursor() as cursor:
        cursor.execute(INSERT, (action_id, query_string))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"outcome": "stored"}']
