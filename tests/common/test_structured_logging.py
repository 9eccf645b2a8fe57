"""Every log line of a postback request carries the request id and, once stored, the delivery id;
LOG_FORMAT=json writes one JSON object per line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from events.common.logs import ContextFilter, json_formatter


@pytest.fixture
def json_lines():
    """A JSON handler on the root logger, as LOGGING configures it; returns the parsed lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_a_postback_line_carries_its_delivery_and_request_ids(send, json_lines):
    logging.getLogger("events").setLevel(logging.DEBUG)  # per-postback lines are DEBUG
    try:
        first = send().json()["delivery"]
        second = send(ActionId="").json()["delivery"]
    finally:
        logging.getLogger("events").setLevel(logging.NOTSET)
    stored = [line for line in json_lines() if line["logger"] == "events.intake.endpoint"]
    assert [line["delivery_id"] for line in stored] == [first, second]
    assert stored[0]["message"] == f"postback stored as delivery {first}"
    assert stored[0]["request_id"] and stored[1]["request_id"] and stored[0]["request_id"] != stored[1]["request_id"]
    assert {"time", "level", "logger", "message", "process"} <= set(stored[0])
    processed = [line for line in json_lines() if line["logger"] == "events.processing.deliveries"]
    applied = [line for line in processed if line["level"] == "DEBUG"]
    assert [(line["delivery_id"], line["message"]) for line in applied] == [(first, f"delivery {first}: action A1")]
    batches = [line for line in processed if line["level"] == "INFO"]
    assert [line["message"].split(" in ")[0] for line in batches] == ["batch: 1 deliveries"] * 2
    assert batches[1]["message"].endswith(": invalid 1")
    assert {line["delivery_id"] for line in batches} == {None}


def test_a_refused_postback_line_has_a_request_id_and_no_delivery(client, credential, json_lines):
    client.get("/postbacks/impact/?ActionId=A1", REMOTE_ADDR="203.0.113.5")
    refused = [line for line in json_lines() if "postback refused" in line["message"]]
    assert len(refused) == 1
    assert refused[0]["delivery_id"] is None and refused[0]["request_id"]
    assert "203.0.113.5" in refused[0]["message"]
    django_line = [line for line in json_lines() if line["logger"] == "django.request"]
    assert django_line and django_line[0]["request_id"] == refused[0]["request_id"]


def test_the_delivery_id_does_not_leak_into_the_next_request(send, client, json_lines):
    send()
    client.get("/accounts/login/")
    logging.getLogger("probe").warning("after")
    assert [line["delivery_id"] for line in json_lines() if line["logger"] == "probe"] == [None]


def test_an_exception_is_kept_in_the_json_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("probe").exception("it failed")
    (line,) = [line for line in json_lines() if line["logger"] == "probe"]
    assert "ValueError: boom" in line["exception"]
