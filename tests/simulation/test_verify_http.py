"""`--verify` through `GET /api/actions/`: a receiver that is busy for a moment is asked again."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from events.simulation import verify


class Receiver(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict]] = []

    def do_GET(self):
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


ACTION = {"action_id": "A1", "state": "tracked", "events": []}
BUSY = (503, {"error": "unavailable"})


def read(server, naps: list[float], timeout: float = 30) -> dict:
    url = f"http://127.0.0.1:{server.server_port}/api/actions/"
    return verify.read_state_http(url, "secret", "X-Postback-Token", ["A1"], timeout=timeout, sleep=naps.append)


def test_a_503_is_asked_again_until_the_state_comes(receiver):
    Receiver.answers = [BUSY, BUSY, (200, {"actions": [ACTION], "missing": [], "pending": 0})]
    naps: list[float] = []
    assert read(receiver, naps) == {"A1": ACTION}
    assert len(naps) == 2


def test_a_receiver_busy_past_the_timeout_is_reported(receiver):
    Receiver.answers = [BUSY]
    with pytest.raises(verify.Unavailable, match="answered 503"):
        read(receiver, [], timeout=0.2)


def test_another_error_is_reported_at_once(receiver):
    Receiver.answers = [(500, {"error": "boom"}), (200, {"actions": [ACTION], "missing": [], "pending": 0})]
    naps: list[float] = []
    with pytest.raises(RuntimeError, match="answered 500"):
        read(receiver, naps)
    assert naps == []
