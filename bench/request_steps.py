"""Where a request's time goes: the request path called in-process, like a gunicorn worker does.

    .venv/bin/python bench/request_steps.py [--app product|naive|bare] [--requests 3000] [--sqlite]

Creates a fresh database (PostgreSQL `--database`, default h_bench_requests, dropped afterwards;
or an SQLite file), one credential, then calls the WSGI application (the product's, the naive DRF
view's or the bare app's) with environ dicts like gunicorn's for unique postbacks filled in like
bench/ingest.py's (impact.com's template, credential in its header), one after the other in this
process: no HTTP, no gunicorn, no concurrency. Prints the wall and CPU time per request (this
process, and its PostgreSQL backend), the statements each request sends with their time, and
under cProfile the functions with the most cumulative and own time, in microseconds per request.
Nothing in the product is changed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402 (after the sys.path line)
    admin_execute,
    cpu_seconds,
    database_url,
    execute,
    filled_template,
    log,
)
from bench.processor_steps import statement_kind  # noqa: E402


def environ(path_and_query: str, header_name: str, secret: str) -> dict:
    path, query = path_and_query.split("?", 1)
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": path_and_query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8150",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8150",
        "HTTP_" + header_name.upper().replace("-", "_"): secret,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("product", "naive", "bare"), default="product")
    parser.add_argument("--requests", type=int, default=3000, help="requests timed (default 3000)")
    parser.add_argument("--top", type=int, default=35, help="functions listed (default 35)")
    parser.add_argument("--cprofile-out", metavar="FILE", help="also save the profile (pstats, snakeviz)")
    parser.add_argument("--sqlite", action="store_true", help="an SQLite file instead of PostgreSQL")
    parser.add_argument("--database", default="h_bench_requests", help="PostgreSQL database created and dropped")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-requests-"))
    if args.sqlite:
        path = str(workdir / "db.sqlite3")
        os.environ.update(DATABASE_URL="", SQLITE_PATH=path, BARE_SQLITE_PATH=path)
    else:
        admin_execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(f'CREATE DATABASE "{args.database}"')
        os.environ["DATABASE_URL"] = os.environ["BARE_DATABASE_URL"] = database_url(args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from bench.bare_app import create_table_sql
        from events.models import Credential

        call_command("migrate", verbosity=0, interactive=False)
        execute(create_table_sql(connection.vendor))
        credential, secret = Credential.create_with_secret(label="bench/request_steps.py")
        before, middle, after = filled_template().split("\x00")
        if args.app == "product":
            from postbacks_site.wsgi import application
        elif args.app == "naive":
            from bench.naive_drf import application
        else:
            from bench.bare_app import application

        statuses: dict[str, int] = defaultdict(int)

        def start_response(status, headers, exc_info=None):
            statuses[status] += 1

        def call(n: int, prefix: str) -> None:
            for i in range(n):
                action_id = f"{prefix}-{i}"
                body = application(
                    environ(f"{before}{action_id}{middle}{action_id}{after}", credential.header_name, secret),
                    start_response,
                )
                b"".join(body)
                if hasattr(body, "close"):
                    body.close()

        call(200, "warm")  # imports, caches, the connection
        statements: dict[str, list] = defaultdict(lambda: [0, 0.0])

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                entry = statements[statement_kind(sql)]
                entry[0] += 1
                entry[1] += time.perf_counter() - started

        pid = execute("SELECT pg_backend_pid()")[0][0] if connection.vendor == "postgresql" else None
        n = args.requests
        database = cpu_seconds([pid]).get(pid, 0.0) if pid else 0.0
        usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        with connection.execute_wrapper(timed):
            call(n, "timed")
        wall = time.perf_counter() - started
        after_usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after_usage.ru_utime + after_usage.ru_stime) - (usage.ru_utime + usage.ru_stime)
        database = (cpu_seconds([pid]).get(pid, 0.0) - database) if pid else 0.0
        print()
        print(
            f"{args.app}, {connection.vendor}: {n:,} requests in {wall:.2f} s, one at a time in-process "
            f"(answers: {dict(statuses)}); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(
            f"per request: wall {wall * 1e6 / n:,.0f} µs, CPU of this process {cpu * 1e6 / n:,.0f} µs"
            + (f", of its PostgreSQL backend {database * 1e6 / n:,.0f} µs" if pid else "")
        )
        print("statements per request (Django's connection; the bare app's own are not seen):")
        for kind, (count, seconds) in sorted(statements.items(), key=lambda kv: -kv[1][1]):
            print(f"  {kind:<40} {count / n:>6.2f} per request {seconds * 1e6 / n:>8.0f} µs")
        log(f"the same under cProfile ({n:,} more requests)")
        profile = cProfile.Profile()
        profile.enable()
        call(n, "profiled")
        profile.disable()
        if args.cprofile_out:
            profile.dump_stats(args.cprofile_out)
        for order, title in (("cumulative", "cumulative time"), ("tottime", "own time")):
            stats = pstats.Stats(profile, stream=io.StringIO())
            stats.sort_stats(order)
            print()
            print(f"Top {args.top} by {title}, µs per request under cProfile (calls per request):")
            for func in stats.fcn_list[: args.top]:
                _calls, nc, tt, ct, _ = stats.stats[func]
                filename, line, name = func
                where = f"{_short(filename)}:{line}({name})"
                print(f"  {where:<90} {nc / n:>6.1f} {tt * 1e6 / n:>8.1f} {ct * 1e6 / n:>8.1f}")
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        if not args.sqlite:
            admin_execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


if __name__ == "__main__":
    sys.exit(main())
