"""The few statements the ORM cannot write, behind named functions: advisory locks, the
silent-brand query (a LATERAL join: each brand's newest postbacks from its own index range), the
upsert that adds a batch's changes to the reports' totals and the INSERT … SELECT that counts them.
Table names come from the models; every value is a parameter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

from django.db import connection, models

from .actions import ActionEvent, Brand


@contextmanager
def advisory_lock(key: int) -> Iterator[bool]:
    """A PostgreSQL session advisory lock, if free (yields whether it was taken); always granted on
    SQLite, where one process at a time is the deployment."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as db:
        db.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = db.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as db:
                db.execute("SELECT pg_advisory_unlock(%s)", [key])


def advisory_xact_lock(key: int) -> None:
    """Wait for a PostgreSQL advisory lock held to the end of the transaction (SQLite's IMMEDIATE
    transactions already run one writer at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def advisory_xact_lock_shared(key: int) -> None:
    """Shared with the other holders of the shared lock, excluded by advisory_xact_lock(key) (PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as db:
            db.execute("SELECT pg_advisory_xact_lock_shared(%s)", [key])


# Rows per upsert: 22,000 parameters for DimensionTotal's eleven columns, under SQLite's 32,766.
TOTAL_CHUNK = 2000


def add_totals(model, fields: tuple[str, ...], rows: list[tuple]) -> None:
    """Add rows of `fields` (the model's unique key, then the sums) to a total, inserting the keys
    not there yet: one INSERT … ON CONFLICT DO UPDATE per TOTAL_CHUNK rows (the ORM's upsert can
    only overwrite), in key order so two batches lock shared rows in the same order."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [quote(model._meta.get_field(name).column) for name in fields]
    (key_size,) = [len(c.fields) for c in model._meta.constraints if isinstance(c, models.UniqueConstraint)]
    keys, added = columns[:key_size], columns[key_size:]
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in added)
    ordered = sorted(rows, key=lambda row: row[:key_size])
    with connection.cursor() as db:
        for start in range(0, len(ordered), TOTAL_CHUNK):
            chunk = ordered[start : start + TOTAL_CHUNK]
            db.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([placeholders] * len(chunk))} "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
                [_param(value) for row in chunk for value in row],
            )


def _param(value):
    """Dates as ISO text and amounts as text: what both backends read into DATE and NUMERIC alike."""
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


def insert_summed(model, fields: tuple[str, ...], rows, groups: list[tuple[tuple, tuple[str, ...]]], sums) -> None:
    """INSERT INTO model (fields) SELECT …, for each (constants, columns) of `groups`: the constants,
    the columns, and the sums of `sums` over the ORM's query `rows` grouped by those columns (one
    statement: the rows are read once, the ORM has no INSERT … SELECT)."""
    quote = connection.ops.quote_name
    select, params = rows.query.sql_with_params()
    totals = ", ".join(f"SUM(base.{quote(name)})" for name in sums)
    parts, part_params = [], []
    for constants, columns in groups:
        grouped = ", ".join(f"base.{quote(name)}" for name in columns)
        parts.append(f"SELECT {', '.join(['%s'] * len(constants))}, {grouped}, {totals} FROM base GROUP BY {grouped}")
        part_params += constants
    table = quote(model._meta.db_table)
    names = ", ".join(quote(model._meta.get_field(name).column) for name in fields)
    with connection.cursor() as db:
        db.execute(
            f"WITH base AS ({select}) INSERT INTO {table} ({names}) {' UNION ALL '.join(parts)}",
            [*params, *part_params],
        )


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
    with connection.cursor() as db:
        db.execute(sql, [source, sample])
        return {brand_id: (newest, oldest, n) for brand_id, newest, oldest, n in db.fetchall()}
