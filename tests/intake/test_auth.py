"""Authentication of postbacks, through the real endpoint."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from urllib.parse import urlencode

from django.core.management import call_command
from django.utils import timezone

from events.models import Credential, Delivery, RefusalCounter, RefusedAttempt
from tests.conftest import ENDPOINT, postback_params, processed

QUERY = urlencode(postback_params())


def get(client, query=QUERY, **headers):
    return client.get(f"{ENDPOINT}?{query}", headers=headers)


def test_a_postback_with_the_secret_in_its_header_is_accepted(client, credential):
    response = processed(get(client, **{"X-Postback-Token": credential.secret}))
    assert response.status_code == 200
    assert response.delivery.outcome == "applied"
    credential.refresh_from_db()
    assert credential.delivery_set.count() == 1
    assert credential.last_used_at is not None


def test_the_header_name_is_case_insensitive(client, credential):
    assert get(client, **{"x-postback-token": credential.secret}).status_code == 200


def test_the_token_query_parameter_is_accepted_when_impact_cannot_send_the_header(client, credential):
    response = processed(get(client, QUERY + "&token=" + credential.secret))
    assert response.status_code == 200
    assert response.delivery.outcome == "applied"


def test_the_token_parameter_is_read_however_it_is_encoded(client, credential):
    secret = credential.secret
    written = {
        "plain, after the data": QUERY + "&token=" + secret,
        "first": "token=" + secret + "&" + QUERY,
        "name percent-encoded": QUERY + "&%74oken=" + secret,
        "value percent-encoded": QUERY + "&token=" + "".join(f"%{b:02X}" for b in secret.encode()),
    }
    for how, query in written.items():
        response = get(client, query)
        assert response.status_code == 200, how
        stored = Delivery.objects.get(pk=response.json()["delivery"]).query_string
        assert secret not in stored and "%74oken=" not in stored, how


def test_a_parameter_that_only_contains_token_in_its_name_is_not_the_token(client, credential):
    for query in (QUERY + "&tokens=" + credential.secret, QUERY + "&my_token=" + credential.secret, "token"):
        assert get(client, query).status_code == 401, query


def test_a_credential_with_a_custom_header_name_is_read_from_that_header(client, db):
    _, secret = Credential.create_with_secret(label="custom", header_name="X-Impact-Key")
    assert get(client, **{"X-Impact-Key": secret}).status_code == 200
    assert get(client, **{"X-Postback-Token": secret}).status_code == 401


def test_a_refusal_names_the_headers_the_active_credentials_use(client, db):
    Credential.create_with_secret(label="custom", header_name="X-Impact-Key")
    Credential.create_with_secret(label="second", header_name="X-Other-Key")
    challenge = get(client)["WWW-Authenticate"]
    assert challenge == 'Token header="X-Impact-Key, X-Other-Key", param="token"'


def test_several_active_credentials_are_accepted_during_a_rotation(client, db):
    _, old = Credential.create_with_secret(label="old")
    _, new = Credential.create_with_secret(label="new", header_name="X-New-Token")
    assert get(client, QUERY.replace("A1", "A-old"), **{"X-Postback-Token": old}).status_code == 200
    assert get(client, QUERY.replace("A1", "A-new"), **{"X-New-Token": new}).status_code == 200
    assert get(client, QUERY.replace("A1", "A-tok") + "&token=" + new).status_code == 200
    assert Credential.objects.get(label="old").delivery_set.count() == 1
    assert Credential.objects.get(label="new").delivery_set.count() == 2


def test_a_wrong_secret_in_one_header_does_not_hide_the_right_one_in_another(client, db):
    _, secret = Credential.create_with_secret(label="a", header_name="X-A")
    Credential.create_with_secret(label="b", header_name="X-B")
    assert get(client, **{"X-B": "wrong-wrong-wrong-wrong", "X-A": secret}).status_code == 200


def test_an_inactive_credential_is_refused(client, credential):
    Credential.objects.filter(pk=credential.pk).update(active=False)
    Credential.create_with_secret(label="other")
    response = processed(get(client, **{"X-Postback-Token": credential.secret}))
    assert response.status_code == 401
    assert response.json()["reason"] == "invalid_credential"


def test_an_expired_credential_is_refused_with_a_reason_saying_so(client, credential):
    Credential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = processed(get(client, **{"X-Postback-Token": credential.secret}))
    assert response.status_code == 401
    assert response.json()["reason"] == "expired_credential"
    assert "expired" in response.json()["detail"]
    assert not Delivery.objects.exists()


def test_a_credential_expiring_later_is_accepted(client, credential):
    Credential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert get(client, **{"X-Postback-Token": credential.secret}).status_code == 200


def test_without_any_credential_configured_every_postback_is_refused_with_how_to_add_one(client, db):
    response = get(client, QUERY + "&token=anything-at-all-12345")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthorized"
    assert body["reason"] == "no_credential_configured"
    assert "create_credential" in body["detail"]
    assert "admin" in body["detail"]


def test_a_refusal_is_a_401_with_a_json_reason_and_www_authenticate(client, credential):
    response = get(client)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "unauthorized",
        "reason": "missing_credential",
        "detail": "No credential presented: send it in the X-Postback-Token header, or as the `token` query parameter.",
    }
    assert response["WWW-Authenticate"].startswith("Token ")
    assert 'param="token"' in response["WWW-Authenticate"]


def test_a_wrong_secret_is_refused(client, credential):
    response = get(client, **{"X-Postback-Token": credential.secret + "x"})
    assert response.status_code == 401
    assert response.json()["reason"] == "invalid_credential"


def test_refusals_are_counted_per_reason(client, credential):
    for _ in range(3):
        get(client, **{"X-Postback-Token": "wrong-secret-000000"})
    get(client)
    counts = dict(RefusalCounter.objects.values_list("reason", "count"))
    assert counts == {"invalid_credential": 3, "missing_credential": 1}


def test_a_refused_attempt_is_recorded_without_the_presented_secret(client, credential):
    presented = "not-the-secret-but-private-98765"
    client.get(
        f"{ENDPOINT}?{QUERY}&token={presented}",
        headers={"X-Postback-Token": presented, "X-Other": "1"},
        REMOTE_ADDR="203.0.113.9",
    )
    attempt = RefusedAttempt.objects.get()
    assert attempt.reason == "invalid_credential"
    assert attempt.remote_addr == "203.0.113.9"
    assert (attempt.method, attempt.path) == ("GET", ENDPOINT)
    assert "X-Postback-Token" in attempt.header_names
    stored = json.dumps([getattr(attempt, f.attname) for f in RefusedAttempt._meta.fields], default=str)
    assert presented not in stored
    assert not Delivery.objects.exists()


def test_refused_attempts_are_capped(client, credential, settings):
    settings.REFUSED_ATTEMPTS_KEEP = 10
    settings.POSTBACK_REFUSAL_THROTTLE_RATE = ""  # every refusal reaches the record (throttling: test_security_access)
    for _ in range(150):
        get(client)
    assert 10 <= RefusedAttempt.objects.count() <= 10 + 99  # trimmed in batches of 100
    assert RefusalCounter.objects.get(reason="missing_credential").count == 150


def test_the_token_is_redacted_from_the_stored_query_string(client, credential):
    response = get(client, QUERY + "&token=" + credential.secret)
    delivery = Delivery.objects.get(pk=response.json()["delivery"])
    assert credential.secret not in delivery.query_string
    assert "token=[redacted]" in delivery.query_string.replace("%5B", "[").replace("%5D", "]")
    assert "ActionId=A1" in delivery.query_string


def test_the_secret_is_redacted_from_stored_headers_and_body(client, credential):
    secret = credential.secret
    response = processed(
        client.post(
            f"{ENDPOINT}?token={secret}",
            data=json.dumps({"ActionId": "A1", "note": f"echo {secret}"}),
            content_type="application/json",
            headers={"X-Postback-Token": secret, "Authorization": "Basic dXNlcjpwYXNz", "X-Echo": f"v={secret}"},
        )
    )
    assert response.status_code == 200
    delivery = response.delivery
    stored = json.dumps(
        [delivery.query_string, delivery.headers, delivery.body_text, delivery.reason, delivery.traceback]
    )
    assert secret not in stored
    assert delivery.headers["X-Postback-Token"] == "[redacted]"
    assert delivery.headers["Authorization"] == "[redacted]"
    assert delivery.headers["X-Echo"] == "v=[redacted]"
    assert "echo [redacted]" in delivery.body_text
    assert secret not in json.dumps(delivery.event.extra)


def test_every_credential_header_is_redacted_not_only_the_one_that_matched(client, db):
    _, secret = Credential.create_with_secret(label="a", header_name="X-A")
    Credential.create_with_secret(label="b", header_name="X-B")
    response = get(client, **{"X-A": secret, "X-B": "another-private-value-123"})
    delivery = Delivery.objects.get(pk=response.json()["delivery"])
    assert delivery.headers["X-B"] == "[redacted]"


def test_create_credential_prints_the_secret_alone_on_its_last_line_and_it_works(client, db):
    out, err = StringIO(), StringIO()
    call_command("create_credential", "--label", "impact", "--header", "X-Impact", stdout=out, stderr=err)
    secret = out.getvalue().splitlines()[-1]
    assert secret == secret.strip()
    assert len(secret) >= 32
    assert " " not in secret
    credential = Credential.objects.get()
    assert credential.header_name == "X-Impact"
    assert credential.secret_hash != secret
    assert secret not in str(credential.__dict__.values())
    assert get(client, **{"X-Impact": secret}).status_code == 200
    assert get(client, QUERY.replace("A1", "A2") + "&token=" + secret).status_code == 200


def test_the_secret_is_not_logged_when_a_postback_is_refused_or_fails(client, credential, caplog, monkeypatch):
    from events import lifecycle

    caplog.set_level("DEBUG")
    get(client, QUERY + "&token=" + credential.secret + "x")
    monkeypatch.setattr(lifecycle, "apply_batch", lambda *a, **k: 1 / 0)
    response = processed(get(client, QUERY + "&token=" + credential.secret))
    assert response.delivery.outcome == "failed"
    assert "postback refused" in caplog.text
    assert "delivery" in caplog.text
    assert credential.secret not in caplog.text
