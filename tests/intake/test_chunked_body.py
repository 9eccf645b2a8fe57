"""A chunked POST (no Content-Length) keeps its body. Django reads such a body as empty, which
stored the delivery without its payload; the WSGI app is called as gunicorn calls it (chunks
already decoded, `wsgi.input` readable, no CONTENT_LENGTH)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from events.models import Delivery
from events.processing import process_pending
from postbacks_site.wsgi import application
from tests.conftest import postback_params


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call_chunked(credential, body: bytes):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/postbacks/impact/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        f"HTTP_{credential.header_name.upper().replace('-', '_')}": credential.secret,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.input_terminated": True,
    }
    status = []
    chunks = application(environ, lambda s, headers, exc_info=None: status.append(s))
    return int(status[0].split()[0]), json.loads(b"".join(chunks))


def test_a_chunked_json_postback_is_stored_with_its_body_and_applied(credential):
    body = json.dumps(postback_params("CHUNKED1")).encode()
    code, answer = call_chunked(credential, body)
    assert (code, answer["outcome"]) == (200, "received")
    process_pending()
    assert Delivery.objects.get(pk=answer["delivery"]).outcome == "applied"
    assert bytes(Delivery.objects.get(pk=answer["delivery"]).body) == body


def test_a_chunked_body_over_the_cap_is_refused_413(credential, settings):
    code, answer = call_chunked(credential, b"{" + b" " * settings.POSTBACK_MAX_BODY_BYTES + b"}")
    assert code == 413 and answer["error"] == "payload_too_large"
    assert not Delivery.objects.exists()
