"""An action's page: its current state and money, and every event with its diff and deliveries."""

from datetime import timedelta
from urllib.parse import urlencode

from tests_dashboard_common import NOW, iso

from events.models import Delivery
from tests.conftest import postback_params


def test_action_history_shows_each_diff_newest_first(staff_client, send):
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(minutes=5)))
    send(
        ActionId="A1", Status="APPROVED", Payout="12.50", DeltaPayout="2.50", UpdateDate=iso(NOW - timedelta(minutes=1))
    )
    response = staff_client.get("/actions/A1/")
    timeline = response.context["timeline"]
    assert [item["event"].kind for item in timeline] == ["modified", "tracked"]
    modified = {row["field"]: (row["old"], row["new"]) for row in timeline[0]["diff"]}
    assert modified["Payout"] == ("$10.00", "$12.50")
    assert modified["impact.com status"] == ("PENDING", "APPROVED")  # as the card above it says
    html = response.content.decode()
    assert "Tracked → Modified" in html
    assert "+$2.50" in html
    assert "$12.50" in html  # payout now


def test_duplicates_and_raw_payloads_are_listed_with_credentials_redacted(staff_client, send, credential):
    params = {**postback_params("A1"), "CreationDate": iso(NOW - timedelta(minutes=5)), "token": credential.secret}
    send(params, headers={})
    send(params, headers={})  # impact.com retried
    response = staff_client.get("/actions/A1/")
    (item,) = response.context["timeline"]
    assert len(item["deliveries"]) == 2 and len(item["duplicates"]) == 1
    html = response.content.decode()
    assert f"Duplicates received: #{item['duplicates'][0].pk}" in html
    assert credential.secret not in html
    assert "<code>token</code></th><td><code>[redacted]</code>" in html
    assert "<code>ActionId</code></th><td><code>A1</code>" in html
    assert "<code>X-Postback-Token</code></th><td><code>[redacted]</code>" not in html  # sent as a parameter here


def test_a_json_body_is_pretty_printed(staff_client, send):
    send({**postback_params("J1"), "CreationDate": iso(NOW - timedelta(minutes=5))}, method="post-json")
    html = staff_client.get("/actions/J1/").content.decode()
    assert "{\n  &quot;ActionId&quot;: &quot;J1&quot;," in html


def test_failed_deliveries_for_the_action_are_shown_apart(staff_client, send):
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(minutes=5)))
    Delivery.objects.create(
        method="GET", path="/postbacks/impact/", query_string=urlencode({"ActionId": "A1", "Status": "APPROVED"}),
        outcome="failed", reason="OperationalError: database is locked", action_id="A1",
    )  # fmt: skip
    response = staff_client.get("/actions/A1/")
    assert [d.outcome for d in response.context["unattached"]] == ["failed"]
    assert "OperationalError: database is locked" in response.content.decode()


def test_unknown_action_is_404(staff_client):
    assert staff_client.get("/actions/missing/").status_code == 404


def test_ids_with_slashes_and_odd_characters_still_link(staff_client, send):
    send(ActionId="A/1?x#y", CampaignId="C/9", CreationDate=iso(NOW - timedelta(minutes=5)))
    timeline = staff_client.get("/brands/C/9/")
    assert timeline.status_code == 200
    assert 'href="/actions/A/1%3Fx%23y/"' in timeline.content.decode()
    assert staff_client.get("/actions/A/1%3Fx%23y/").context["action"].action_id == "A/1?x#y"
    assert staff_client.get("/deliveries/").status_code == 200


def test_credential_headers_show_redacted(staff_client, send, credential):
    send(ActionId="H1", CreationDate=iso(NOW - timedelta(minutes=5)))
    html = staff_client.get("/actions/H1/").content.decode()
    assert credential.secret not in html
    assert "<code>X-Postback-Token</code></th><td><code>[redacted]</code>" in html
