"""The setup page: templates to paste into impact.com, and a test postback through the real endpoint."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

from events.models import Action, Brand, Credential, Delivery
from events.simulation.synthetic import TEST_CAMPAIGN_ID, TEST_CREDENTIAL_LABEL
from tests.conftest import OPERATOR_PERMISSIONS, grant


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    grant(user, *OPERATOR_PERMISSIONS)
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_setup_page_shows_the_exact_templates_for_the_public_url(staff_client, settings, credential):
    settings.PUBLIC_URL = "https://postbacks.example.com"
    page = staff_client.get("/setup/").content.decode()
    assert "https://postbacks.example.com/postbacks/impact/?ActionId={ActionId}&amp;CampaignId={CampaignId}" in page
    assert "&quot;ActionId&quot;: &quot;{ActionId}&quot;" in page
    assert "X-Postback-Token: &lt;the secret we send you separately&gt;" in page
    assert "support" in page


def test_setup_page_is_for_staff_only(client, django_user_model):
    assert client.get("/setup/").status_code == 302
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-viewer-123"))
    assert client.get("/setup/").status_code == 403  # known user, not theirs: no login loop
    assert client.post("/setup/test-postback/").status_code == 403
    assert not Credential.objects.filter(label=TEST_CREDENTIAL_LABEL).exists()


def test_sending_a_test_postback_needs_post_and_csrf(staff, staff_client):
    assert staff_client.get("/setup/test-postback/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post("/setup/test-postback/").status_code == 403


@pytest.mark.parametrize("method", ["get", "post-json"])
def test_test_postback_goes_through_the_endpoint_and_shows_delivery_and_event(
    staff_client, settings, live_server, method
):
    settings.PUBLIC_URL = live_server.url
    response = staff_client.post("/setup/test-postback/", {"method": method}, follow=True)
    page = response.content.decode()
    assert "The endpoint answered HTTP 200" in page
    delivery = Delivery.objects.get()
    assert delivery.outcome == "applied" and delivery.action_id.startswith("TEST-")
    assert delivery.method == ("GET" if method == "get" else "POST")
    assert f"Stored delivery {delivery.pk}: Applied" in page
    assert "tracked (new → tracked)" in page
    assert "$1.00 / $0.10" in page  # money as every page shows it, not the column's six decimals
    assert "[redacted]" in str(delivery.headers)
    # the credential made for the test is switched off once used
    assert not Credential.objects.usable().filter(label=TEST_CREDENTIAL_LABEL).exists()


def test_the_synthetic_action_can_be_removed(staff_client, settings, live_server):
    settings.PUBLIC_URL = live_server.url
    staff_client.post("/setup/test-postback/", {"method": "get"})
    action_id = Action.objects.get().action_id
    page = staff_client.post("/setup/test-postback/remove/", {"action_id": action_id}, follow=True).content.decode()
    assert f"Removed the synthetic action {action_id}" in page
    assert not Action.objects.exists() and not Delivery.objects.exists()
    assert not Brand.objects.filter(campaign_id=TEST_CAMPAIGN_ID).exists()


def test_only_synthetic_actions_can_be_removed(staff_client, send):
    send(action_id="REAL-1")
    page = staff_client.post("/setup/test-postback/remove/", {"action_id": "REAL-1"}, follow=True).content.decode()
    assert "is not a synthetic test action" in page
    assert Action.objects.filter(action_id="REAL-1").exists()


def test_an_unreachable_endpoint_is_explained(staff_client, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.PUBLIC_URL = f"http://127.0.0.1:{port}"
    response = staff_client.post("/setup/test-postback/", {"method": "get"}, follow=True)
    assert response.status_code == 200
    assert "could not reach" in response.content.decode()
    assert not Delivery.objects.exists()
