"""Benchmark: 10,000 changes fanned out to one local endpoint.

Stores 10,000 postbacks (5,000 actions: tracked, then a modification for each) as received
deliveries, applies them with the processor (the outbox written in its batches), then sends every
message to a local receiver (a threaded http.server on 127.0.0.1 that verifies nothing and answers
204) with the dispatcher the worker runs (`dispatch_all`). Prints the processor's apply rate, the
dispatcher's messages/s, their ratio (target: at least 500 messages/s) and the load average.

The receiver runs in a process of its own by default, as a publisher's endpoint would: in the
dispatcher's process its request parsing would share the dispatcher's interpreter lock and be
counted as the dispatcher's time (`--receiver thread` measures that way). `--again` sends the
messages of the previous run once more (every message pending again, attempts dropped), without
storing and applying the postbacks again.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/fwd_bench .venv/bin/python bench/forward.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fwd_bench")
os.environ["DATABASE_URL"] = URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ["FORWARD_ALLOW_PRIVATE_TARGETS"] = "true"

ACTIONS = 5_000


def ensure_database() -> None:
    name = URL.rsplit("/", 1)[1]
    with psycopg.connect(URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def serve(ports) -> None:
    """The receiver, in a process of its own: sends its port, then answers until terminated."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.daemon_threads = True
    ports.put(server.server_port)
    server.serve_forever()


def start_receiver(mode: str) -> tuple[int, object]:
    """(port, what stops it)."""
    if mode == "thread":
        server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.server_port, server.shutdown
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=serve, args=(ports,), daemon=True)
    process.start()
    return ports.get(timeout=30), process.terminate


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receiver", choices=["process", "thread"], default="process", help="where the receiver runs")
    parser.add_argument("--again", action="store_true", help="send the previous run's messages again, apply nothing")
    return parser.parse_args()


def main() -> None:
    options = arguments()
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from events.forwarding import dispatch_all
    from events.models import Attempt, Endpoint, Message

    call_command("migrate", verbosity=0)
    port, stop_receiver = start_receiver(options.receiver)
    if options.again:
        Attempt.objects.all().delete()
        Message.objects.update(
            status="pending", attempts=0, first_attempt_at=None, finished_at=None, claimed_until=None
        )
        Endpoint.objects.update(url=f"http://127.0.0.1:{port}/hooks")
        apply_rate = None
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE events_attempt, events_message, events_endpoint, events_delivery, events_actionevent, "
                "events_action CASCADE"
            )
        Endpoint.objects.create(url=f"http://127.0.0.1:{port}/hooks", description="bench")
        apply_rate = store_and_apply()
    messages = Message.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_message")  # as autovacuum would, before the dispatcher plans its claims
    started = time.monotonic()
    sent = dispatch_all()  # what the worker's dispatcher runs
    seconds = time.monotonic() - started
    delivered = Message.objects.filter(status="delivered").count()
    rate = delivered / seconds
    print(
        f"dispatcher: {delivered} of {messages} messages delivered in {seconds:.1f} s ({rate:.0f} messages/s, "
        f"{sent} attempts; receiver in a {options.receiver})"
    )
    ratio = f"ratio over the processor's apply rate: {rate / apply_rate:.2f}; " if apply_rate else ""
    print(f"{ratio}target >= 500 messages/s: {'met' if rate >= 500 else 'NOT met'}")
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    stop_receiver()


def store_and_apply() -> float:
    """Store the postbacks as received deliveries and apply them with the processor; its rate."""
    from events.models import Delivery, Message
    from events.processing import process_pending

    # Recent changes, as a live stream is: no late-postback evidence to write (not what is measured).
    created = datetime.now(UTC) - timedelta(minutes=2)
    base = {
        "CampaignId": "1001",
        "CampaignName": "Bench",
        "Status": "PENDING",
        "Currency": "USD",
        "CreationDate": created.isoformat(),
    }
    deliveries = []
    for n in range(ACTIONS):
        tracked = {**base, "ActionId": f"F{n}", "Amount": "100.00", "Payout": "10.00"}
        modified = {
            **tracked,
            "Amount": "80.00",
            "DeltaAmount": "-20.00",
            "UpdateDate": (created + timedelta(minutes=1)).isoformat(),
        }
        for params in (tracked, modified):
            deliveries.append(Delivery(method="GET", path="/postbacks/impact/", query_string=urlencode(params)))
    deliveries.sort(key=lambda d: d.query_string.count("UpdateDate"))  # every tracked first
    Delivery.objects.bulk_create(deliveries, batch_size=2000)

    started = time.monotonic()
    report = process_pending()
    apply_seconds = time.monotonic() - started
    apply_rate = report.count / apply_seconds
    print(
        f"processor: {report.count} postbacks applied in {apply_seconds:.1f} s ({apply_rate:.0f}/s), "
        f"{Message.objects.count()} messages written"
    )
    return apply_rate


if __name__ == "__main__":
    main()
