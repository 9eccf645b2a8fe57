"""A local receiver of forwarded messages: a threaded http.server on 127.0.0.1 that verifies every
signature with the `standardwebhooks` library, processes each `webhook-id` once, counts the
duplicates and checks that each action's changes arrive in order."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from events.models import Endpoint


class Receiver:
    def __init__(self):
        self.secrets: list[str] = []
        self.behaviour = lambda body: "ok"  # given the raw body: ok | 500 | timeout | drop | late
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()  # webhook-id -> deliveries
        self.processed: dict[str, list[int]] = defaultdict(list)  # action id -> sequences, in arrival order
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.bad_signatures = 0
        self.out_of_order: list[str] = []
        self.release = threading.Event()
        self.sockets: list = []  # every connection the receiver accepted
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.sockets.append(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen.values())

    def handle(self, request, body: bytes) -> None:
        behaviour = self.behaviour(body)
        if behaviour == "drop":
            request.close_connection = True
            request.connection.close()
            return
        if behaviour == "timeout":
            self.release.wait(5)
            return
        if behaviour == "500":
            self._answer(request, 500, b"busy")
            return
        headers = dict(request.headers.items())
        try:
            payload = self.verify(body, headers)
        except Exception:
            with self.lock:
                self.bad_signatures += 1
            self._answer(request, 400, b"bad signature")
            return
        with self.lock:
            msg_id = headers["webhook-id"]
            self.seen[msg_id] += 1
            if self.seen[msg_id] == 1:
                self.bodies.append(payload)
                self.headers.append(headers)
                if payload["type"].startswith("action."):
                    action = payload["data"]["action"]["id"]
                    sequence = payload["data"]["event"]["sequence"]
                    if self.processed[action] and self.processed[action][-1] >= sequence:
                        self.out_of_order.append(action)
                    self.processed[action].append(sequence)
        if behaviour == "late":  # processed, but the answer comes after the sender gave up: a resend follows
            self.release.wait(1)
        self._answer(request, 200, b"ok " + b"x" * 5000)

    def verify(self, body: bytes, headers: dict) -> dict:
        errors = []
        for secret in self.secrets:
            try:
                return Webhook(secret).verify(body, headers)
            except Exception as exc:
                errors.append(exc)
        raise errors[0] if errors else AssertionError("no secret")

    @staticmethod
    def _answer(request, status: int, content: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    def hang_up(self) -> None:
        """Close every connection from the receiver's side, as a server does with idle ones."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.FORWARD_ALLOW_PRIVATE_TARGETS = True
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.close()


@pytest.fixture
def endpoint(db, receiver):
    endpoint = Endpoint.objects.create(url=receiver.url, description="test receiver")
    receiver.secrets = [endpoint.secret]
    return endpoint


def body_of(message) -> dict:
    return json.loads(message.body)
