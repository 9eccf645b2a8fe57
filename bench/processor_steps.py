"""Where the processor's time goes: one drain of a backlog, timed step by step, or under cProfile.

    .venv/bin/python bench/processor_steps.py [--backlog 20000] [--batch N] [--cprofile] [--sqlite]

Creates a fresh database (PostgreSQL `--database`, default h_bench_steps, dropped afterwards; or
an SQLite file), writes the same backlog as bench/ingest.py's drain (70 % new actions, 20 %
modifications, 5 % reversals, 5 % exact retries, in arrival order), then applies it in this
process exactly as `manage.py process_deliveries --once` does (`process_next_batch` until none is
left, the garbage collector settled as the command settles it). Nothing in the product is changed:
its functions are wrapped from outside, here, for the run.

Step timing (default): the wall time of each step of a batch (claim, parse, fingerprint, brands,
action locks and known events, the fold through the rules, the writes, the alert hook, rollups,
outcomes, commit), split into Python and SQL, per delivery; every statement by kind and table,
with its count per batch and time per delivery; CPU of this process and of its PostgreSQL
backend; and the rate in each tenth of the drain (does it slow down as the tables grow?).

`--cprofile`: the same drain under cProfile instead, printing the functions with the most own
time and the most cumulative time, in microseconds per delivery.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import pstats
import re
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402 (after the sys.path line)
    Autovacuum,
    admin_execute,
    analyze,
    cpu_seconds,
    database_url,
    execute,
    load_backlog,
    log,
    plan_backlog,
)


class Steps:
    """Nested wall-clock timers: each step's own (exclusive) time, and the SQL run inside it."""

    def __init__(self):
        self.stack: list[list] = []  # [name, started, time in nested steps and statements]
        self.own: dict[str, float] = defaultdict(float)
        self.sql: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.statements: dict[str, list] = defaultdict(lambda: [0, 0.0])

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            self.stack.append([name, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, started, nested = self.stack.pop()
                elapsed = time.perf_counter() - started
                self.own[name] += elapsed - nested
                self.calls[name] += 1
                if self.stack:
                    self.stack[-1][2] += elapsed

        timed.__wrapped__ = function
        return timed

    def statement(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            owner = self.stack[-1][0] if self.stack else "(outside)"
            self.sql[owner] += elapsed
            if self.stack:
                self.stack[-1][2] += elapsed
            entry = self.statements[f"{statement_kind(sql)}  [{owner}]"]
            entry[0] += 1
            entry[1] += elapsed


def statement_kind(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper()
    table = re.search(r'"(events_\w+|auth_\w+)"', sql)
    kind = f"{verb} {table.group(1) if table else ''}".strip()
    if "FOR UPDATE" in sql:
        kind += " FOR UPDATE" + (" SKIP LOCKED" if "SKIP LOCKED" in sql else "")
    if verb == "UPDATE" and "(SELECT" in sql:
        kind += " (subqueries)"
    return kind


def instrument(steps: Steps) -> None:
    """Wrap the batch's steps where the product looks them up."""
    from django.db import connection

    from events import impact, lifecycle
    from events.impact.postback import Postback
    from events.processing import deliveries
    from events.reporting import reports, rollups

    apply = importlib.import_module("events.lifecycle.apply")
    deliveries.process_batch = steps.wrap("process_batch (retry loop, savepoint)", deliveries.process_batch)
    deliveries._apply = steps.wrap("_apply (loop over deliveries, log binding)", deliveries._apply)
    impact.parse = steps.wrap("parse query string", impact.parse)
    Postback.fingerprint = steps.wrap("fingerprint", Postback.fingerprint)
    lifecycle.apply_batch = steps.wrap("apply_batch: lock actions, known events", lifecycle.apply_batch)
    apply._brand_ids = steps.wrap("brand ids", apply._brand_ids)
    apply._Fold.add = steps.wrap("fold: rules, new Action/ActionEvent objects", apply._Fold.add)
    apply._Fold.write = steps.wrap("write actions and events", apply._Fold.write)
    deliveries.after_batch = steps.wrap("alerts hook (after_batch)", deliveries.after_batch)
    rollups.changed = steps.wrap("rollups.changed", rollups.changed)
    reports.refresh = steps.wrap("reports.refresh (reports' rows and totals)", reports.refresh)
    deliveries._record_outcomes = steps.wrap("record outcomes", deliveries._record_outcomes)
    connection.ensure_connection()
    connection._commit = steps.wrap("commit", connection._commit)
    connection.execute_wrappers.append(steps.statement)


def backend_pid() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    return execute("SELECT pg_backend_pid()")[0][0]


def drain(batch: int, steps: Steps | None, total: int):
    """process_next_batch until nothing is left; the rate in each tenth of the backlog."""
    from events.processing import deliveries

    claim = deliveries.process_next_batch
    if steps is not None:
        claim = steps.wrap("claim (SELECT ... FOR UPDATE SKIP LOCKED)", claim)
    done, tenths, mark, started = 0, [], time.perf_counter(), time.perf_counter()
    while (report := claim(batch)) is not None:
        done += report.count
        if done >= (len(tenths) + 1) * total / 10:
            now = time.perf_counter()
            tenths.append((done, now - mark))
            mark = now
            log(f"  {done:,} / {total:,}: {done / (now - started):,.0f}/s so far")
    return done, time.perf_counter() - started, tenths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=20_000, help="deliveries to drain (default 20000)")
    parser.add_argument("--batch", type=int, help="batch size (default PROCESSING_BATCH_SIZE)")
    parser.add_argument("--cprofile", action="store_true", help="run under cProfile instead of the step timers")
    parser.add_argument("--top", type=int, default=30, help="cProfile: functions listed (default 30)")
    parser.add_argument("--cprofile-out", metavar="FILE", help="cProfile: also save the stats (pstats, snakeviz)")
    parser.add_argument("--sqlite", action="store_true", help="an SQLite file instead of PostgreSQL")
    parser.add_argument("--database", default="h_bench_steps", help="PostgreSQL database created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--analyze",
        choices=("autovacuum", "delivery", "all"),
        default="autovacuum",
        help="PostgreSQL statistics during the drain: autovacuum's rules applied every second (default, see "
        "bench.ingest.Autovacuum); or after loading the backlog ANALYZE the delivery table alone (the other tables "
        "stay never analyzed, as autovacuum off leaves them) or every table (the empty ones get statistics "
        "saying so); with the last two the drain slows down as the tables grow",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-steps-"))
    if args.sqlite:
        os.environ.update(DATABASE_URL="", SQLITE_PATH=str(workdir / "db.sqlite3"))
    else:
        admin_execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(f'CREATE DATABASE "{args.database}"')
        os.environ["DATABASE_URL"] = database_url(args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from events.common import collector
        from events.models import Credential, Delivery
        from events.reporting import reports

        batch = args.batch or settings.PROCESSING_BATCH_SIZE
        call_command("migrate", verbosity=0, interactive=False)
        credential, _ = Credential.create_with_secret(label="bench/processor_steps.py")
        log(f"backlog of {args.backlog:,} postbacks")
        backlog = plan_backlog(args.backlog, datetime.now(UTC))
        load_backlog(backlog, credential)
        # As once the dashboard has been viewed: every batch then keeps the reports' totals too.
        reports.ensure_totals()
        autovacuum = None
        if args.analyze == "all":
            analyze()
        elif connection.vendor == "postgresql":
            execute(f"ANALYZE {Delivery._meta.db_table}")
            if args.analyze == "autovacuum":
                autovacuum = Autovacuum(os.environ["DATABASE_URL"], 1.0)
                autovacuum.start()
        steps = None if args.cprofile else Steps()
        if steps is not None:
            instrument(steps)
        pid = backend_pid()
        database_before = cpu_seconds([pid]).get(pid, 0.0) if pid else 0.0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        log(f"draining in batches of {batch} ({'cProfile' if args.cprofile else 'step timers'})")
        profile = cProfile.Profile() if args.cprofile else None
        if profile:
            profile.enable()
        with collector.settled():  # as the command's
            done, wall, tenths = drain(batch, steps, len(backlog.rows))
        if profile:
            profile.disable()
        if autovacuum:
            autovacuum.stop()
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
        database = (cpu_seconds([pid]).get(pid, 0.0) - database_before) if pid else 0.0
        batches = -(-done // batch)
        per = 1000 / done  # seconds -> ms per delivery
        print()
        print(
            f"{done:,} deliveries in {wall:.1f} s ({done / wall:,.0f}/s), {batches} batches of {batch}, "
            f"{connection.vendor}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(f"wall {wall * per:.3f} ms per delivery; CPU: this process {cpu * per:.3f} ms", end="")
        print(f", PostgreSQL backend {database * per:.3f} ms" if pid else "")
        if autovacuum:
            print(autovacuum.line())
        print("rate per tenth of the drain: " + ", ".join(f"{n / s:,.0f}/s" for n, s in _tenths(tenths)))
        if profile:
            _print_profile(profile, done, args.top)
            if args.cprofile_out:
                profile.dump_stats(args.cprofile_out)
            return 0
        print()
        print(
            f"{'step (own time; nested steps listed apart)':<52} {'calls':>7} {'Python':>8} {'SQL':>8} {'total':>8}   ms per delivery"
        )
        rows = sorted(steps.own, key=lambda n: -(steps.own[n] + steps.sql.get(n, 0.0)))
        for name in rows:
            own, sql = steps.own[name], steps.sql.get(name, 0.0)  # own time excludes its statements
            print(f"{name:<52} {steps.calls[name]:>7} {own * per:>8.3f} {sql * per:>8.3f} {(own + sql) * per:>8.3f}")
        python, sql = sum(steps.own.values()), sum(steps.sql.values())
        print(f"{'all steps':<52} {'':>7} {python * per:>8.3f} {sql * per:>8.3f} {(python + sql) * per:>8.3f}")
        print()
        print(f"{'statement  [step]':<95} {'per batch':>9} {'ms/deliv':>9}")
        for key, (count, seconds) in sorted(steps.statements.items(), key=lambda kv: -kv[1][1]):
            print(f"{key:<95} {count / batches:>9.1f} {seconds * per:>9.3f}")
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep and not args.sqlite:
            admin_execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _tenths(tenths):
    previous = 0
    for done, seconds in tenths:
        yield done - previous, seconds
        previous = done


def _print_profile(profile: cProfile.Profile, done: int, top: int) -> None:
    for order, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        stream = io.StringIO()
        stats = pstats.Stats(profile, stream=stream)
        stats.sort_stats(order)
        print()
        print(f"Top {top} functions by {title}, microseconds per delivery (calls per delivery):")
        width = 0
        entries = []
        for func in stats.fcn_list[:top]:
            _calls, nc, tt, ct, _ = stats.stats[func]
            filename, line, name = func
            where = f"{_short(filename)}:{line}({name})"
            width = max(width, len(where))
            entries.append((where, nc / done, tt * 1e6 / done, ct * 1e6 / done))
        print(f"  {'function':<{width}} {'calls':>8} {'own µs':>9} {'cum µs':>9}")
        for where, calls, own, cumulative in entries:
            print(f"  {where:<{width}} {calls:>8.2f} {own:>9.1f} {cumulative:>9.1f}")


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


if __name__ == "__main__":
    sys.exit(main())
