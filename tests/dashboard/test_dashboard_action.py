"""An action's page: its current state and money, and every event with its diff and deliveries."""

from datetime import timedelta
from urllib.parse import urlencode

from fake_impact import update_record
from tests_dashboard_common import NOW, iso

from events.alerts import missing
from events.models import ApiChange, Delivery
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


def test_an_entry_backfilled_from_the_api_then_joined_by_its_postback_says_so(staff_client, send):
    """impact.com approved A1 three hours ago; no postback came, so `--backfill` recorded the approval
    from the API an hour ago; then its postback came, saying another amount: one entry, which says
    it was the API's first and what the postback said otherwise."""
    changed = NOW - timedelta(hours=3)
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(days=1)))
    record = update_record("A1", changed)  # APPROVED, amount 80.00, payout 8.00
    ApiChange.objects.create(action_id="A1", kind="modified", state="APPROVED", changed_at=changed, payload=record)
    missing.backfill(now=NOW - timedelta(hours=1))
    html = staff_client.get("/actions/A1/").content.decode()
    assert "Recorded from the impact.com API, not a postback." in html
    assert "First recorded from impact.com" not in html

    send(ActionId="A1", Status="APPROVED", Amount="80.01", Payout="8.00", UpdateDate=iso(changed))
    response = staff_client.get("/actions/A1/")
    joined, tracked = response.context["timeline"]
    assert (joined["event"].kind, joined["event"].source, tracked["event"].kind) == ("modified", "postback", "tracked")
    html = response.content.decode()
    assert (
        "First recorded from impact.com's API by <code>reconcile_impact --backfill</code>, no postback having "
        "come; its postback came later and joined this entry (received "
    ) in html
    assert ", 3 h 00 min after the change)." in html
    assert "Postback differs from impact.com&#x27;s API: amount 80.00 → 80.01." in html
    assert "Recorded from the impact.com API, not a postback." not in html
    assert html.count("First recorded from impact.com") == 1  # on that entry only, not on the tracking
