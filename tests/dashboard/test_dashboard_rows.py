"""Brand timeline rows are built in Python (templatetags.event_row): same links, escaped text."""

from datetime import UTC, datetime
from decimal import Decimal

from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from dashboard.templatetags.dashboard import action_path, delivery_row, event_row
from events.models import Action, ActionEvent, Delivery


@given(st.text(min_size=1).filter(lambda t: "\n" not in t))  # the URL pattern (.+) matches no line break
def test_action_links_are_what_reverse_makes(action_id):
    assert action_path(action_id) == reverse("action", args=[action_id])


def test_a_row_escapes_what_impact_com_sent_and_shows_every_flag():
    action = Action(action_id='A<1>"&', oid="<b>order</b>")
    event = ActionEvent(
        action=action, kind="modified", from_state="tracked", to_state="modified", currency="EUR",
        amount=Decimal("100"), delta_amount=Decimal("-5"), payout=Decimal("10"), delta_payout=Decimal("2.5"),
        received_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC), changed_at=None, delay_seconds=4000,
        duplicate_count=2, out_of_order=True, superseded=True, anomaly='modified <after> "reversal"', source="api",
    )  # fmt: skip
    event.active_alert_id = 7
    html = event_row(event)
    assert '<a href="/actions/A%3C1%3E%22&amp;/">A&lt;1&gt;&quot;&amp;</a>' in html
    assert '<span class="sub">order &lt;b&gt;order&lt;/b&gt;</span>' in html
    assert "Tracked → Modified" in html and "impact-side time" not in html  # no changed_at
    assert '€100.00<span class="sub loss">−€5.00</span>' in html and '<span class="sub gain">+€2.50</span>' in html
    assert 'class="badge alert"' in html and 'href="/alerts/7/"' in html
    assert "2 duplicates" in html and "out of order" in html and "superseded" in html
    assert 'title="modified &lt;after&gt; &quot;reversal&quot;"' in html and "impact.com API" in html


def test_a_delivery_row_escapes_its_reason_and_offers_replay_only_to_who_may_replay():
    delivery = Delivery(
        pk=42, method="GET", outcome="invalid", attempts=2, action_id="", remote_addr="203.0.113.9",
        reason="Payout='<x>' is not a decimal amount " + "x" * 200, received_at=datetime(2026, 11, 21, tzinfo=UTC),
    )  # fmt: skip
    replayable = {"invalid", "failed", "received"}
    staff = delivery_row({"can_replay": True, "replayable": replayable}, delivery)
    viewer = delivery_row({"can_replay": False, "replayable": replayable}, delivery)
    assert 'name="delivery" value="42"' in staff and "<input" not in viewer
    assert "Payout=&#x27;&lt;x&gt;&#x27; is not" in staff and "x" * 150 not in staff and "…" in staff
    assert '<td data-label="Action">—</td>' in staff and "2 attempts" in staff and "Invalid" in staff


def test_an_action_id_with_a_line_break_has_a_working_page(staff_client, send):
    assert send(ActionId="A\nB", CampaignId="10\n01").delivery.outcome == "applied"
    link = action_path("A\nB")
    assert reverse("action", args=["A\nB"]) == link
    assert staff_client.get(link).status_code == 200
    timeline = staff_client.get(reverse("brand", args=["10\n01"]))
    assert timeline.status_code == 200
    assert f'href="{link}"' in timeline.content.decode()
