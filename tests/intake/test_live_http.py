"""Real HTTP to a live server, with the recommended templates filled in as impact.com would."""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from decimal import Decimal
from urllib.parse import quote, urlsplit

import pytest

from events import impact
from events.models import Action, ActionEvent, Delivery
from events.processing import process_pending

VALUES = {
    "ActionId": "19816.4958.1037",
    "CampaignId": "1001",
    "CampaignName": "Acme Shoes & Socks",
    "ActionTrackerId": "7",
    "ActionTrackerName": "Online Sale",
    "Status": "PENDING",
    "StatusDetail": "",
    "Amount": "100.00",
    "DeltaAmount": "",
    "Payout": "10.00",
    "DeltaPayout": "",
    "Currency": "USD",
    "EventDate": "2026-11-20T14:00:00-08:00",
    "CreationDate": "2026-11-20T14:03:11-08:00",
    "Oid": "ORDER-7",
    "SubId1": "newsletter",
    # LockingDate, SubId2, SubId3 and PromoCode have no value: impact.com leaves the macro unfilled.
}


def fill(template: str, encode) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: encode(VALUES[m.group(1)]) if m.group(1) in VALUES else m.group(0), template)


def endpoint(live_server) -> str:
    return live_server.url + "/postbacks/impact/"


def call(request: urllib.request.Request) -> tuple[int, dict]:
    """Send over HTTP; a stored delivery is then applied (as the processor does) and the answer's
    outcome is the one it ended with."""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    assert body["outcome"] == "received"
    process_pending()
    return status, {**body, "outcome": Delivery.objects.get(pk=body["delivery"]).outcome}


def test_the_recommended_url_template_filled_in_by_impact_is_applied(live_server, credential):
    url = fill(impact.url_template(endpoint(live_server)), lambda v: quote(v, safe=""))
    status, body = call(urllib.request.Request(url, headers={"X-Postback-Token": credential.secret}))
    assert (status, body["outcome"]) == (200, "applied")
    action = Action.objects.get(action_id="19816.4958.1037")
    assert (action.state, action.payout, action.oid, action.sub_id1) == ("tracked", 10, "ORDER-7", "newsletter")
    assert action.brand.name == "Acme Shoes & Socks"
    assert action.locking_date is None
    assert action.sub_id2 == ""


def test_the_token_parameter_works_over_http_and_is_not_stored(live_server, credential):
    url = fill(impact.url_template(endpoint(live_server)), lambda v: quote(v, safe=""))
    status, body = call(urllib.request.Request(f"{url}&token={credential.secret}"))
    assert (status, body["outcome"]) == (200, "applied")
    delivery = Delivery.objects.get(pk=body["delivery"])
    assert credential.secret not in delivery.query_string
    assert delivery.remote_addr == "127.0.0.1"


def test_values_impact_does_not_encode_still_arrive(live_server, credential):
    # Minimal encoding: only what would break the URL; "+" in an offset is sent raw.
    url = fill(impact.url_template(endpoint(live_server)), lambda v: quote(v, safe=":+-."))
    url = url.replace("-08:00", "+01:00")
    status, body = call(urllib.request.Request(url, headers={"X-Postback-Token": credential.secret}))
    assert (status, body["outcome"]) == (200, "applied")
    action = Action.objects.get()
    assert action.creation_date.isoformat() == "2026-11-20T13:03:11+00:00"


def test_the_json_body_template_filled_in_by_impact_is_applied(live_server, credential):
    body = fill(impact.json_body_template(), lambda v: json.dumps(v)[1:-1]).encode()
    request = urllib.request.Request(
        endpoint(live_server),
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Postback-Token": credential.secret},
    )
    status, answer = call(request)
    assert (status, answer["outcome"]) == (200, "applied")
    assert Action.objects.get().amount == Decimal("100.00")
    assert bytes(Delivery.objects.get().body) == body


def test_a_retry_over_http_is_a_duplicate(live_server, credential):
    url = fill(impact.url_template(endpoint(live_server)), lambda v: quote(v, safe=""))
    request = urllib.request.Request(url, headers={"X-Postback-Token": credential.secret})
    assert call(request)[1]["outcome"] == "applied"
    assert call(request)[1]["outcome"] == "duplicate"
    assert ActionEvent.objects.get().duplicate_count == 1


def test_a_postback_without_credential_gets_401_over_http(live_server, credential):
    status, body = call(urllib.request.Request(endpoint(live_server) + "?ActionId=A1"))
    assert status == 401
    assert body["reason"] == "missing_credential"


def test_an_oversized_body_gets_413_over_http(live_server, credential, settings):
    settings.POSTBACK_MAX_BODY_BYTES = 4096
    parts = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    body = b'{"ActionId": "A1", "pad": "' + b"x" * 200_000 + b'"}'
    try:
        conn.request(
            "POST",
            "/postbacks/impact/",
            body=body,
            headers={"Content-Type": "application/json", "X-Postback-Token": credential.secret},
        )
        status = conn.getresponse().status
    except (ConnectionResetError, BrokenPipeError):
        pytest.skip("the server closed the connection before the answer could be read")
    finally:
        conn.close()
    assert status == 413
    assert not Delivery.objects.exists()
