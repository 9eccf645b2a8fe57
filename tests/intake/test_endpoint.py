"""The endpoint: methods, bodies, sizes, store-first, invalid payloads and an unavailable database."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import impact, lifecycle
from events.intake import endpoint
from events.models import Action, ActionEvent, Delivery
from events.processing import process_pending
from tests.conftest import ENDPOINT, postback_params, processed


def delivery_of(response) -> Delivery:
    """The response's delivery, once what is pending was applied (as the processor does)."""
    process_pending()
    return Delivery.objects.get(pk=response.json()["delivery"])


def test_a_get_postback_is_acknowledged_once_stored_and_applied_by_the_processor(send):
    response = send()
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"delivery", "outcome"}
    assert body["outcome"] == "received"
    delivery = Delivery.objects.get(pk=body["delivery"])
    assert (delivery.method, delivery.outcome, delivery.action_id) == ("GET", "applied", "A1")
    assert delivery.event.action.action_id == "A1"


@pytest.mark.parametrize("method", ["post-json", "post-form"])
def test_post_bodies_are_read(send, method):
    delivery = delivery_of(send(method=method, Payout="12.50"))
    assert delivery.outcome == "applied"
    assert Action.objects.get(action_id="A1").payout == Decimal("12.50")
    assert bytes(delivery.body)  # the raw body is kept


def test_an_xml_body_is_read(send):
    xml = "<Postback>" + "".join(f"<{k}>{v}</{k}>" for k, v in postback_params(Payout="3.30").items()) + "</Postback>"
    delivery = delivery_of(send(method="post", body=xml.encode(), content_type="application/xml"))
    assert delivery.outcome == "applied"
    assert Action.objects.get(action_id="A1").payout == Decimal("3.30")


def test_a_json_body_built_from_the_recommended_template_is_read(send):
    body = impact.json_body_template()
    for name, value in postback_params(action_id="J1").items():
        body = body.replace("{" + name + "}", value)
    delivery = delivery_of(send(method="post", body=body.encode(), content_type="application/json"))
    assert delivery.outcome == "applied"
    assert Action.objects.get(action_id="J1").amount == Decimal("100.00")


@pytest.mark.parametrize("method", ["put", "patch", "delete", "options", "head", "trace"])
def test_other_methods_are_not_allowed(send, method):
    response = send(method=method, body=b"ActionId=A1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 405
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/plain;q=1"])
def test_the_answer_is_json_whatever_the_sender_accepts(send, credential, accept):
    response = send(headers={credential.header_name: credential.secret, "Accept": accept})
    assert response.status_code == 200
    assert response.delivery.outcome == "applied"


def test_a_body_over_the_limit_is_refused_with_413(send, settings):
    settings.POSTBACK_MAX_BODY_BYTES = 2048
    body = json.dumps({**postback_params(), "padding": "x" * 3000}).encode()
    response = send(method="post", body=body, content_type="application/json")
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["detail"]
    assert not Delivery.objects.exists()


def test_a_body_at_the_limit_is_accepted(send, settings):
    settings.POSTBACK_MAX_BODY_BYTES = 2048
    body = json.dumps(postback_params()).encode()
    body = body[:-1] + b', "padding": "' + b"x" * (2048 - len(body) - 15) + b'"}'
    assert len(body) == 2048
    assert delivery_of(send(method="post", body=body, content_type="application/json")).outcome == "applied"


def test_the_size_is_decided_from_content_length_before_the_body_is_read(client, credential):
    response = client.post(
        ENDPOINT,
        data=b"{}",
        content_type="application/json",
        headers={credential.header_name: credential.secret},
        CONTENT_LENGTH="10000000",
    )
    assert response.status_code == 413


def test_the_delivery_is_stored_before_processing_and_a_crash_is_recorded_as_failed(send, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("lifecycle bug")

    monkeypatch.setattr(lifecycle, "apply_batch", crash)
    response = send()
    assert response.status_code == 200
    assert response.delivery.outcome == "failed"
    delivery = delivery_of(response)
    assert delivery.outcome == "failed"
    assert delivery.reason == "RuntimeError: lifecycle bug"
    assert "Traceback" in delivery.traceback
    assert "lifecycle bug" in delivery.traceback
    assert delivery.action_id == "A1"
    assert not Action.objects.exists()

    monkeypatch.undo()
    out = StringIO()
    call_command("replay_deliveries", stdout=out)
    delivery.refresh_from_db()
    assert delivery.outcome == "applied"
    assert (delivery.reason, delivery.traceback, delivery.attempts) == ("", "", 2)
    assert Action.objects.get(action_id="A1").state == "tracked"
    assert "applied: 1" in out.getvalue()


def test_a_crash_while_parsing_is_recorded_as_failed_too(send, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyError("parser bug")

    monkeypatch.setattr(impact, "parse", crash)
    response = send()
    assert response.status_code == 200
    delivery = delivery_of(response)
    assert delivery.outcome == "failed"
    assert "parser bug" in delivery.traceback


def test_an_invalid_payload_is_answered_200_and_stored_invalid_with_its_reason(send):
    response = send(Payout="ten dollars")
    assert response.delivery.outcome == "invalid"
    delivery = delivery_of(response)
    assert delivery.outcome == "invalid"
    assert delivery.reason == "Payout='ten dollars' is not a decimal number (expected e.g. 12.34)"
    assert not Action.objects.exists()


def test_a_postback_without_action_id_is_invalid(send):
    delivery = delivery_of(send(ActionId=None))
    assert delivery.outcome == "invalid"
    assert "ActionId is missing" in delivery.reason


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"ActionId": "\\ud800"}', "application/json"),
        (b'{"ActionId": "A1", "\\udc80": "x"}', "application/json"),
        (b"[" * 50_000, "application/json"),
        (b"<!DOCTYPE p [<!ENTITY a 'aaaa'>]><p><ActionId>&a;</ActionId></p>", "application/xml"),
        (b"\xff\xfe\x00A", "application/json"),
        (b"ActionId=A1", "application/pdf"),
    ],
    ids=["lone-surrogate", "surrogate-key", "nested", "entity", "bad-utf8", "pdf"],
)
def test_unreadable_bodies_are_stored_invalid_never_failed(send, body, content_type):
    delivery = delivery_of(send(method="post", body=body, content_type=content_type))
    assert delivery.outcome == "invalid"
    assert delivery.reason
    assert bytes(delivery.body) == body


def test_a_postback_whose_values_do_not_fit_their_columns_is_invalid_not_failed(send):
    delivery = delivery_of(send(Currency="DOLLARS-US", Status="P" * 41))
    assert delivery.outcome == "invalid"
    assert "at most" in delivery.reason


def test_nul_characters_are_stored_escaped_not_failed(send, credential):
    params = postback_params(note="a\x00b")
    response = send(params, headers={credential.header_name: credential.secret, "X-Note": "c\x00d"})
    delivery = delivery_of(response)
    assert delivery.outcome == "applied"
    assert delivery.event.extra["note"] == "a\\x00b"


def test_a_content_type_with_a_nul_character_is_stored(send):
    response = send(method="post", body=b'{"ActionId": "A1"}', content_type="application/json\x00")
    delivery = delivery_of(response)
    assert delivery.outcome == "invalid"
    assert "\x00" not in delivery.content_type


def test_a_query_string_that_is_not_utf8_is_invalid_even_with_the_token_in_it(client, credential):
    response = client.get(f"{ENDPOINT}?ActionId=caf%E9&token={credential.secret}")
    delivery = delivery_of(response)
    assert delivery.outcome == "invalid"
    assert delivery.reason == "query string is not valid UTF-8"
    assert credential.secret not in delivery.query_string


def test_the_stored_query_string_keeps_the_bytes_that_arrived_apart_from_the_token(client, credential):
    query = "ActionId=A%2B1&SubId1={SubId1}&Amount=&note=caf%C3%A9+au+lait"
    response = client.get(f"{ENDPOINT}?{query}&token={credential.secret}")
    delivery = delivery_of(response)
    assert delivery.query_string == query + "&token=[redacted]"
    assert delivery.action_id == "A+1"


def test_unavailable_database_answers_503_with_retry_after(send, monkeypatch, settings):
    settings.RETRY_AFTER_SECONDS = 42

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(endpoint, "store", down)
    response = send()
    assert response.status_code == 503
    assert response["Retry-After"] == "42"
    assert response.json()["error"] == "unavailable"


def test_a_lost_connection_while_processing_leaves_the_batch_received_and_it_is_applied_later(
    client, credential, monkeypatch
):
    def down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(lifecycle, "apply_batch", down)
    response = client.get(f"{ENDPOINT}?ActionId=A1", headers={credential.header_name: credential.secret})
    assert response.json() == {"delivery": Delivery.objects.get().pk, "outcome": "received"}
    with pytest.raises(OperationalError):
        process_pending()
    assert Delivery.objects.get().outcome == "received"  # rolled back, taken again next time

    monkeypatch.undo()
    assert process_pending().outcomes == {"applied": 1}
    assert Delivery.objects.get().outcome == "applied"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_be_reached_answers_503(client, credential):
    """A real connection failure: the connection is closed and points at a port nobody listens on."""
    params = connection.settings_dict.copy()
    try:
        connection.close()
        connection.settings_dict["PORT"] = "1"
        connection.settings_dict["OPTIONS"] = {**params["OPTIONS"], "connect_timeout": 1}
        response = client.get(f"{ENDPOINT}?ActionId=A1&token={credential.secret}")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(params)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert not Delivery.objects.exists()


# --- Never a 500 ------------------------------------------------------------------------

keys = st.sampled_from(["ActionId", "action_id", "Amount", "Payout", "Status", "CreationDate", "UpdateDate", "x"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=30), st.decimals(allow_nan=False).map(str)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=5).map(urlencode),
    body=st.one_of(
        st.dictionaries(keys | st.text(max_size=10), scalars, max_size=6).map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=100),
    ),
    content_type=st.sampled_from(["application/json", "application/xml", "application/x-www-form-urlencoded", ""]),
)
def test_any_request_is_answered_200_and_stored_never_failed(client, credential, query, body, content_type):
    response = processed(
        client.post(
            f"{ENDPOINT}?{query}",
            data=body,
            content_type=content_type,
            headers={credential.header_name: credential.secret},
        )
    )
    assert response.status_code == 200, response.content
    assert response.delivery.outcome in ("applied", "duplicate", "invalid")
    assert ActionEvent.objects.filter(deliveries__pk=response.json()["delivery"]).count() <= 1


def test_a_refused_request_announcing_a_huge_body_is_still_a_401(client, credential):
    response = client.post(ENDPOINT, data=b"{}", content_type="application/json", CONTENT_LENGTH="99999999999")
    assert response.status_code == 401


def test_a_change_dated_far_in_the_future_is_applied_not_failed(send):
    delivery = delivery_of(send(CreationDate="2099-06-01T00:00:00Z"))
    assert delivery.outcome == "applied"
    assert delivery.event.delay_seconds < 0


accepted_dates = st.datetimes(
    min_value=datetime(1990, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.sampled_from([UTC, None])
).map(lambda d: d.isoformat())
accepted_money = st.decimals(
    min_value=Decimal("-999999999999.999999"), max_value=Decimal("999999999999.999999"), places=6
)
accepted_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=255)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.fixed_dictionaries(
        {"ActionId": accepted_text.filter(lambda t: t.strip() and t.strip()[0] != "{")},
        optional={
            "CampaignId": accepted_text,
            "CampaignName": accepted_text,
            "Status": st.text(max_size=40),
            "Amount": accepted_money.map(str),
            "Payout": accepted_money.map(str),
            "DeltaPayout": accepted_money.map(str),
            "Currency": st.text(max_size=8),
            "OriginalCurrency": st.text(max_size=8),
            "CreationDate": accepted_dates,
            "UpdateDate": accepted_dates,
            "LockingDate": accepted_dates,
            "SubId1": accepted_text,
            "Oid": accepted_text,
            "EventType": st.sampled_from(["tracked", "modified", "reversed"]),
        },
    ),
    st.sampled_from(["get", "post-json", "post-form"]),
)
def test_any_postback_the_parser_accepts_is_applied_never_failed(send, params, method):
    response = send(params, method=method)
    assert response.status_code == 200, response.content
    delivery = delivery_of(response)
    assert delivery.outcome in ("applied", "duplicate", "invalid"), delivery.traceback


@pytest.mark.django_db(transaction=True)
def test_the_delivery_is_committed_before_the_answer(client, credential):
    """Outside a test transaction: once answered, the delivery is there for any processor to see."""
    response = client.get(f"{ENDPOINT}?ActionId=A1", headers={credential.header_name: credential.secret})
    assert response.status_code == 200
    assert Delivery.objects.get(pk=response.json()["delivery"]).outcome == "received"


def chunked_post(client, credential, body: bytes):
    return client.generic(
        "POST",
        ENDPOINT,
        content_type="application/json",
        headers={credential.header_name: credential.secret},
        CONTENT_LENGTH="",
        # wsgi.input of a chunked request as gunicorn hands it over: no Content-Length, read to the end.
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )


def test_a_chunked_body_without_content_length_is_read(client, credential):
    body = json.dumps(postback_params()).encode()
    delivery = delivery_of(chunked_post(client, credential, body))
    assert bytes(delivery.body) == body
    assert delivery.outcome == "applied"


def test_a_chunked_body_over_the_limit_is_refused_with_413(client, credential, settings):
    settings.POSTBACK_MAX_BODY_BYTES = 2048
    response = chunked_post(client, credential, b'{"ActionId": "A1", "pad": "' + b"x" * 5000 + b'"}')
    assert response.status_code == 413
    assert not Delivery.objects.exists()
