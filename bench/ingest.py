"""Ingest benchmark: the request path and the processor, against a bare one-INSERT WSGI app.

    .venv/bin/python bench/ingest.py [--seconds 10] [--rounds 3] [--backlog 100000] [--sqlite]

The request path only authenticates, stores the delivery (`received`) and answers; a processor
(`manage.py process_deliveries`) applies stored deliveries a batch at a time. One run, on one
machine and one database server (README, "Benchmarks"):

1. Fresh database: PostgreSQL (`--database`, default h_bench_ingest, created and dropped), or with
   `--sqlite` a file in a temporary directory with the product's SQLite settings. Migrated, one
   postback credential (Credential.create_with_secret).
2. Request path, with NO processor running: the bare app (bench/bare_app.py), the naive DRF view
   (bench/naive_drf.py) and the product (postbacks_site.wsgi), each under gunicorn with
   postbacks_site/gunicorn.conf.py, driven in turn by wrk (`--rounds` alternates them). Every
   request is a unique postback filled in like impact.com's recommended GET template
   (events.impact.url_template), credential in its header. Checks rows stored == requests sent.
   `ratio` = product requests/s over bare app requests/s.
3. Drain: the request path's stored deliveries are deleted, then a backlog of `--backlog`
   deliveries (default 100,000: 70 % new actions, 20 % modifications of them, 5 % reversals, 5 %
   exact retries of earlier postbacks) is written straight into events_delivery (COPY on
   PostgreSQL, bulk INSERT on SQLite) as the endpoint stores them: the simulator's query strings
   (events.simulation.world, the template plus UpdateDate), arrival order = impact-side change time
   plus impact.com's delivery delay, received_at = arrival. `manage.py process_deliveries --once`
   (default batch, `--batch` to change it) applies it in a subprocess. `drain` = deliveries
   processed per second of the subprocess's wall time over bare app requests/s. Checks: every
   delivery applied or duplicate (0 received, failed, invalid), events per kind, actions per state,
   duplicate counts, and 1,000 actions' histories against the simulator's truth.
4. End to end: `manage.py process_deliveries` (its loop) runs while wrk sends unique postbacks to
   the product at half the request path's measured rate. wrk has no rate option (wrk2 is not
   installed): the Lua script's delay() gives each request the next slot of a fixed per-thread
   schedule (clock_gettime through LuaJIT's ffi), a slot already past goes at once (a server that
   falls behind lowers the rate, it gets no burst afterwards). Reports p50/p99 of
   processed_at - received_at over the run's deliveries, once the processor has applied them all.
5. Stops gunicorn and the processor, drops the database (`--keep` keeps it and the temp dir).

Last lines: `ratio <x>`, `drain <x>`, `e2e p50 <s> p99 <s>`. Exit status 0 only if every check
passed and, on PostgreSQL, every target was reached (ratio >= 0.35, drain >= 0.5, e2e p99 < 2 s);
the targets missed are named. SQLite has no targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
GUNICORN_CONF = ROOT / "postbacks_site" / "gunicorn.conf.py"
MANAGE = ROOT / "manage.py"
ENDPOINT = "/postbacks/impact/"
BARE_APP = "bench.bare_app:application"
NAIVE_APP = "bench.naive_drf:application"

TARGETS = {"ratio": 0.35, "drain": 0.5, "p99": 2.0}
# The backlog's mix: shares of the deliveries (the rest, 5 %, are exact retries).
NEW_SHARE, MODIFIED_SHARE, REVERSED_SHARE = 0.70, 0.20, 0.05
VERIFY_SAMPLE = 1000  # actions whose whole history is compared with the simulator's truth

# Values impact.com would put in the recommended template for a tracked sale.
# ActionId is filled per request by the Lua script; empty macros arrive empty.
TEMPLATE_VALUES = {
    "CampaignId": "1001",
    "CampaignName": "Acme Shoes",
    "ActionTrackerId": "7",
    "ActionTrackerName": "Online Sale",
    "Status": "PENDING",
    "StatusDetail": "",
    "Amount": "129.90",
    "DeltaAmount": "0.00",
    "Payout": "12.99",
    "DeltaPayout": "0.00",
    "Currency": "USD",
    # Changes made as the run starts (filled in by filled_template): on time, as impact.com promises.
    "EventDate": "",
    "CreationDate": "",
    "LockingDate": "2027-01-31T00:00:00-08:00",
    "SubId1": "newsletter",
    "SubId2": "",
    "SubId3": "",
    "PromoCode": "",
}

LUA = r"""
-- Generated by bench/ingest.py: one unique postback per request.
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  sent = 0
  non2xx = 0
  wrk.headers[HEADER_NAME] = SECRET
end

function request()
  sent = sent + 1
  local id = prefix .. "-" .. tid .. "-" .. sent
  return wrk.format("GET", PATH_BEFORE .. id .. PATH_MIDDLE .. id .. PATH_AFTER)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local total_sent, total_non2xx = 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_non2xx = total_non2xx + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"completed": %d, "duration_us": %d, "sent": %d, "non2xx": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, total_sent, total_non2xx,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

# Appended for a paced run. wrk calls delay() before each request of a connection but its first.
LUA_PACED = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local next_slot = nil

-- The thread's requests take the slots of a schedule INTERVAL_MS apart, whichever connection is
-- free; a slot already past goes at once and the schedule restarts from now (no catch-up burst).
function delay()
  local now = now_ms()
  local slot = now
  if next_slot ~= nil and next_slot > now then
    slot = next_slot
  end
  next_slot = slot + INTERVAL_MS
  return math.floor(slot - now + 0.5)
end
"""

# outcome, reason, traceback, attempts, action_id of a delivery just stored
RECEIVED = ("received", "", "", 0, "")
BATCH_LINE = re.compile(r"^(\d+) deliveries in (\d+) ms")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filled_template() -> str:
    """impact.com's recommended URL template filled in, with NUL where the ActionId goes
    (ActionId=<id> ... Oid=order-<id>)."""
    from events import impact

    now = datetime.now(UTC).replace(microsecond=0)
    TEMPLATE_VALUES["EventDate"] = (now - timedelta(minutes=3)).isoformat()
    TEMPLATE_VALUES["CreationDate"] = now.isoformat()
    template = impact.url_template(ENDPOINT)
    path, query = template.split("?", 1)
    pairs = []
    for pair in query.split("&"):
        name, macro = pair.split("=", 1)
        if macro == "{ActionId}":
            pairs.append(f"{name}=\x00")
        elif macro == "{Oid}":
            pairs.append(f"{name}=order-\x00")
        else:
            pairs.append(f"{name}={urllib.parse.quote(TEMPLATE_VALUES[macro.strip('{}')], safe='')}")
    return f"{path}?{'&'.join(pairs)}"


def write_lua(path: Path, filled: str, header_name: str, secret: str, interval_ms: float | None = None) -> Path:
    """The wrk script: the filled-in template with a unique ActionId (and Oid) per request;
    with `interval_ms`, each wrk thread sends one request every interval_ms."""
    before, middle, after = filled.split("\x00")
    script = (
        f"HEADER_NAME = {lua_string(header_name)}\nSECRET = {lua_string(secret)}\n"
        f"PATH_BEFORE = {lua_string(before)}\nPATH_MIDDLE = {lua_string(middle)}\n"
        f"PATH_AFTER = {lua_string(after)}\n" + LUA
    )
    if interval_ms is not None:
        script += f"\nINTERVAL_MS = {interval_ms:.6f}\n" + LUA_PACED
    path.write_text(script)
    return path


def ensure_wrk() -> None:
    """wrk drives the load. When it is missing, say how to install it, and as root with apt-get
    install it (Debian's package) and go on; otherwise stop with that advice."""
    if shutil.which("wrk"):
        return
    print("wrk is not on PATH; it is Debian's package: apt-get install wrk", flush=True)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("install wrk (as root on Debian: apt-get install wrk), then run this again")
    log("installing wrk: apt-get update -qq && apt-get install -y -qq wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed; install wrk by hand (apt-get install wrk)")
    if not shutil.which("wrk"):
        raise SystemExit("apt-get installed wrk but it is still not on PATH")


def admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


def database_url(name: str) -> str:
    parts = urllib.parse.urlsplit(ADMIN_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def free_port(start: int, end: int) -> int:
    for port in range(start, end):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {start}-{end - 1}")


def vendor() -> str:
    from django.db import connection

    return connection.vendor


def execute(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def analyze() -> None:
    """Fresh statistics for every table (PostgreSQL)."""
    if vendor() == "postgresql":
        execute("ANALYZE")


class Autovacuum(threading.Thread):
    """PostgreSQL's autovacuum rules, checked every `interval` seconds on the bench database: ANALYZE
    a table once more than 50 + 10 % of its rows changed since the last one, VACUUM it once more
    than 50 + 20 % are dead (the defaults of autovacuum_{analyze,vacuum}_{threshold,scale_factor}).

    The server may run with autovacuum off (the 2-core development machine does), and then the
    events tables keep the statistics of an empty table (or none) while a drain fills them: the
    planner's choices for the processor's statements are then not those of a running installation
    (README, "Benchmarks"). `interval` is shorter than autovacuum's naptime (60 s) so that the
    statistics follow a drain that grows the tables from nothing in a minute or two.
    """

    TABLES = """SELECT s.relname, s.n_mod_since_analyze, s.n_dead_tup, greatest(c.reltuples, 0)
                FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"""

    def __init__(self, url: str, interval: float):
        super().__init__(name="bench-autovacuum", daemon=True)
        self.url, self.interval = url, interval
        self.stopped = threading.Event()
        self.analyzed: Counter = Counter()
        self.vacuumed: Counter = Counter()
        self.seconds = 0.0
        self.error = ""

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, application_name=self.name) as db:
                while not self.stopped.wait(self.interval):
                    for table, modified, dead, rows in db.execute(self.TABLES).fetchall():
                        started = time.monotonic()
                        if dead > 50 + 0.2 * rows:
                            db.execute(f'VACUUM "{table}"')
                            self.vacuumed[table] += 1
                        if modified > 50 + 0.1 * rows:
                            db.execute(f'ANALYZE "{table}"')
                            self.analyzed[table] += 1
                        self.seconds += time.monotonic() - started
        except Exception as exc:  # reported at the end; the run goes on without it
            self.error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=60)

    def line(self) -> str:
        def counts(counter):
            return ", ".join(f"{t} {n}" for t, n in counter.most_common()) or "none"

        return (
            f"autovacuum emulation (every {self.interval:g} s): ANALYZE {counts(self.analyzed)}; "
            f"VACUUM {counts(self.vacuumed)}; {self.seconds:.1f} s in all"
            + (f"; STOPPED: {self.error}" if self.error else "")
        )


class Server:
    """gunicorn with the product's configuration file, in its own process group."""

    def __init__(self, name: str, app: str | None, env: dict[str, str], port: int, workdir: Path):
        self.name, self.port = name, port
        self.log_path = workdir / f"gunicorn-{name.replace(' ', '-')}.log"
        command = [str(GUNICORN), "--config", str(GUNICORN_CONF)]
        if app:
            command.append(app)  # a positional app overrides wsgi_app from the config file
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{path}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name}: gunicorn exited ({self.process.returncode}); see {self.log_path}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answered (401 for the endpoint without a credential, 400 for the bare app)
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{self.name}: gunicorn did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Graceful stop: workers finish the requests they hold (they are stored before we count)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log_file.close()


def run_wrk(lua: Path, port: int, prefix: str, seconds: float, connections: int, threads: int) -> dict:
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds:g}s",
        "--timeout=10s",
        "--latency",
        f"--script={lua}",
        f"http://127.0.0.1:{port}{ENDPOINT}",
        "--",
        prefix,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    result = json.loads(match.group(1))
    result["rps"] = result["completed"] / (result["duration_us"] / 1e6)
    result["wrk_output"] = completed.stdout
    result["cpu_wrk"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def cpu_seconds(pids) -> dict[int, float]:
    """CPU time (user + system) each process has used so far."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return used


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU time used between the two readings (a process started in between: all of its time)."""
    return sum(seconds - before.get(pid, 0) for pid, seconds in after.items())


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def backends(application_name: str) -> list[int]:
    """PostgreSQL backends of the processes started with PGAPPNAME=application_name (none on SQLite:
    the database work is done inside the processes themselves)."""
    if vendor() != "postgresql":
        return []
    rows = execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name])
    return [row[0] for row in rows]


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


# --- The request path -------------------------------------------------------------------


class Side:
    """One app under test on the request path: its server, and what wrk measured against it."""

    def __init__(self, name: str, title: str, app: str | None, ready_path: str, count_rows):
        self.name, self.title, self.app, self.ready_path, self.count_rows = name, title, app, ready_path, count_rows
        self.server: Server | None = None
        self.runs: list[dict] = []

    @property
    def application_name(self) -> str:
        return f"bench-{self.name.replace(' ', '-')}"

    def start(self, env: dict[str, str], port: int, workdir: Path) -> None:
        log(f"{self.name}: starting gunicorn on 127.0.0.1:{port}")
        # PGAPPNAME (read by libpq) tells this side's database backends apart, for their CPU time.
        env = {**env, "PORT": str(port), "PGAPPNAME": self.application_name}
        self.server = Server(self.name, self.app, env, port, workdir)

    def stop(self) -> None:
        if self.server:
            log(f"{self.name}: stopping gunicorn")
            self.server.stop()
            self.server = None

    def measure(self, lua: Path, args, prefix: str, seconds: float) -> dict:
        workers = cpu_seconds(children(self.server.process.pid))
        databases = cpu_seconds(backends(self.application_name))
        result = run_wrk(lua, self.server.port, prefix, seconds, args.connections, args.threads)
        result["cpu_workers"] = cpu_used(workers, cpu_seconds(children(self.server.process.pid)))
        result["cpu_database"] = cpu_used(databases, cpu_seconds(backends(self.application_name)))
        # Requests wrk gave up on at its deadline may still sit in gunicorn's listen queue: let the
        # workers drain it (the rows stop growing) before going on, so each one is counted.
        rows, deadline = None, time.monotonic() + 20
        while time.monotonic() < deadline:
            previous, rows = rows, self.count_rows(f"{prefix}-")
            if rows == previous:
                break
            time.sleep(0.5)
        result["rows"] = rows
        return result

    def report(self) -> bool:
        """Print the totals over all rounds; True if every check passed."""
        total = {k: sum(run[k] for run in self.runs) for k in self.runs[0] if isinstance(self.runs[0][k], int)}
        rows = {what: sum(run["rows"][what] for run in self.runs) for what in self.runs[0]["rows"]}
        seconds = total["duration_us"] / 1e6
        errors = sum(total[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
        # Every answered request must be stored; a request wrk abandoned unanswered at its deadline
        # may or may not have reached a worker (it is stored if it did).
        stored_ok = all(total["completed"] <= count <= total["sent"] for count in rows.values())
        p50 = sorted(run["p50_us"] for run in self.runs)[len(self.runs) // 2]
        p99 = max(run["p99_us"] for run in self.runs)
        print(f"{self.title}:")
        print(f"  requests/s       {total['completed'] / seconds:,.0f}   ({total['completed']} in {seconds:.1f} s)")
        print(f"  latency p50/p99  {p50 / 1000:.1f} ms / {p99 / 1000:.1f} ms")
        print(f"  non-2xx          {total['non2xx']}")
        print(
            f"  socket errors    {errors} (connect {total['connect_errors']}, read {total['read_errors']}, "
            f"write {total['write_errors']}, timeout {total['timeouts']})"
        )
        cpu = {
            k: sum(run[k] for run in self.runs) * 1000 / total["sent"]
            for k in ("cpu_workers", "cpu_database", "cpu_wrk")
        }
        database = f"PostgreSQL backends {cpu['cpu_database']:.2f}, " if vendor() == "postgresql" else ""
        print(
            f"  CPU per request  {sum(cpu.values()):.2f} ms: gunicorn workers {cpu['cpu_workers']:.2f}, "
            f"{database}wrk {cpu['cpu_wrk']:.2f}"
        )
        in_flight = total["sent"] - total["completed"]
        print(f"  requests sent    {total['completed']} answered + {in_flight} abandoned by wrk at its deadline")
        stored = ", ".join(f"{count} {what}" for what, count in rows.items())
        verdict = "every answered request stored, none twice" if stored_ok else "MISMATCH"
        print(f"  rows stored      {stored}: {verdict}")
        return stored_ok and total["non2xx"] == 0 and errors == 0

    def cpu_per_request(self, keys=("cpu_workers", "cpu_database", "cpu_wrk")) -> float:
        return sum(run[k] for run in self.runs for k in keys) / sum(run["sent"] for run in self.runs)

    def rps(self) -> float:
        return sum(run["completed"] for run in self.runs) / (sum(run["duration_us"] for run in self.runs) / 1e6)


def count_deliveries(prefix: str) -> dict[str, int]:
    from events.models import Delivery

    return {"deliveries": Delivery.objects.filter(query_string__contains=f"ActionId={prefix}").count()}


def count_bare_rows(prefix: str) -> dict[str, int]:
    from bench.bare_app import TABLE

    return {"rows": execute(f"SELECT count(*) FROM {TABLE} WHERE action_id LIKE %s", [prefix + "%"])[0][0]}


# --- The backlog --------------------------------------------------------------------------


@dataclass
class Backlog:
    """Deliveries as the endpoint stores them, in arrival order, and what applying them must give."""

    rows: list[tuple[datetime, str]]  # (received_at, query string)
    actions: list  # events.simulation.world.Action, with their changes
    brands: list
    now: datetime
    expected: dict[str, Counter] = field(default_factory=dict)
    out_of_order: int = 0  # actions whose postbacks arrive in another order than their changes


def delivery_delay(rng: random.Random) -> timedelta:
    """impact.com's promise: within 15 minutes; most within a minute (as the simulator draws it)."""
    return timedelta(seconds=min(14 * 60, max(2.0, rng.lognormvariate(math.log(20), 1.0))))


def _change(action, rng: random.Random, kind, status, detail, amount, payout, at, delta_amount=None, delta_payout=None):
    """The action's next change (world.Change), sent its delivery delay after it happens."""
    from events.simulation import world

    return world.Change(
        action_id=action.action_id,
        index=len(action.changes),
        kind=kind,
        status=status,
        status_detail=detail,
        amount=amount,
        payout=payout,
        delta_amount=delta_amount,
        delta_payout=delta_payout,
        at=at,
        delivery_delay=delivery_delay(rng),
    )


def plan_backlog(size: int, now: datetime, seed: int = 1) -> Backlog:
    """`size` postbacks of the last few hours: 70 % new actions (tracked), 20 % modifications of
    those actions (three in four a partial return with deltas, the rest an approval), 5 % reversals
    (some after a modification), the rest exact retries of earlier postbacks arriving 1 s to 30 min
    after them. Each arrives its delivery delay after its change, and the whole is in arrival order."""
    from events.common.money import smallest_unit
    from events.simulation import world
    from events.simulation.sender import Target

    rng = random.Random(f"bench-backlog-{seed}")
    new = round(size * NEW_SHARE)
    modified = round(size * MODIFIED_SHARE)
    reversed_ = round(size * REVERSED_SHARE)
    retries = size - new - modified - reversed_
    brands = []
    for i, name in enumerate(world.BRAND_NAMES[:8]):
        currency, offset, typical = rng.choice(world.CURRENCIES)
        trackers = tuple(
            (str(rng.randrange(10_000, 99_999)), t) for t in rng.sample(world.TRACKER_NAMES, k=rng.randint(1, 3))
        )
        brands.append(
            world.Brand(
                campaign_id=str(10_000 + rng.randrange(1000) * 10 + i),
                name=name,
                currency=currency,
                utc_offset=offset,
                trackers=trackers,
                commission=Decimal(rng.choice(("0.03", "0.05", "0.08", "0.10", "0.12", "0.15"))),
                typical_amount=typical * rng.uniform(0.6, 1.6),
            )
        )
    weights = [1 / (rank + 1) for rank in range(len(brands))]
    # Changes over an hour that ended two hours ago: every arrival (up to 40 min of later changes,
    # 14 min of delay, 30 min before a retry) is in the past.
    start = now - timedelta(hours=3)
    modified_ones = set(rng.sample(range(new), modified))
    reversed_ones = set(rng.sample(range(new), reversed_))
    target = Target(f"http://127.0.0.1{ENDPOINT}", "unused")  # the credential travels in a header
    sends = []  # (received_at, action_id, index, copy, query string)
    actions = []
    for number, serial in enumerate(rng.sample(range(10**8, 10**9), new)):
        brand = rng.choices(brands, weights=weights)[0]
        tracker = rng.choice(brand.trackers)
        created = (start + timedelta(seconds=rng.uniform(0, 3600))).replace(microsecond=0)
        action = world.draw_action(rng, brand, tracker, serial, created)
        unit = smallest_unit(brand.currency)  # a cent, or a yen
        amount = max(world.money(rng.lognormvariate(math.log(brand.typical_amount), 0.7), brand.currency), unit)
        payout = max(world.money(amount * brand.commission, brand.currency), unit)

        action.changes.append(_change(action, rng, world.TRACKED, "PENDING", "", amount, payout, created))
        at = created
        if number in modified_ones:
            at += timedelta(seconds=rng.randint(30, 1200))
            if rng.random() < 0.75:
                kept = Decimal(str(rng.uniform(0.3, 0.9)))
                new_amount = max(min(world.money(amount * kept, brand.currency), amount - unit), unit)
                new_payout = min(max(world.money(new_amount * brand.commission, brand.currency), unit), payout)
                detail = rng.choice(world.RETURN_DETAILS)
                action.changes.append(
                    _change(
                        action,
                        rng,
                        world.MODIFIED,
                        "PENDING",
                        detail,
                        new_amount,
                        new_payout,
                        at,
                        new_amount - amount,
                        new_payout - payout,
                    )
                )
                amount, payout = new_amount, new_payout
            else:
                action.changes.append(_change(action, rng, world.MODIFIED, "APPROVED", "", amount, payout, at))
        if number in reversed_ones:
            at += timedelta(seconds=rng.randint(30, 1200))
            zero = Decimal("0.00")
            detail = rng.choice(world.REVERSAL_DETAILS)
            action.changes.append(
                _change(action, rng, world.REVERSED, "REVERSED", detail, zero, zero, at, -amount, -payout)
            )
        for c in action.changes:
            received = c.at + c.delivery_delay + timedelta(microseconds=rng.randrange(10**6))
            query = target.request(action.params(c))[1].split("?", 1)[1]
            sends.append((received, action.action_id, c.index, 0, query))
        actions.append(action)
    for original in rng.sample(sends, retries):
        received, action_id, index, _, query = original
        sends.append((received + timedelta(seconds=rng.uniform(1, 1800)), action_id, index, 1, query))
    sends.sort()
    backlog = Backlog(rows=[(s[0], s[4]) for s in sends], actions=actions, brands=brands, now=now)
    first_seen: dict[str, list[int]] = {}
    for _, action_id, index, copy, _ in sends:
        if not copy:
            first_seen.setdefault(action_id, []).append(index)
    backlog.out_of_order = sum(1 for order in first_seen.values() if order != sorted(order))
    states = Counter(a.state for a in actions)
    backlog.expected = {
        "outcomes": Counter(applied=new + modified + reversed_, duplicate=retries),
        "events": Counter(tracked=new, modified=modified, reversed=reversed_),
        "actions": Counter({k: v for k, v in states.items() if v}),
        "duplicate_count": Counter(total=retries),
    }
    return backlog


def load_backlog(backlog: Backlog, credential, progress_every: int = 20_000) -> tuple[int, int]:
    """Write the backlog into events_delivery as the endpoint stores it (`received`, credential
    redacted from the headers); returns the first and last delivery ids."""
    from django.db import connection

    from events.models import Delivery
    from events.simulation.sender import USER_AGENT

    headers = {"Host": "postbacks.example.com", "User-Agent": USER_AGENT, credential.header_name: "[redacted]"}
    (before,) = execute(f"SELECT coalesce(max(id), 0) FROM {Delivery._meta.db_table}")[0]
    if connection.vendor == "postgresql":
        columns = (
            "received_at, method, path, query_string, content_type, body, headers, remote_addr, credential_id, "
            "outcome, reason, traceback, attempts, action_id"
        )
        text = json.dumps(headers)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {Delivery._meta.db_table} ({columns}) FROM STDIN") as copy,
        ):
            for n, (received_at, query) in enumerate(backlog.rows, 1):
                copy.write_row(
                    (received_at, "GET", ENDPOINT, query, "", b"", text, "127.0.0.1", credential.pk, *RECEIVED)
                )
                if n % progress_every == 0:
                    log(f"  {n:,} / {len(backlog.rows):,} rows")
    else:
        batch = []
        for n, (received_at, query) in enumerate(backlog.rows, 1):
            batch.append(
                Delivery(
                    received_at=received_at,
                    method="GET",
                    path=ENDPOINT,
                    query_string=query,
                    headers=headers,
                    remote_addr="127.0.0.1",
                    credential=credential,
                )
            )
            if len(batch) == 2000 or n == len(backlog.rows):
                Delivery.objects.bulk_create(batch)
                batch = []
            if n % progress_every == 0:
                log(f"  {n:,} / {len(backlog.rows):,} rows")
    first, last = execute(f"SELECT min(id), max(id) FROM {Delivery._meta.db_table} WHERE id > %s", [before])[0]
    return first, last


def check_backlog(backlog: Backlog, first: int, last: int) -> list[str]:
    """What the drain left, against what it must: returns the problems (none: all is well)."""
    from django.db.models import Count, Sum

    from events.models import Action, ActionEvent, Delivery
    from events.simulation import verify, world

    problems = []
    got = {
        "outcomes": Counter(Delivery.objects.filter(pk__gte=first, pk__lte=last).outcome_counts()),
        "events": Counter(
            {r["kind"]: r["n"] for r in ActionEvent.objects.values("kind").annotate(n=Count("id")).order_by()}
        ),
        "actions": Counter(
            {r["state"]: r["n"] for r in Action.objects.values("state").annotate(n=Count("id")).order_by()}
        ),
        "duplicate_count": Counter(total=ActionEvent.objects.aggregate(n=Sum("duplicate_count"))["n"] or 0),
    }
    for what, want in backlog.expected.items():
        have = +got[what]
        line = ", ".join(f"{name} {count:,}" for name, count in sorted(have.items())) or "none"
        verdict = "as expected" if have == +want else f"MISMATCH, expected {dict(want)}"
        print(f"  {what:<16} {line}: {verdict}")
        if have != +want:
            problems.append(f"drain: {what} {dict(have)}, expected {dict(want)}")
    sample = random.Random(7).sample(backlog.actions, min(VERIFY_SAMPLE, len(backlog.actions)))
    expected = world.truth(world.World(seed=0, now=backlog.now, brands=backlog.brands, actions=sample))
    report = verify.compare(expected, verify.read_state_orm([a.action_id for a in sample]))
    print(f"  {len(sample):,} actions' histories against the simulator's truth: {report.line()}")
    for line in report.differences[:5]:
        print(f"    {line}")
    if not report.ok:
        problems.append(f"drain: sampled histories {report.line()}")
    return problems


# --- The processor -----------------------------------------------------------------------


def processor_command(args, once: bool) -> list[str]:
    command = [sys.executable, str(MANAGE), "process_deliveries"]
    if once:
        command.append("--once")
    if args.batch:
        command += ["--batch", str(args.batch)]
    return command


def drain(args, env: dict[str, str], workdir: Path, size: int) -> dict:
    """`manage.py process_deliveries --once` over the backlog: wall time, its own batch times, CPU."""
    name = "bench-processor-drain"
    log_path = workdir / "processor-drain.log"
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log_path.open("wb") as stderr:
        process = subprocess.Popen(
            processor_command(args, once=True),
            cwd=ROOT,
            env={**env, "PGAPPNAME": name, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        done = batch_ms = batches = 0
        backend, backend_cpu, last_report, summary = None, 0.0, started, ""
        for line in process.stdout:
            match = BATCH_LINE.match(line)
            if match:
                done, batch_ms, batches = done + int(match[1]), batch_ms + int(match[2]), batches + 1
            elif line.startswith("Applied"):
                summary = line.strip()
            if backend is None:
                backend = next(iter(backends(name)), None)
            if backend is not None:
                backend_cpu = cpu_seconds([backend]).get(backend, backend_cpu)
            now = time.monotonic()
            if now - last_report >= 10:
                last_report = now
                log(f"  drain: {done:,} / {size:,} processed, {done / (now - started):,.0f}/s so far")
        returncode = process.wait()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    if returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        print(f"process_deliveries --once exited {returncode}:\n{tail}")
    return {
        "returncode": returncode,
        "processed": done,
        "batches": batches,
        "wall": wall,
        "batch_seconds": batch_ms / 1000,
        "cpu_processor": cpu,
        "cpu_database": backend_cpu,
        "summary": summary,
        "log": log_path,
    }


def send_probe(port: int, header_name: str, secret: str, filled: str) -> int:
    """One postback through the product; returns its delivery id."""
    action_id = f"probe-{secrets.token_hex(4)}"
    before, middle, after = filled.split("\x00")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{before}{action_id}{middle}{action_id}{after}", headers={header_name: secret}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["delivery"]


def end_to_end(args, env, workdir: Path, product: Side, rate: float, credential, secret: str, filled: str) -> dict:
    """The processor's loop running while wrk sends to the product at `rate` requests/s."""
    from events.models import ActionEvent, Delivery, Outcome

    name = "bench-processor-loop"
    log_path = workdir / "processor-loop.log"
    stderr = log_path.open("wb")
    process = subprocess.Popen(
        processor_command(args, once=False),
        cwd=ROOT,
        env={**env, "PGAPPNAME": name, "PYTHONUNBUFFERED": "1"},
        stdout=stderr,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Ready when it has applied a probe: Django loaded, connected, polling.
        probe = send_probe(product.server.port, credential.header_name, secret, filled)
        deadline = time.monotonic() + 60
        while Delivery.objects.filter(pk=probe, outcome=Outcome.RECEIVED).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the processor did not apply a probe postback; see {log_path}")
            time.sleep(0.1)
        floor = Delivery.objects.order_by("-id").values_list("id", flat=True).first()
        interval_ms = args.threads * 1000 / rate
        lua = write_lua(workdir / "paced.lua", filled, credential.header_name, secret, interval_ms)
        log(
            f"end to end: processor running, wrk paced at {rate:,.0f} requests/s for {args.seconds:g} s "
            f"({args.threads} threads, one request every {interval_ms:.2f} ms each, {args.connections} connections)"
        )
        processes = [process.pid, *children(product.server.process.pid)]
        cpu_before = cpu_seconds(processes)
        db_before = cpu_seconds(backends(name) + backends(product.application_name))
        result = run_wrk(
            lua, product.server.port, f"e{secrets.token_hex(3)}", args.seconds, args.connections, args.threads
        )
        log(f"  wrk sent {result['sent']:,}, {result['rps']:,.0f} answered/s; waiting for the processor to finish")
        deliveries = Delivery.objects.filter(pk__gt=floor)
        previous, deadline, waited = None, time.monotonic() + 120, time.monotonic()
        while True:
            counts = deliveries.outcome_counts()
            total = sum(counts.values())
            if not counts.get(Outcome.RECEIVED) and total == previous:
                break
            if time.monotonic() > deadline:
                log(f"  gave up waiting after 120 s: {counts}")
                break
            previous = total
            time.sleep(0.5)
        result["tail"] = time.monotonic() - waited
        result["cpu_processes"] = cpu_used(cpu_before, cpu_seconds(processes))
        result["cpu_processor"] = cpu_used({process.pid: cpu_before.get(process.pid, 0)}, cpu_seconds([process.pid]))
        result["cpu_database"] = cpu_used(db_before, cpu_seconds(backends(name) + backends(product.application_name)))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        stderr.close()
    rows = list(deliveries.values_list("received_at", "processed_at"))
    result["outcomes"] = deliveries.outcome_counts()
    result["events"] = ActionEvent.objects.filter(delivery_id__gt=floor).count()
    result["delays"] = [(p - r).total_seconds() for r, p in rows if p is not None]
    result["rate"] = rate
    result["log"] = log_path
    return result


# --- The run -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=int, default=10, help="measured time per side and round, and end to end (default 10)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate the request-path sides this many times (default 3: a busy machine's load moves)",
    )
    parser.add_argument("--backlog", type=int, default=100_000, help="deliveries the processor drains (default 100000)")
    parser.add_argument("--batch", type=int, help="processor batch size (default: PROCESSING_BATCH_SIZE)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent wrk connections (default 16)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the config file's)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each side (default 1)")
    parser.add_argument(
        "--autovacuum-every",
        type=float,
        default=1.0,
        help="PostgreSQL: apply autovacuum's rules every this many seconds (default 1; 0: never, as a server "
        "with autovacuum off leaves the tables)",
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive DRF baseline")
    parser.add_argument("--sqlite", action="store_true", help="SQLite (a file, the product's settings); no targets")
    parser.add_argument("--port", type=int, default=8150, help="first TCP port to try (default 8150)")
    parser.add_argument("--database", default="h_bench_ingest", help="PostgreSQL database created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the database and the temp dir afterwards")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database):
        parser.error("--database must be a plain lower-case identifier")
    if args.seconds < 1 or args.warmup < 1 or args.rounds < 1:
        parser.error("--seconds, --warmup and --rounds must be at least 1 (wrk counts whole seconds)")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if args.backlog < 100:
        parser.error("--backlog must be at least 100")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    ensure_wrk()

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if args.sqlite:
        sqlite_path = workdir / "db.sqlite3"
        log(f"SQLite database {sqlite_path}")
        database_env = {"DATABASE_URL": "", "SQLITE_PATH": str(sqlite_path), "BARE_SQLITE_PATH": str(sqlite_path)}
    else:
        url = database_url(args.database)
        log(f"creating database {args.database}")
        admin_execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_execute(f'CREATE DATABASE "{args.database}"')
        database_env = {"DATABASE_URL": url, "BARE_DATABASE_URL": url}
    try:
        os.environ.update(database_env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from bench.bare_app import create_table_sql
        from events.models import Credential, Delivery
        from events.reporting import reports

        log("migrating")
        call_command("migrate", verbosity=0, interactive=False)
        execute(create_table_sql(connection.vendor))
        autovacuum = None
        if connection.vendor == "postgresql" and args.autovacuum_every > 0:
            autovacuum = Autovacuum(database_env["DATABASE_URL"], args.autovacuum_every)
            autovacuum.start()
        credential, secret = Credential.create_with_secret(label="bench/ingest.py")
        filled = filled_template()
        lua = write_lua(workdir / "postbacks.lua", filled, credential.header_name, secret)
        connection.close()

        env = {**os.environ, **database_env, "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
        env.pop("GUNICORN_ACCESS_LOG", None)
        if args.workers:
            env["WEB_CONCURRENCY"] = str(args.workers)
        bare = Side("bare app", "bare app (one INSERT ... ON CONFLICT DO NOTHING)", BARE_APP, "/", count_bare_rows)
        naive = Side(
            "naive DRF", "naive DRF view (the same INSERT, no auth, no parsing)", NAIVE_APP, "/", count_bare_rows
        )
        product = Side(
            "request path", "request path (auth, store, answer; no processor running)", None, ENDPOINT, count_deliveries
        )
        sides = [bare] + ([] if args.no_naive else [naive]) + [product]
        problems: list[str] = []
        try:
            # ---- 1. the request path, every server up (idle sync workers wait in accept(), no CPU)
            port = args.port - 1
            for side in sides:
                # Each search starts past the port the previous side took: that server may not
                # listen yet, so a probe alone could hand the same port out twice.
                port = free_port(port + 1, args.port + 50)
                side.start(env, port, workdir)
            for side in sides:
                side.server.wait_ready(side.ready_path)
                log(f"{side.name}: warming up for {args.warmup:g} s")
                side.measure(lua, args, f"w{secrets.token_hex(3)}", args.warmup)
            for round_number in range(1, args.rounds + 1):
                for side in sides:
                    log(
                        f"round {round_number}/{args.rounds}, {side.name}: {args.seconds:g} s, "
                        f"{args.connections} connections"
                    )
                    side.runs.append(side.measure(lua, args, f"m{secrets.token_hex(3)}", args.seconds))
                    log(f"  {side.runs[-1]['rps']:,.0f} requests/s")
            for side in sides:
                if side is not product:
                    side.stop()
            print()
            print(
                f"Request path: {args.rounds} x {args.seconds:g} s per side, {args.connections} connections, "
                f"{args.threads} wrk threads, gunicorn workers: {env.get('WEB_CONCURRENCY') or 'config default'}, "
                f"{os.cpu_count()} CPUs, {connection.vendor}"
            )
            for side in sides:
                if not side.report():
                    problems.append(f"request path: {side.name} checks failed")
            ratio = product.rps() / bare.rps()
            print(
                f"CPU per request, bare app over request path: {bare.cpu_per_request() / product.cpu_per_request():.2f}"
            )
            if not args.no_naive:
                print(
                    f"naive DRF view over bare app: {naive.rps() / bare.rps():.2f}; request path over naive DRF "
                    f"view: {product.rps() / naive.rps():.2f}"
                )
            print(f"ratio {ratio:.2f}", flush=True)

            # ---- 2. the drain
            print()
            log("drain: deleting the request path's deliveries (never processed)")
            execute(f"DELETE FROM {Delivery._meta.db_table}")
            if connection.vendor == "postgresql":
                execute(f"VACUUM ANALYZE {Delivery._meta.db_table}")
            log(f"drain: planning a backlog of {args.backlog:,} postbacks")
            backlog = plan_backlog(args.backlog, datetime.now(UTC))
            log(f"drain: writing it into {Delivery._meta.db_table}")
            load_started = time.monotonic()
            first, last = load_backlog(backlog, credential)
            if connection.vendor == "postgresql":
                execute(f"ANALYZE {Delivery._meta.db_table}")
            log(f"  {len(backlog.rows):,} deliveries {first}..{last} in {time.monotonic() - load_started:.1f} s")
            # As once the dashboard has been viewed: every batch then keeps the reports' totals too.
            reports.ensure_totals()
            connection.close()
            log(f"drain: manage.py process_deliveries --once (batch {args.batch or 'default'})")
            drained = drain(args, env, workdir, len(backlog.rows))
            processed = drained["processed"]
            drain_rate = processed / drained["wall"]
            own_rate = processed / drained["batch_seconds"] if drained["batch_seconds"] else 0.0
            print()
            print(
                f"Drain of {len(backlog.rows):,} postbacks ({backlog.expected['actions'].total():,} actions, "
                f"{backlog.out_of_order:,} of them with postbacks arriving out of order), one processor, "
                f"batches of {args.batch or 'PROCESSING_BATCH_SIZE'}:"
            )
            print(f"  processor said   {drained['summary'].rstrip('.') or '(nothing)'}; exit {drained['returncode']}")
            print(
                f"  wall time        {drained['wall']:.1f} s: {drain_rate:,.0f} postbacks processed/s "
                f"(process start to exit)"
            )
            print(
                f"  processor's own  {drained['batch_seconds']:.1f} s in {drained['batches']} batches: "
                f"{own_rate:,.0f}/s (its batch times; the claim query and the commit are outside them)"
            )
            database = (
                f", PostgreSQL backend {drained['cpu_database'] * 1000 / max(1, processed):.2f}"
                if connection.vendor == "postgresql"
                else ""
            )
            print(
                f"  CPU per postback processor {drained['cpu_processor'] * 1000 / max(1, processed):.2f} ms"
                f"{database} (run of {drained['wall']:.0f} s); the bare app's per request: "
                f"{bare.cpu_per_request(('cpu_workers', 'cpu_database')) * 1000:.2f} ms (gunicorn workers + database)"
            )
            if drained["returncode"] != 0 or processed != len(backlog.rows):
                problems.append(f"drain: processed {processed} of {len(backlog.rows)}, exit {drained['returncode']}")
            problems += check_backlog(backlog, first, last)
            drain_ratio = drain_rate / bare.rps()
            print(f"drain {drain_ratio:.2f}", flush=True)
            connection.close()

            # ---- 3. end to end
            print()
            rate = product.rps() / 2
            e2e = end_to_end(args, env, workdir, product, rate, credential, secret, filled)
        finally:
            for side in sides:
                side.stop()
            if autovacuum:
                autovacuum.stop()
        delays = e2e["delays"]
        applied = e2e["outcomes"].get("applied", 0)
        stored = sum(e2e["outcomes"].values())
        print()
        print(
            f"End to end (received -> applied), one processor running, wrk paced at {e2e['rate']:,.0f}/s "
            f"(half the request path's {product.rps():,.0f}/s):"
        )
        print(
            f"  request rate     {e2e['rps']:,.0f} answered/s ({e2e['completed']:,} in {e2e['duration_us'] / 1e6:.1f} s), "
            f"latency p50/p99 {e2e['p50_us'] / 1000:.1f} / {e2e['p99_us'] / 1000:.1f} ms"
        )
        print(
            f"  stored           {stored:,} (sent {e2e['sent']:,}): {dict(e2e['outcomes'])}, {e2e['events']:,} events"
        )
        print(f"  tail             the processor had applied them all {e2e['tail']:.1f} s after wrk stopped")
        p50 = percentile(delays, 0.5) if delays else float("nan")
        p99 = percentile(delays, 0.99) if delays else float("nan")
        if delays:
            print(
                f"  received->applied p50 {p50:.3f} s, p90 {percentile(delays, 0.9):.3f} s, p99 {p99:.3f} s, "
                f"max {max(delays):.3f} s over {len(delays):,} deliveries"
            )
        per = 1000 / max(1, stored)
        database = f", PostgreSQL backends {e2e['cpu_database'] * per:.2f}" if connection.vendor == "postgresql" else ""
        print(
            f"  CPU per postback gunicorn workers + processor {e2e['cpu_processes'] * per:.2f} ms (processor "
            f"{e2e['cpu_processor'] * per:.2f}){database}; wrk {e2e['cpu_wrk'] * per:.2f}"
        )
        errors = sum(e2e[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
        if not (e2e["completed"] <= stored <= e2e["sent"]) or applied != stored or e2e["events"] != stored:
            problems.append(
                f"end to end: stored {stored}, applied {applied}, events {e2e['events']}, sent {e2e['sent']}"
            )
        if e2e["non2xx"] or errors:
            problems.append(f"end to end: {e2e['non2xx']} non-2xx answers, {errors} socket errors")
        if e2e["rps"] < 0.9 * e2e["rate"]:
            problems.append(f"end to end: wrk reached {e2e['rps']:,.0f}/s, not the {e2e['rate']:,.0f}/s asked")

        print()
        if autovacuum:
            print(autovacuum.line())
        log(
            f"total time {time.monotonic() - started:.0f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        for problem in problems:
            print(f"CHECK FAILED: {problem}")
        missed = []
        if not args.sqlite:
            if ratio < TARGETS["ratio"]:
                missed.append(f"ratio {ratio:.2f} < {TARGETS['ratio']}")
            if drain_ratio < TARGETS["drain"]:
                missed.append(f"drain {drain_ratio:.2f} < {TARGETS['drain']}")
            if not p99 < TARGETS["p99"]:
                missed.append(f"e2e p99 {p99:.2f} s >= {TARGETS['p99']} s")
            print("targets missed: " + ("; ".join(missed) if missed else "none"))
        else:
            print("SQLite: no targets")
        print(f"ratio {ratio:.2f}")
        print(f"drain {drain_ratio:.2f}")
        print(f"e2e p50 {p50:.3f} s p99 {p99:.3f} s")
        return 0 if not problems and not missed else 1
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            log(
                f"kept {'the SQLite file in ' + str(workdir) if args.sqlite else 'database ' + args.database} and {workdir}"
            )
        else:
            if not args.sqlite:
                admin_execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
