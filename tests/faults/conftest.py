"""Fault scenarios against the real thing: a throwaway PostgreSQL cluster, real gunicorn, the
processor (`manage.py process_deliveries`), the simulator.

Everything here runs in subprocesses pointed at the throwaway cluster through DATABASE_URL; the
pytest process only starts, breaks and inspects them. Every wait polls with a deadline.

The request path only stores a delivery (`received`); the processor applies it. A scenario whose
deliveries must end applied starts a processor (or several, one after another).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _server_binaries() -> Path:
    """FAULTS_PG_BIN, or the newest Debian PostgreSQL installed (/usr/lib/postgresql/<version>/bin)."""
    if os.environ.get("FAULTS_PG_BIN"):
        return Path(os.environ["FAULTS_PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _server_binaries()
PORTS = range(int(os.environ.get("FAULTS_PORT_FIRST", "8700")), int(os.environ.get("FAULTS_PORT_LAST", "8799")) + 1)
ENDPOINT = "/postbacks/impact/"
_databases = count(1)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1, evidence=None):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds,
    with what `evidence()` returns (logs of the processes involved), if given."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            details = f"\n{evidence()}" if evidence else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{details}")
        time.sleep(interval)


_taken: set[int] = set()


def free_port() -> int:
    for port in PORTS:
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def as_postgres(*args, **kwargs) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True, text=True, **kwargs)


@dataclass
class Cluster:
    """A PostgreSQL cluster in a temporary directory, ours to stop and restart."""

    directory: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args, timeout: float = 60):
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
        return as_postgres(
            PG_BIN / "pg_ctl", "-D", self.directory / "data", "-l", self.directory / "log", "-o", options,
            "-t", int(timeout), "-w", *args, timeout=timeout + 10,
        )  # fmt: skip

    def stop(self):
        self.pg_ctl("-m", "fast", "stop")

    def start(self):
        self.pg_ctl("start")

    def sql(self, database: str, statement: str, params=None):
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else None


@pytest.fixture(scope="session")
def cluster():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL server binaries in {PG_BIN} (FAULTS_PG_BIN)")
    directory = Path(tempfile.mkdtemp(prefix="faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = Cluster(directory, free_port())
    as_postgres(PG_BIN / "initdb", "-D", directory / "data", "-U", "postgres", "--auth=trust", "--no-sync")
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(directory, ignore_errors=True)


def base_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PYTEST", "ALERT_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="postbacks_site.settings",
        SECRET_KEY="faults-suite-not-secret",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(*args, env: dict, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and result.returncode:
        raise AssertionError(f"manage.py {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def template_database(cluster):
    cluster.sql("postgres", "CREATE DATABASE faults_template")
    env = base_env(DATABASE_URL=cluster.url("faults_template"))
    manage("migrate", "--noinput", env=env)
    return "faults_template"


@pytest.fixture
def database(cluster, template_database):
    """A fresh, migrated database for one scenario; its DATABASE_URL."""
    name = f"faults_{next(_databases)}"
    cluster.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {template_database}")
    return cluster.url(name)


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    access_log: Path
    error_log: Path
    env: dict = field(repr=False)
    token: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{ENDPOINT}"

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def statuses(self) -> dict[int, int]:
        """Answers to the endpoint, by status, from gunicorn's access log."""
        found: dict[int, int] = {}
        for line in self.access_log.read_text().splitlines():
            match = re.search(r'"\w+ ' + re.escape(ENDPOINT) + r' [^"]*" (\d{3}) ', line)
            if match:
                found[int(match.group(1))] = found.get(int(match.group(1)), 0) + 1
        return found


def answering(port: int) -> bool:
    """Django answers /healthz (503 too: no watcher runs beside this gunicorn)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 503
    except OSError:
        return False


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def gunicorn(database, tmp_path):
    """Start the real gunicorn (postbacks_site/gunicorn.conf.py) on `database`; stopped afterwards.
    It only stores deliveries: nothing is applied unless a `processor` runs too."""
    started: list[Server] = []

    def _start(workers: int = 3, port: int | None = None, **env_extra) -> Server:
        """`port`: the port of a server started before (restarted in its place, as systemd would)."""
        port = port or free_port()
        access_log, error_log = tmp_path / f"access-{len(started)}.log", tmp_path / f"gunicorn-{len(started)}.log"
        access_log.touch()
        env = base_env(
            DATABASE_URL=database, PORT=port, WEB_CONCURRENCY=workers, GUNICORN_ACCESS_LOG=access_log, **env_extra
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "postbacks_site/gunicorn.conf.py"],
            cwd=ROOT, env=env, stdout=error_log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        token = manage("create_credential", "--label", "faults simulator", env=env).stdout.strip().splitlines()[-1]
        server = Server(process, port, access_log, error_log, env, token)
        started.append(server)
        wait_until(lambda: process.poll() is not None or answering(port), 60, "gunicorn to answer /healthz")
        assert process.poll() is None, error_log.read_text()
        wait_until(lambda: len(server.workers()) >= workers, 30, f"{workers} gunicorn workers")
        return server

    yield _start
    for server in started:
        stop_process(server.process)


# The processor's connections carry this name, so pg_stat_activity tells its batches apart.
PROCESSOR_APPLICATION = "faults-processor"
BATCH_LINE = re.compile(r"batch: (\d+) deliveries in (\d+) ms")


@dataclass
class Processor:
    """`manage.py process_deliveries` running in the background; its log kept for evidence."""

    process: subprocess.Popen
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text()

    def batches(self) -> list[tuple[int, int]]:
        """(deliveries, milliseconds) of each batch it logged as committed."""
        return [(int(n), int(ms)) for n, ms in BATCH_LINE.findall(self.output)]

    def errors(self) -> list[str]:
        return [line for line in self.output.splitlines() if "database error" in line]

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (it finishes the batch in flight) and wait; its exit status."""
        stop_process(self.process, timeout)
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def processor(database, tmp_path):
    """Start `manage.py process_deliveries` (extra arguments such as --batch) on `database`;
    stopped with SIGTERM afterwards. `env_extra`: settings it must share with gunicorn."""
    started: list[Processor] = []

    def _start(*args, **env_extra) -> Processor:
        log = tmp_path / f"processor-{len(started)}.log"
        url = f"{database}?application_name={PROCESSOR_APPLICATION}"
        env = base_env(DATABASE_URL=url, LOG_FORMAT="plain", **env_extra)
        process = subprocess.Popen(
            [sys.executable, "manage.py", "process_deliveries", *map(str, args)],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(running := Processor(process, log))
        wait_until(
            lambda: process.poll() is not None or "processor started" in running.output, 60, "the processor to start"
        )
        assert running.running(), running.output
        return running

    yield _start
    for running in started:
        running.stop()


def batch_in_flight(cluster: Cluster, database: str) -> bool:
    """A processor is inside a batch: it has claimed deliveries (row locks take a transaction id) and
    not committed yet."""
    rows = cluster.sql(
        "postgres",
        "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = %s AND backend_xid IS NOT NULL",
        (database.rsplit("/", 1)[1], PROCESSOR_APPLICATION),
    )
    return bool(rows)


def processor_connections(cluster: Cluster, database: str) -> int:
    rows = cluster.sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        (database.rsplit("/", 1)[1], PROCESSOR_APPLICATION),
    )
    return rows[0][0]


def tail(title: str, text: str, size: int = 4000) -> str:
    return f"--- {title}\n{text[-size:]}\n"


class DrainedGate:
    """Where the simulator's --verify reads (`GET /api/actions/`): each request is held until no
    delivery waits for a processor (up to `drain` seconds), then passed to gunicorn as it is.

    /api/actions/ reads a page of actions and only then counts the deliveries still `received`, in
    another statement: a batch committed between the two makes a page that misses it and says
    `"pending": 0`, and the simulator takes that page as final (seen here: the last batch missing
    from the first page of 100 actions). Until the view counts first, the suite reads once the
    database says the processor has drained, so a scenario fails on what the receiver lost, not on
    that race. The simulator's own wait on `pending` is therefore not exercised here.
    """

    def __init__(self, server: Server, database: str, drain: float):
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with contextlib.suppress(AssertionError):  # not drained in time: the simulator reports it
                    wait_until(lambda: drained(database), drain, "the processor to drain", interval=0.2)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                request = urllib.request.Request(f"http://127.0.0.1:{server.port}{self.path}", headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, body = exc.code, exc.read()
                gate.passed += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.passed = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/actions/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def drained(database: str) -> bool:
    try:
        return waiting(database) == 0
    except psycopg.OperationalError:  # the database is down (a scenario restarts it)
        return False


class Simulation:
    """`manage.py simulate_postbacks` running in the background against a server.

    Like impact.com it only speaks HTTP (a credential made beforehand, --verify through /api/actions/),
    so a database restart cannot break the simulator's own connection. Its --verify reads through a
    `DrainedGate`, once the processor has applied everything (up to `drain` seconds; the simulator's
    --timeout, per request, is as long). `verify=False`: send only (a backlog for a processor
    started later).
    """

    def __init__(
        self, server: Server, database: str, *args, timeout: float = 300, verify: bool = True, drain: float = 120
    ):
        self.timeout = timeout
        self.output_path = server.access_log.with_name(f"simulate-{time.monotonic_ns()}.log")
        self.gate = DrainedGate(server, database, drain) if verify else None
        verifying = ["--verify", "--verify-via", "http", "--api-url", self.gate.url] if self.gate else []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "simulate_postbacks", "--url", server.url, "--no-progress", *verifying,
             f"--token={server.token}", "--wait", "30", "--timeout", str(int(drain)), *map(str, args)],
            cwd=ROOT, env=server.env, stdout=self.output_path.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def output(self) -> str:
        return self.output_path.read_text()

    def acknowledged(self) -> bool:
        """Every postback was sent and answered (the simulator says so before it verifies)."""
        return "Sent " in self.output

    def evidence(self, server: Server, *processors: Processor) -> str:
        """The simulator's output, the server's answers so far and the end of its log and the processors'."""
        return (
            f"answers so far: {server.statuses()}\n"
            + tail("simulator", self.output)
            + tail("gunicorn", server.error_log.read_text())
            + "".join(tail(f"processor {p.process.pid}", p.output) for p in processors)
        )

    def finish(self) -> str:
        try:
            self.process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the simulator did not finish in {self.timeout:g} s:\n{self.output}") from None
        return self.output

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.gate:
            self.gate.close()


@pytest.fixture
def simulate(database):
    running: list[Simulation] = []

    def _simulate(server: Server, *args, timeout: float = 300, verify: bool = True, drain: float = 120) -> Simulation:
        simulation = Simulation(server, database, *args, timeout=timeout, verify=verify, drain=drain)
        running.append(simulation)
        return simulation

    yield _simulate
    for simulation in running:
        simulation.close()


def verify_line(output: str) -> str:
    match = re.search(r"Verify \(\w+, \d+ actions\): (lost: \d+, wrong: \d+, duplicated: \d+)", output)
    assert match, f"no verification in the simulator's output:\n{output}"
    return match.group(1)


def deliveries(url: str) -> dict[str, int]:
    """Stored deliveries by outcome (`received`: not applied yet)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT outcome, count(*) FROM events_delivery GROUP BY outcome").fetchall())


def waiting(url: str) -> int:
    """Deliveries waiting for a processor (what /api/actions/ calls `pending`)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        (row,) = conn.execute(
            "SELECT count(*) FROM events_delivery WHERE outcome = 'received' AND pruned_at IS NULL"
        ).fetchall()
    return row[0]


def attempts(url: str) -> dict[int, int]:
    """Deliveries by the number of times they were processed (committed: a rolled-back batch never counts)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT attempts, count(*) FROM events_delivery GROUP BY attempts").fetchall())


# Reads the state as it is: unlike the simulator's orm mode it applies nothing pending itself, so a
# clean line proves that the processor applied everything.
VERIFY_AGAIN = """
from datetime import datetime

from events.intake.actions_api import action_state
from events.models import Action
from events.processing import pending
from events.simulation import world as simulator
from events.simulation.verify import compare

world = simulator.generate_world({seed}, simulator.SCENARIOS[{scenario!r}], now=datetime.fromisoformat({now!r}),
                                 actions={actions})
expected = simulator.truth(world)
print("Pending:", pending().count())
ids = list(expected)
state = {{}}
for start in range(0, len(ids), 500):
    for action in Action.objects.filter(action_id__in=ids[start : start + 500]).prefetch_related("events"):
        state[action.action_id] = action_state(action)
print("Verify again:", compare(expected, state).line())
"""


def verify_again(env: dict, *, scenario: str, seed: int, now: str, actions: int) -> str:
    """The simulator's comparison once more, without sending: the same seed and --now, the same world.
    Fails if anything is still pending (nothing here applies it)."""
    code = VERIFY_AGAIN.format(scenario=scenario, seed=seed, now=now, actions=actions)
    output = manage("shell", "-c", code, env=env).stdout
    assert "Pending: 0\n" in output, output
    match = re.search(r"Verify again: (.*)", output)
    assert match, output
    return match.group(1).strip()
