"""The few statements the ORM cannot write, behind named functions: advisory locks, the
silent-brand query (a LATERAL join: each brand's newest postbacks from its own index range), and
the upsert that adds a batch's changes to the reports' totals.
Table names come from the models; every value is a parameter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from .actions import ActionEvent, Brand
from .reports import StatusTotal


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


def add_status_totals(rows: list[tuple]) -> None:
    """Add (zone, brand id, currency, group, locking day, actions, payout) to StatusTotal, inserting
    the keys not there yet: one INSERT … ON CONFLICT DO UPDATE (the ORM's upsert can only overwrite),
    in key order so two batches lock shared rows in the same order."""
    if not rows:
        return
    table = StatusTotal._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    sql = f"""
        INSERT INTO {table} (zone, brand_id, currency, "group", locking_day, actions, payout) VALUES {values}
        ON CONFLICT (zone, locking_day, brand_id, currency, "group") DO UPDATE SET
            actions = {table}.actions + excluded.actions, payout = {table}.payout + excluded.payout"""
    params = []
    for zone, brand_id, currency, group, day, actions, payout in sorted(rows, key=lambda row: row[:5]):
        params += [zone, brand_id, currency, group, day.isoformat(), actions, str(payout)]
    with connection.cursor() as db:
        db.execute(sql, params)


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
