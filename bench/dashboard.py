"""Dashboard scale benchmark: page server time at 10,000 and at 1,000,000 events.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_dashboard_bench .venv/bin/python bench/dashboard.py

Fills PostgreSQL by bulk load (COPY through psycopg, never the endpoint) with histories over
50 brands arriving at a steady rate (about 2,740 events a day, so a million events is a year),
one schema per size (`bench_10k`, `bench_1m`) in the bench database. A filled schema is reused
on the next run (`--refill` rebuilds it); it is migrated first, so tables and indexes added
since it was filled are there. Then it times each page through Django's test client with a
logged-in staff user (server time: routing, queries, template rendering), prints the median of
`--runs` runs per page and the ratio 1M / 10k (`--only TEXT`: the pages whose name has TEXT). The
requests of the two sizes alternate, page by page, so that the shared machine's busy moments
weigh on both sides of a ratio.

The overview and brands list read the closed days of their period from a rollup
(events/reporting/rollups.py). The run drops the stored rollups first and times, apart from the table,
the first 30-day overview, which counts its closed days and stores them (as the first view of
a day does); the table's pages run after that warm-up request, like every later view.

Target: every page under 150 ms at 1M events, and a ratio under 2 (the reports' pages: under 100 ms
and 1.5). The reports' money by status counts its totals once (timed apart, like the rollups).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")

SIZES = {"bench_10k": 10_000, "bench_1m": 1_000_000}
BRANDS = 50
YEAR = timedelta(days=365)
RATE = YEAR / 1_000_000  # time between two events: the same rate whatever the size
ANCHOR = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # "now" of the data; the clock is moved there


def setup_django():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/h_dashboard_bench")
    ensure_database(url)
    import django

    django.setup()


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def use_schema(schema: str) -> None:
    from django.db import connection

    connection.close()
    connection.settings_dict.setdefault("OPTIONS", {})["options"] = f"-c search_path={schema}"


def switch_to(schema: str) -> None:
    """Point the open connection at `schema` (and any reconnection too) without closing it: a new
    connection's first queries fill PostgreSQL's catalog caches, which pages do not pay in production."""
    from django.db import connection

    connection.settings_dict.setdefault("OPTIONS", {})["options"] = f"-c search_path={schema}"
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"SET search_path TO {schema}")


def schema_ready(schema: str, size: int) -> bool:
    from django.db import connection

    use_schema("public")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'bench_meta'", [schema]
        )
        if not cursor.fetchone():
            return False
        cursor.execute(f"SELECT events FROM {schema}.bench_meta")
        row = cursor.fetchone()
    return bool(row) and row[0] == size


# --- Data ---------------------------------------------------------------------------------


def _delay(i: int) -> int | None:
    """Mostly on time; 4 % late, 1 % over an hour; 5 % unknown (no impact-side time)."""
    r = (i * 7919) % 100
    if r < 5:
        return None
    if r < 6:
        return 3600 + (i * 131) % 7200
    if r < 10:
        return 900 + (i * 37) % 2700
    return 20 + (i * 53) % 600


def generate(size: int):
    """Yield (action row, [event rows]) newest first until `size` events are made."""
    made = 0
    i = 0
    while made < size:
        tracked_at = ANCHOR - RATE * 1.4 * i - timedelta(seconds=1)
        brand = i % BRANDS + 1
        currency = "EUR" if brand % 10 == 0 else "USD"
        payout = Decimal(5 + (i * 17) % 95)
        kinds = [("tracked", tracked_at, payout, None)]
        if i % 10 < 3:
            kinds.append(("modified", tracked_at + timedelta(hours=1 + i % 72), payout + 2, Decimal(2)))
        if i % 100 < 8:
            kinds.append(("reversed", tracked_at + timedelta(days=2 + i % 20), Decimal(0), -payout))
        kinds = [k for k in kinds if k[1] < ANCHOR][: size - made]
        made += len(kinds)
        yield i, brand, currency, kinds
        i += 1


def fill(schema: str, size: int) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    print(f"  filling {schema} with {size:,} events (COPY)…", flush=True)
    started = time.perf_counter()
    use_schema("public")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        cursor.execute(f"CREATE SCHEMA {schema}")
    use_schema(schema)
    call_command("migrate", verbosity=0)

    from events.models import Action, ActionEvent, Brand, Delivery

    def columns(model):
        return [f.column for f in model._meta.concrete_fields]

    def defaults(model):
        return {f.column: f.get_default() for f in model._meta.concrete_fields}

    def row(model_defaults, cols, values):
        merged = {**model_defaults, **values}
        return [json.dumps(merged[c]) if isinstance(merged[c], dict | list) else merged[c] for c in cols]

    brand_cols, action_cols, event_cols, delivery_cols = (columns(m) for m in (Brand, Action, ActionEvent, Delivery))
    brand_def, action_def, event_def, delivery_def = (defaults(m) for m in (Brand, Action, ActionEvent, Delivery))
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY events_brand ({', '.join(brand_cols)}) FROM STDIN") as copy:
            for b in range(1, BRANDS + 1):
                copy.write_row(
                    row(
                        brand_def,
                        brand_cols,
                        {"id": b, "campaign_id": str(5000 + b), "name": f"Brand {b:02d}", "created_at": ANCHOR - YEAR},
                    )
                )
        # One COPY at a time per connection: the (deterministic) history is generated once per table.
        with cursor.copy(f"COPY events_action ({', '.join(action_cols)}) FROM STDIN") as copy:
            for i, brand, currency, kinds in generate(size):
                last = kinds[-1]
                copy.write_row(row(action_def, action_cols, {
                    "id": i + 1, "action_id": f"{5000 + brand}-{i}", "brand_id": brand, "state": last[0],
                    "status": "REVERSED" if last[0] == "reversed" else "PENDING", "amount": last[2] * 10,
                    "payout": last[2], "currency": currency, "oid": f"ORD{i}", "action_tracker_id": str(7 + i % 3),
                    "action_tracker_name": "Online Sale", "sub_id1": f"s{i % 20}", "tracked_seen": True,
                    "locking_date": kinds[0][1] + timedelta(days=30 + 15 * (brand % 3)),
                    "event_count": len(kinds), "first_received_at": kinds[0][1], "last_received_at": last[1],
                    "money_fingerprint": "",
                }))  # fmt: skip
        # The foreign keys are checked when each COPY commits. Without statistics (autovacuum may be
        # off, and has not run yet anyway) PostgreSQL can check `id = $1` by walking a whole index
        # that merely ends with `id`, once per row: hours at a million rows instead of seconds.
        cursor.execute("ANALYZE events_brand, events_action")
        event_id = 0
        with cursor.copy(f"COPY events_actionevent ({', '.join(event_cols)}) FROM STDIN") as copy:
            for i, brand, currency, kinds in generate(size):
                before, state = None, ""
                for seq, (kind, received, payout, delta) in enumerate(kinds, start=1):
                    event_id += 1
                    delay = _delay(event_id)
                    changes = {"payout": [before, str(payout)]}
                    if kind == "reversed":
                        changes["status"] = ["PENDING", "REVERSED"]
                    copy.write_row(row(event_def, event_cols, {
                        "id": event_id, "action_id": i + 1, "brand_id": brand, "seq": seq, "kind": kind,
                        "from_state": state, "to_state": kind, "changes": changes,
                        "status": "REVERSED" if kind == "reversed" else "PENDING", "amount": payout * 10,
                        "payout": payout, "delta_payout": delta, "currency": currency,
                        "changed_at": None if delay is None else received - timedelta(seconds=delay),
                        "received_at": received, "delay_seconds": delay, "fingerprint": f"f{event_id}",
                        "duplicate_count": 1 if event_id % 50 == 0 else 0, "extra": {},
                    }))  # fmt: skip
                    before, state = str(payout), kind

        def deliveries():
            eid = 0
            for i, brand, _currency, kinds in generate(size):
                for kind, received, payout, _delta in kinds:
                    eid += 1
                    yield eid, received, f"{5000 + brand}-{i}", kind, payout

        cursor.execute("ANALYZE events_actionevent")
        with cursor.copy(f"COPY events_delivery ({', '.join(delivery_cols)}) FROM STDIN") as copy:
            for n, (eid, received, action_id, kind, payout) in enumerate(deliveries(), start=1):
                outcome = "invalid" if n % 500 == 0 else "applied"
                copy.write_row(row(delivery_def, delivery_cols, {
                    "id": n, "received_at": received, "method": "GET", "path": "/postbacks/impact/",
                    "query_string": f"ActionId={action_id}&Status={kind}&Payout={payout}&token=[redacted]",
                    "body": b"", "headers": {}, "outcome": outcome, "attempts": 1, "processed_at": received,
                    "reason": "Payout='x' is not a decimal amount" if outcome == "invalid" else "",
                    "action_id": action_id if outcome == "applied" else "",
                    "event_id": eid if outcome == "applied" else None,
                }))  # fmt: skip
        for table in ("events_brand", "events_action", "events_actionevent", "events_delivery"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("CREATE TABLE bench_meta (events integer)")
        cursor.execute("INSERT INTO bench_meta VALUES (%s)", [size])
    from events.reporting import reports

    # The reports' rows, as migration 0010_reports fills them for actions stored before it (COPY
    # bypassed the processor, which keeps them from then on); their totals are counted on the first
    # view (events/reporting/reports.py), as after migration 0011_report_totals.
    reports.backfill()
    User.objects.create_user("bench", password="bench-password-1", is_staff=True)
    connection.close()
    use_schema(schema)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"  filled in {time.perf_counter() - started:.0f} s", flush=True)


# --- Timing ---------------------------------------------------------------------------------


def pages(schema: str) -> list[tuple[str, str]]:
    """The pages to time, with targets found in this schema's data (not timed)."""
    from dashboard.paging import Cursor
    from events.models import Action, ActionEvent, Brand

    brand = Brand.objects.get(campaign_id="5001")
    count = ActionEvent.objects.for_brand(brand).count()
    deep = ActionEvent.objects.for_brand(brand).order_by("-received_at", "-id")[int(count * 0.9)]
    cursor = Cursor(deep.received_at, deep.pk).encode()
    action = Action.objects.filter(brand=brand, event_count=3).order_by("-last_received_at").first()
    # A day with lockings at both sizes (10k's 3.6 days of data lock 26 to 60 days ahead): a full
    # page of actions on either side, not an empty page against a full one.
    locking_day = (ANCHOR + timedelta(days=28)).date().isoformat()
    return [
        ("overview (7 d)", "/"),
        ("overview (30 d)", "/?period=30d"),
        ("brands (7 d)", "/brands/"),
        ("brand timeline, page 1", "/brands/5001/"),
        ("brand timeline, deep page (90 % down)", f"/brands/5001/?before={cursor}"),
        ("brand timeline, kind=reversed + late", "/brands/5001/?kind=reversed&late=on"),
        ("brand timeline, state + tracker + dates", "/brands/5001/?state=modified&tracker=8&date_from=2026-09-01"),
        ("action detail", f"/actions/{action.action_id}/"),
        ("deliveries, invalid", "/deliveries/?outcome=invalid"),
        ("brand timeline + money by status", "/brands/5002/"),
        ("locking calendar", "/locking/"),
        ("locking calendar, one brand", "/locking/?brand=5003"),
        ("locking day (its actions)", f"/locking/?day={locking_day}"),
        ("performance by sub_id1 (7 d)", "/performance/?by=sub_id1"),
        ("performance by tracker (30 d)", "/performance/?by=tracker&period=30d"),
        ("performance, one brand, sort net", "/performance/?by=sub_id1&brand=5001&sort=-net"),
        ("performance drill-down (sub_id1=s1)", "/performance/?by=sub_id1&value=s1"),
        ("search, part of an order id", "/search/?q=RD12345"),
        ("search, a sub id", "/search/?q=S7"),
    ]


def prepare(schema: str):
    """Migrate a filled schema, drop its stored rollups, log in and time its first overview; its pages."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from events.reporting import reports, rollups

    use_schema(schema)
    call_command("migrate", verbosity=0)  # a schema filled by an earlier version gets the new tables and indexes
    rollups.forget()  # so the first overview counts its closed days, as the first one of a day does
    reports.forget()  # and the money by status its totals
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    started = time.perf_counter()
    client.get("/locking/")
    print(f"  {'first locking calendar: counts the status totals':<52} "
          f"{(time.perf_counter() - started) * 1000:7.1f} ms (not in the table)", flush=True)  # fmt: skip
    client.get("/?period=24h")  # warms the templates; hourly charts read no stored days
    started = time.perf_counter()
    client.get("/?period=30d")
    print(f"  {'first overview (30 d): counts and stores its closed days':<52} "
          f"{(time.perf_counter() - started) * 1000:7.1f} ms (not in the table)", flush=True)  # fmt: skip
    return client, pages(schema)


def time_pages(runs: int, only: str = "") -> dict[str, dict[int, float]]:
    """{page: {size: median ms}}. The two sizes' requests alternate, so that a busy moment of the shared
    machine weighs on both sides of a page's ratio alike (timed one size after the other, the ratio of
    the same code swung between 1.2 and 1.9 from one run to the next)."""
    import time_machine

    results: dict[str, dict[int, float]] = {}
    with time_machine.travel(ANCHOR, tick=True):
        prepared = {}
        for schema, size in SIZES.items():
            print(f"{size:,} events ({schema}):", flush=True)
            prepared[schema] = prepare(schema)
        names = [name for name, _ in prepared["bench_10k"][1]]
        for index, name in enumerate(names):
            if only not in name:
                continue
            samples: dict[int, list[float]] = {size: [] for size in SIZES.values()}
            cpu: dict[int, list[float]] = {size: [] for size in SIZES.values()}
            for round_ in range(runs + 1):  # the first round warms caches and templates
                for schema, size in SIZES.items():
                    client, urls = prepared[schema]
                    url = urls[index][1]
                    switch_to(schema)
                    started, started_cpu = time.perf_counter(), time.process_time()
                    response = client.get(url)
                    if round_:
                        samples[size].append((time.perf_counter() - started) * 1000)
                        cpu[size].append((time.process_time() - started_cpu) * 1000)
                    assert response.status_code == 200, (url, response.status_code)
            results[name] = {size: statistics.median(samples[size]) for size in samples}
            times = "   ".join(
                f"{size:>9,}: {results[name][size]:6.1f} ms (Python CPU {statistics.median(cpu[size]):5.1f})"
                for size in samples
            )
            print(f"  {name:<40} {times}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refill", action="store_true", help="rebuild the data even if a filled schema exists")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per page (median shown)")
    parser.add_argument("--only", default="", help="time only the pages whose name contains this text")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    for schema, size in SIZES.items():
        if args.refill or not schema_ready(schema, size):
            fill(schema, size)
    timings = time_pages(args.runs, args.only)
    print(f"\n{'page':<40} {'10k ms':>8} {'1M ms':>8} {'1M/10k':>7}")
    worst = 0.0
    for name, by_size in timings.items():
        small, large = by_size[10_000], by_size[1_000_000]
        worst = max(worst, large)
        print(f"{name:<40} {small:8.1f} {large:8.1f} {large / small:7.2f}")
    print(f"\nslowest page at 1M: {worst:.1f} ms (target < 150 ms); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
