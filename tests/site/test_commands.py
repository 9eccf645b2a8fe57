"""Management commands: bootstrap, replay_deliveries, create_credential."""

from __future__ import annotations

import re
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.http import HttpRequest

from events import lifecycle
from events.models import Credential, Delivery
from tests.conftest import ENDPOINT, postback_params, processed


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def login_request() -> HttpRequest:
    """django-axes counts logins per client address: the test client's login() must say whose."""
    request = HttpRequest()
    request.META["REMOTE_ADDR"] = "127.0.0.1"
    return request


def test_bootstrap_prints_the_admin_password_the_credential_and_the_url_template_once(db, client, settings):
    settings.PUBLIC_URL = "https://postbacks.example.com"
    output = run("bootstrap")
    password = re.search(r"Admin user:\s+admin / (\S+)", output).group(1)
    secret = re.search(r"Credential:\s+(\S+)", output).group(1)
    template = next(line for line in output.splitlines() if line.startswith("https://"))
    assert template.startswith("https://postbacks.example.com/postbacks/impact/?ActionId={ActionId}&")

    assert client.login(request=login_request(), username="admin", password=password)
    assert get_user_model().objects.get().is_superuser
    response = processed(client.get(f"{ENDPOINT}?{urlencode(postback_params())}", headers={"X-Postback-Token": secret}))
    assert response.delivery.outcome == "applied"
    assert client.get(f"{ENDPOINT}?ActionId=A2&token={secret}").status_code == 200

    again = run("bootstrap")
    assert "Already set up" in again
    assert password not in again
    assert secret not in again
    assert "https://postbacks.example.com/postbacks/impact/" in again
    assert get_user_model().objects.count() == 1
    assert Credential.objects.count() == 1


def test_bootstrap_creates_a_superuser_even_if_an_ordinary_user_is_called_admin(db, client):
    get_user_model().objects.create_user("admin", password="ordinary-user-password")
    output = run("bootstrap")
    username, password = re.search(r"Admin user:\s+(\S+) / (\S+)", output).groups()
    assert username.startswith("admin-")
    assert get_user_model().objects.get(username=username).is_superuser
    assert client.login(request=login_request(), username=username, password=password)


def test_bootstrap_keeps_an_existing_admin_and_credential(db, admin_user, credential):
    output = run("bootstrap")
    assert "Already set up" in output
    assert "Admin user" not in output
    assert "Credential:" not in output


def test_replay_deliveries_reprocesses_failed_and_invalid_ones_by_default(send, monkeypatch):
    monkeypatch.setattr(lifecycle, "apply_batch", lambda *a, **k: 1 / 0)
    failed = send(ActionId="F1").json()["delivery"]
    monkeypatch.undo()
    invalid = send(Payout="x").json()["delivery"]
    applied = send(ActionId="OK").json()["delivery"]

    output = run("replay_deliveries")
    assert "Replaying 2 deliveries" in output
    assert "Done: applied: 1, invalid: 1" in output
    assert Delivery.objects.get(pk=failed).outcome == "applied"
    assert Delivery.objects.get(pk=invalid).attempts == 2
    assert Delivery.objects.get(pk=applied).attempts == 1

    assert "Done: invalid: 1" in run("replay_deliveries")  # idempotent: the applied one is left alone


def test_replay_deliveries_takes_outcomes_and_ids(send):
    first = send().json()["delivery"]
    send()
    output = run("replay_deliveries", "--outcome", "applied,duplicate")
    assert "Done: applied: 1, duplicate: 1" in output
    output = run("replay_deliveries", "--id", str(first), "--id", str(first))
    assert "Replaying 1 deliveries" in output
    assert Delivery.objects.get(pk=first).attempts == 3


def test_replay_deliveries_replays_received_ones_left_by_a_crash(send):
    delivery = Delivery.objects.create(method="GET", path=ENDPOINT, query_string="ActionId=LEFT")
    assert "applied: 1" in run("replay_deliveries", "--outcome", "received")
    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.action_id) == ("applied", "LEFT")


def test_replay_deliveries_with_nothing_to_do_says_so(db):
    assert "nothing to do" in run("replay_deliveries")


def test_replay_deliveries_refuses_an_unknown_outcome(db):
    with pytest.raises(CommandError, match=r"unknown outcome.*bogus"):
        run("replay_deliveries", "--outcome", "failed,bogus")


def test_replay_deliveries_refuses_an_empty_outcome_list(db):
    with pytest.raises(CommandError, match="--outcome"):
        run("replay_deliveries", "--outcome", " , ")


def test_replay_deliveries_refuses_an_unknown_id(send):
    delivery = send().json()["delivery"]
    with pytest.raises(CommandError, match="no delivery with id 999999"):
        run("replay_deliveries", "--id", str(delivery), "--id", "999999")
    assert Delivery.objects.get(pk=delivery).attempts == 1


def test_create_credential_refuses_a_short_secret(db):
    with pytest.raises(CommandError, match="at least 16 characters"):
        run("create_credential", "--label", "x", "--secret", "short")
    assert not Credential.objects.exists()


@pytest.mark.parametrize("header", ["X Token", "X-Token:", "", "Bad\r\nHeader"])
def test_create_credential_refuses_an_invalid_header_name(db, header):
    with pytest.raises(CommandError, match="not a valid HTTP header name"):
        run("create_credential", "--label", "x", "--header", header)


def test_create_credential_refuses_a_secret_already_in_use(db):
    run("create_credential", "--label", "a", "--secret", "agreed-with-impact-support-2026")
    with pytest.raises(CommandError, match="already used"):
        run("create_credential", "--label", "b", "--secret", "agreed-with-impact-support-2026")
    assert Credential.objects.count() == 1


def test_create_credential_requires_a_label(db):
    with pytest.raises(CommandError, match="--label"):
        run("create_credential")


def test_create_credential_uses_a_pasted_secret(db, client):
    output = run("create_credential", "--label", "support", "--secret", "agreed-with-impact-support-2026")
    assert output.splitlines()[-1] == "agreed-with-impact-support-2026"
    response = client.get(f"{ENDPOINT}?ActionId=A1", headers={"X-Postback-Token": "agreed-with-impact-support-2026"})
    assert response.status_code == 200
