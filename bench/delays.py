"""Benchmark: one full delay-check pass (no API) on PostgreSQL at scale.

Loads (once, in its own database) 1,000,000 actions with their tracked events, 100,000 recent
changes (modified postbacks in the last 24 h, each also reported by the API and matched),
1,000 API changes with no postback past their deadline (a missing-postback alert to open),
1,000 not yet due, 5 brands gone silent, 20,000 past alerts with 100,000 evidence rows,
40,000 sent notifications and 150 maintenance windows. Then times `Watcher.run_pass()` without
an API account (missing check, quiet late alerts, silent brands, reminders, notifications,
heartbeat) inside a transaction that is rolled back, so every run sees the same data, and prints
the top node of each query's plan (EXPLAIN), flagging any sequential scan.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_alerts_bench .venv/bin/python bench/delays.py
    (--reload to load the data again)
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/h_alerts_bench")
os.environ["DATABASE_URL"] = URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")
os.environ.setdefault("EMAIL_URL", "memorymail://")
os.environ.setdefault("ALERT_EMAILS", "bench@example.com")
os.environ.setdefault("LOG_LEVEL", "ERROR")

ACTIONS = 1_000_000
RECENT = 100_000
BRANDS = 200
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BUDGET_SECONDS = 2.0
# A sequential scan is only a finding on a table this large (PostgreSQL's own estimate, after ANALYZE):
# on a small or empty one (brands, windows, the deliveries this data set does not load) it is the
# planner's right choice.
SMALL_TABLE_ROWS = 10_000


def ensure_database() -> None:
    name = URL.rsplit("/", 1)[1]
    with psycopg.connect(URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# (label, the tables the step loads, SQL). Each step's tables are analyzed before the next step, as
# bench/dashboard.py does after each COPY: autovacuum may be off (as on this machine), and has not
# run yet anyway, so the next step's joins and foreign-key checks would be planned without
# statistics (the 1,000,000 tracked events took over 10 minutes that way instead of about one).
LOAD = [
    (
        "brands",
        "events_brand",
        f"""
INSERT INTO events_brand (campaign_id, name, created_at)
SELECT 'C' || g, 'Brand ' || g, %(now)s - interval '400 days' FROM generate_series(0, {BRANDS - 1}) g
UNION ALL SELECT 'S' || g, 'Silent ' || g, %(now)s - interval '400 days' FROM generate_series(1, 5) g""",
    ),
    (
        "1,000,000 actions",
        "events_action",
        f"""
INSERT INTO events_action (action_id, brand_id, state, status, status_detail, amount, payout, currency,
  original_currency, action_tracker_id, action_tracker_name, action_type, referring_type, media_partner_id,
  ad_id, oid, shared_id, sub_id1, sub_id2, sub_id3, promo_code, event_code, referring_domain,
  money_fingerprint, tracked_seen, event_count, creation_date, first_received_at, last_received_at)
SELECT 'A' || g, b.id, CASE WHEN g <= {RECENT} THEN 'modified' ELSE 'tracked' END, 'PENDING', '', 100, 10, 'USD',
  '', '7', 'Online Sale', '', '', '', '', '', '', '', '', '', '', '', '', '', true,
  CASE WHEN g <= {RECENT} THEN 2 ELSE 1 END, t.ts, t.ts, t.ts
FROM generate_series(1, {ACTIONS}) g
JOIN events_brand b ON b.campaign_id = 'C' || (g %% {BRANDS})
CROSS JOIN LATERAL (SELECT %(now)s - interval '1 day' - g * interval '30 seconds') t(ts)""",
    ),
    (
        "1,000,000 tracked events",
        "events_actionevent",
        """
INSERT INTO events_actionevent (action_id, brand_id, seq, kind, from_state, to_state, changes, status, amount,
  payout, currency, changed_at, received_at, delay_seconds, source, applied, superseded, out_of_order,
  order_uncertain, anomaly, fingerprint, duplicate_count, extra)
SELECT a.id, a.brand_id, 1, 'tracked', '', 'tracked', '{}', 'PENDING', 100, 10, 'USD', a.creation_date - interval '1 minute',
  a.creation_date, 60, 'postback', true, false, false, false, '', md5('t' || a.action_id), 0, '{}'
FROM events_action a WHERE a.action_id LIKE 'A%%'""",
    ),
    (
        "100,000 recent changes (modified, on time)",
        "events_actionevent",
        f"""
INSERT INTO events_actionevent (action_id, brand_id, seq, kind, from_state, to_state, changes, status, amount,
  payout, currency, changed_at, received_at, delay_seconds, source, applied, superseded, out_of_order,
  order_uncertain, anomaly, fingerprint, duplicate_count, extra)
SELECT a.id, a.brand_id, 2, 'modified', 'tracked', 'modified', '{{}}', 'APPROVED', 80, 8, 'USD',
  %(now)s - g * interval '864 milliseconds' - interval '2 minutes', %(now)s - g * interval '864 milliseconds',
  120, 'postback', true, false, false, false, '', md5('m' || a.action_id), 0, '{{}}'
FROM generate_series(1, {RECENT}) g JOIN events_action a ON a.action_id = 'A' || g""",
    ),
    (
        "100,000 API changes matched with their postbacks",
        "events_apichange",
        """
INSERT INTO events_apichange (action_id, campaign_id, campaign_name, kind, state, changed_at, payload, fetched_at,
  postback_event_id, received_at)
SELECT a.action_id, b.campaign_id, b.name, 'modified', 'APPROVED', e.changed_at, '{}', %(now)s, e.id, e.received_at
FROM events_actionevent e JOIN events_action a ON a.id = e.action_id JOIN events_brand b ON b.id = a.brand_id
WHERE e.seq = 2""",
    ),
    (
        "2,000 API changes without postback (1,000 past the deadline)",
        "events_apichange",
        f"""
INSERT INTO events_apichange (action_id, campaign_id, campaign_name, kind, state, changed_at, payload, fetched_at)
SELECT 'A' || ({RECENT} + g), 'C' || (({RECENT} + g) %% {BRANDS}), '', 'modified', 'APPROVED',
  CASE WHEN g <= 1000 THEN %(now)s - interval '2 hours' + g * interval '1 second'
       ELSE %(now)s - interval '10 minutes' END,
  '{{}}', %(now)s
FROM generate_series(1, 2000) g""",
    ),
    (
        "5 silent brands (50 postbacks each, the last 10 h ago)",
        "events_action, events_actionevent",
        """
WITH s AS (SELECT b.id AS brand_id, b.campaign_id, g FROM events_brand b, generate_series(1, 50) g
           WHERE b.campaign_id LIKE 'S%%'),
acts AS (
  INSERT INTO events_action (action_id, brand_id, state, status, status_detail, currency, original_currency,
    action_tracker_id, action_tracker_name, action_type, referring_type, media_partner_id, ad_id, oid,
    shared_id, sub_id1, sub_id2, sub_id3, promo_code, event_code, referring_domain, money_fingerprint,
    tracked_seen, event_count, first_received_at, last_received_at)
  SELECT s.campaign_id || '-' || s.g, s.brand_id, 'tracked', 'PENDING', '', 'USD', '', '', '', '', '', '', '', '', '',
    '', '', '', '', '', '', '', true, 1, %(now)s - interval '10 hours' - s.g * interval '5 minutes',
    %(now)s - interval '10 hours' - s.g * interval '5 minutes'
  FROM s RETURNING id, brand_id, first_received_at, action_id)
INSERT INTO events_actionevent (action_id, brand_id, seq, kind, from_state, to_state, changes, status, currency,
  changed_at, received_at, delay_seconds, source, applied, superseded, out_of_order, order_uncertain, anomaly,
  fingerprint, duplicate_count, extra)
SELECT id, brand_id, 1, 'tracked', '', 'tracked', '{}', 'PENDING', 'USD', first_received_at, first_received_at, 0,
  'postback', true, false, false, false, '', md5('s' || action_id), 0, '{}' FROM acts""",
    ),
    (
        "20,000 past alerts: 100,000 evidence rows, 40,000 changes and 40,000 notifications",
        "events_delayalert, events_alertitem, events_notification, events_alertchange",
        f"""
WITH al AS (
  INSERT INTO events_delayalert (kind, status, brand_id, expected, summary, item_count, opened_at, last_item_at,
    resolved_at)
  SELECT 'late', 'resolved', b.id, false, 'history', 5, %(now)s - g * interval '20 minutes',
    %(now)s - g * interval '20 minutes', %(now)s - g * interval '20 minutes' + interval '30 minutes'
  FROM generate_series(1, 20000) g JOIN events_brand b ON b.campaign_id = 'C' || (g %% {BRANDS})
  RETURNING id, opened_at),
items AS (
  INSERT INTO events_alertitem (alert_id, action_id, change, status, changed_at, received_at, delay_seconds, created_at)
  SELECT al.id, 'H' || al.id || '-' || i, 'tracked', 'PENDING', al.opened_at - interval '2 hours', al.opened_at, 7200,
    al.opened_at FROM al, generate_series(1, 5) i RETURNING alert_id),
notes AS (
  INSERT INTO events_notification (alert_id, reason, channel, created_at, next_attempt_at, attempts, sent_at,
    gave_up, last_error)
  SELECT al.id, r.reason, 'email', al.opened_at, al.opened_at, 1, al.opened_at, false, ''
  FROM al, (VALUES ('opened'), ('resolved')) r(reason) RETURNING alert_id)
INSERT INTO events_alertchange (alert_id, at, from_status, to_status, note)
SELECT al.id, al.opened_at, r.f, r.t, '' FROM al, (VALUES ('', 'open'), ('open', 'resolved')) r(f, t)""",
    ),
    (
        "2 active late alerts (one quiet for an hour)",
        "events_delayalert",
        """
INSERT INTO events_delayalert (kind, status, brand_id, expected, summary, item_count, opened_at, last_item_at, remind_at)
SELECT 'late', 'open', b.id, false, 'active', 1, %(now)s - interval '5 hours', %(now)s - v.quiet, %(now)s - interval '1 hour'
FROM events_brand b, (VALUES ('C1', interval '1 hour'), ('C2', interval '1 minute')) v(c, quiet)
WHERE b.campaign_id = v.c""",
    ),
    (
        "150 maintenance windows",
        "events_maintenancewindow",
        """
INSERT INTO events_maintenancewindow (starts_at, ends_at, note, created_at)
SELECT %(now)s - g * interval '2 days' - interval '3 hours', %(now)s - g * interval '2 days' - interval '1 hour',
  'weekly', %(now)s FROM generate_series(1, 150) g""",
    ),
]


def load(cursor) -> None:
    for table in ("events_notification", "events_alertchange", "events_alertitem", "events_delayalert",
                  "events_apichange", "events_maintenancewindow", "events_watcherheartbeat",
                  "events_delivery", "events_actionevent", "events_action", "events_brand"):  # fmt: skip
        cursor.execute(f"TRUNCATE {table} CASCADE")
    for label, tables, sql in LOAD:
        started = time.perf_counter()
        cursor.execute(sql, {"now": NOW})
        cursor.execute(f"ANALYZE {tables}")
        print(f"  loaded {label} in {time.perf_counter() - started:.1f} s", flush=True)
    cursor.execute("ANALYZE")


def shape(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = re.sub(r"(\?(::\w+)?,\s*)+\?", "?…", sql)
    return re.sub(r"\s+", " ", sql)


def plan_nodes(node, found):
    found.append(node)
    for child in node.get("Plans", []):
        plan_nodes(child, found)
    return found


def main() -> int:
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from events.alerts import watcher
    from events.models import Action, ApiChange

    call_command("migrate", verbosity=0)
    if "--reload" in sys.argv or Action.objects.count() < ACTIONS:
        print(f"Loading {ACTIONS:,} actions and {RECENT:,} recent changes into {URL.rsplit('/', 1)[1]} …", flush=True)
        with connection.cursor() as cursor:
            load(cursor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_actionevent")
        events = cursor.fetchone()[0]
    print(f"Data: {Action.objects.count():,} actions, {events:,} events, {ApiChange.objects.count():,} API changes")

    checks, steady = [], []
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for run in range(3):
        with transaction.atomic():
            started = time.perf_counter()
            summary = watcher.check(now=NOW)
            checks.append(time.perf_counter() - started)
            started = time.perf_counter()
            quiet = watcher.check(now=NOW)  # the next pass: nothing new to open
            steady.append(time.perf_counter() - started)
            print(
                f"check pass {run + 1}: {checks[-1] * 1000:.0f} ms, summary {json.dumps(summary)}; "
                f"the pass after it: {steady[-1] * 1000:.0f} ms {json.dumps(quiet)}"
            )
            transaction.set_rollback(True)

    timings = []
    captured = None
    for run in range(3):
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                summary = watcher.Watcher(clock=lambda: NOW).run_pass()
                elapsed = time.perf_counter() - started
            timings.append(elapsed)
            print(
                f"watcher pass {run + 1}: {elapsed * 1000:.0f} ms, {len(queries)} queries, summary {json.dumps(summary)}"
            )
            if captured is None:
                captured = list(queries.captured_queries)
                shapes: dict[str, dict] = defaultdict(lambda: {"count": 0, "ms": 0.0, "sql": ""})
                for q in captured:
                    entry = shapes[shape(q["sql"])]
                    entry["count"] += 1
                    entry["ms"] += float(q["time"]) * 1000
                    entry["sql"] = entry["sql"] or q["sql"]
                plans = []
                with connection.cursor() as cursor:
                    for key, entry in shapes.items():
                        if key.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
                            continue
                        cursor.execute("EXPLAIN (FORMAT JSON) " + entry["sql"])
                        raw = cursor.fetchone()[0]
                        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
                        nodes = plan_nodes(plan, [])
                        scans = sorted(
                            {f"{n['Node Type']} on {n.get('Relation Name')}" for n in nodes if "Relation Name" in n}
                            | {f"{n['Node Type']} {n.get('Index Name')}" for n in nodes if "Index Name" in n}
                        )
                        seq = [n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"]
                        plans.append((entry, plan, scans, seq, key))
            transaction.set_rollback(True)  # every run sees the same data

    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")
        rows_estimated = dict(cursor.fetchall())
    print("\nQuery plans of pass 1 (top node; scans; x count, total ms):")
    big_seq = []
    for entry, plan, scans, seq, key in sorted(plans, key=lambda p: -p[0]["ms"]):
        flag = ""
        if seq:
            small = all(rows_estimated.get(t, 0) < SMALL_TABLE_ROWS for t in seq)
            flag = "  [seq scan on a small table]" if small else "  [SEQ SCAN ON A BIG TABLE]"
            if not small:
                big_seq.append(key)
        print(f"- {plan['Node Type']:<14} x{entry['count']:<4} {entry['ms']:7.1f} ms  {key[:110]}{flag}")
        print(f"    {'; '.join(scans)[:200]}")
    print(
        f"\nCheck pass (watcher.check, opening 1,000 missing changes over 200 brands and 5 silent brands): "
        f"worst {max(checks) * 1000:.0f} ms, best {min(checks) * 1000:.0f} ms; the quiet pass after it: "
        f"worst {max(steady) * 1000:.0f} ms (budget {BUDGET_SECONDS} s)"
    )
    print(
        f"Full watcher pass without API (check + send {summary['sent']} notifications + heartbeat): "
        f"worst {max(timings) * 1000:.0f} ms, best {min(timings) * 1000:.0f} ms"
    )
    ok = max(checks) < BUDGET_SECONDS and not big_seq
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("OK: check pass under budget, indexed queries only on big tables" if ok else f"NOT OK: {big_seq or 'slow'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
