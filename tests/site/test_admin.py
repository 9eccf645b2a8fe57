"""Django admin: credentials (generated or pasted, shown once), read-only deliveries with replay, actions."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages

from events import lifecycle
from events.models import ActionEvent, Credential, Delivery, hash_secret
from tests.conftest import ENDPOINT, postback_params

ADD_CREDENTIAL = "/admin/events/credential/add/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def credential_form(**fields) -> dict[str, str]:
    return {
        "label": "impact.com ticket 1234",
        "header_name": "X-Postback-Token",
        "secret": "",
        "active": "on",
        "expires_at_0": "",
        "expires_at_1": "",
        **fields,
    }


def postback(client, secret, header="X-Postback-Token", **params):
    return client.get(f"{ENDPOINT}?{urlencode(postback_params(**params))}", headers={header: secret})


def test_adding_a_credential_without_a_secret_generates_one_shown_once(admin_client, client):
    response = admin_client.post(ADD_CREDENTIAL, credential_form(), follow=True)
    assert response.status_code == 200
    [message] = [str(m) for m in get_messages(response.wsgi_request) if "<code>" in str(m)]
    secret = re.search(r"<code>([^<]+)</code>", message).group(1)
    assert len(secret) >= 32
    credential = Credential.objects.get()
    assert credential.secret_hash == hash_secret(secret)
    assert credential.secret_hint == secret[-4:]
    assert postback(client, secret).status_code == 200

    change_page = admin_client.get(f"/admin/events/credential/{credential.pk}/change/").content.decode()
    list_page = admin_client.get("/admin/events/credential/").content.decode()
    assert secret not in change_page
    assert secret not in list_page
    assert credential.secret_hash not in change_page


def test_a_pasted_secret_is_used_and_not_shown(admin_client, client):
    secret = "agreed-with-impact-support-2026"
    response = admin_client.post(ADD_CREDENTIAL, credential_form(secret=secret, header_name="X-Impact"), follow=True)
    assert response.status_code == 200
    assert secret not in response.content.decode()
    assert not [m for m in get_messages(response.wsgi_request) if "<code>" in str(m)]
    assert postback(client, secret, header="X-Impact").status_code == 200


def test_a_short_pasted_secret_is_refused(admin_client):
    response = admin_client.post(ADD_CREDENTIAL, credential_form(secret="short"))
    assert response.status_code == 200
    assert "at least 16 characters" in response.content.decode()
    assert not Credential.objects.exists()


def test_a_secret_already_used_by_another_credential_is_refused(admin_client):
    Credential.create_with_secret(label="first", secret="agreed-with-impact-support-2026")
    response = admin_client.post(ADD_CREDENTIAL, credential_form(secret="agreed-with-impact-support-2026"))
    assert response.status_code == 200
    assert "already used" in response.content.decode()
    assert Credential.objects.count() == 1


@pytest.mark.parametrize("header_name", ["X Postback", "X-Token:", "", "Bad\nHeader"])
def test_an_invalid_header_name_is_refused(admin_client, header_name):
    response = admin_client.post(ADD_CREDENTIAL, credential_form(header_name=header_name))
    assert response.status_code == 200
    assert not Credential.objects.exists()


def test_editing_a_credential_without_a_secret_keeps_it_and_a_new_one_replaces_it(
    admin_client, client, credential, later
):
    url = f"/admin/events/credential/{credential.pk}/change/"
    admin_client.post(url, credential_form(label="renamed"))
    credential.refresh_from_db()
    assert credential.label == "renamed"
    assert postback(client, credential.secret).status_code == 200

    admin_client.post(url, credential_form(secret="a-brand-new-secret-value-42"))
    later()  # every worker reads the credentials again within AUTH_CONFIG_MAX_AGE
    assert postback(client, credential.secret, ActionId="A2").status_code == 401
    assert postback(client, "a-brand-new-secret-value-42", ActionId="A3").status_code == 200


def test_deliveries_are_read_only_in_admin(admin_client, send):
    delivery = Delivery.objects.get(pk=send().json()["delivery"])
    url = f"/admin/events/delivery/{delivery.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "ActionId=A1" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(url, {"outcome": "invalid"}).status_code == 403
    assert admin_client.get("/admin/events/delivery/add/").status_code == 403
    delivery.refresh_from_db()
    assert delivery.outcome == "applied"


def test_deliveries_can_be_searched_by_action_id_and_filtered_by_outcome(admin_client, send):
    send(ActionId="FIND-ME")
    send(ActionId="OTHER")
    send(Payout="bad")
    found = admin_client.get("/admin/events/delivery/?q=FIND-ME").content.decode()
    assert "FIND-ME" in found
    assert ">OTHER<" not in found
    invalid = admin_client.get("/admin/events/delivery/?outcome__exact=invalid").content.decode()
    assert "is not a decimal number" in invalid
    assert "FIND-ME" not in invalid


def test_the_replay_action_reprocesses_failed_deliveries_idempotently(admin_client, send, monkeypatch):
    monkeypatch.setattr(lifecycle, "apply_batch", lambda *a, **k: 1 / 0)
    send(ActionId="R1")
    send(ActionId="R2")
    assert set(Delivery.objects.values_list("outcome", flat=True)) == {"failed"}
    monkeypatch.undo()

    ids = [str(pk) for pk in Delivery.objects.values_list("pk", flat=True)]
    form = {"action": "replay_deliveries", "_selected_action": ids, "index": "0"}
    for _ in range(2):
        response = admin_client.post("/admin/events/delivery/", form, follow=True)
        assert response.status_code == 200
        assert "Replayed 2 deliveries (applied: 2)" in response.content.decode()
    assert set(Delivery.objects.values_list("outcome", flat=True)) == {"applied"}
    assert ActionEvent.objects.count() == 2
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {3}


def test_an_action_shows_its_events_inline_read_only(admin_client, send):
    send()
    send(Amount="150.00", Status="APPROVED")
    event = ActionEvent.objects.get(seq=2)
    page = admin_client.get(f"/admin/events/action/{event.action_id}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "ActionEvent" in html or "Action events" in html
    assert "tracked" in html
    assert "modified" in html
    assert "150.000000" in html or "150.00" in html
    assert 'name="_save"' not in html


def test_the_admin_lists_render(admin_client, send, client):
    send()
    client.get(ENDPOINT)  # one refused attempt
    for model in ("credential", "delivery", "action", "brand", "refusedattempt", "refusalcounter"):
        assert admin_client.get(f"/admin/events/{model}/").status_code == 200, model
