"""The setup page's test postbacks: marked "test" wherever they show, in no total, and their expired
credentials cleaned up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from events.models import Credential
from events.reporting import reports
from events.simulation import synthetic
from tests.conftest import postback_params

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True))
    return client


@pytest.fixture
def one_real_and_one_test(send):
    """A real action of Acme Shoes and a synthetic test postback, both through the endpoint."""
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        send(postback_params("REAL-1", CreationDate=(NOW - timedelta(hours=1, minutes=2)).isoformat()))
        action_id, params = synthetic.synthetic_postback()
        assert send(params).delivery.outcome == "applied"
    return action_id


def test_test_postbacks_are_in_no_overview_total(staff_client, one_real_and_one_test):
    with time_machine.travel(NOW, tick=False):
        response = staff_client.get("/?period=7d")
    summary = response.context["summary"]
    assert (summary["tracked"], summary["events"]) == (1, 1)
    (usd,) = response.context["money_cards"]
    assert usd["gained"] == 10  # the real action's payout, not + the test's $0.10
    assert sum(response.context["deliveries"].values()) == 1


@pytest.mark.parametrize("counted_first", [True, False])
def test_test_postbacks_are_in_no_money_by_status(staff_client, send, counted_first):
    """Whether each batch adds to the totals (counted first) or the first view counts them."""
    if counted_first:
        reports.ensure_totals()
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        send(postback_params("REAL-1", CreationDate=(NOW - timedelta(hours=1, minutes=2)).isoformat()))
        assert send(synthetic.synthetic_postback()[1]).delivery.outcome == "applied"
    with time_machine.travel(NOW, tick=False):
        (_, now_cards), (_, period_cards) = staff_client.get("/?period=7d").context["status_rows"]
    assert [(c["currency"], c["actions"]) for c in now_cards] == [("USD", 1)]
    assert [(c["currency"], c["actions"]) for c in period_cards] == [("USD", 1)]


def test_the_brands_list_hides_the_test_brand_unless_asked_and_marks_it(staff_client, one_real_and_one_test):
    with time_machine.travel(NOW, tick=False):
        default = staff_client.get("/brands/")
        shown = staff_client.get("/brands/?tests=show")
    assert [row["brand"].campaign_id for row in default.context["rows"]] == ["1001"]
    assert "test postbacks are hidden and in no total" in default.content.decode()
    assert {row["brand"].campaign_id for row in shown.context["rows"]} == {"1001", synthetic.TEST_CAMPAIGN_ID}
    assert '<span class="flag" title="Synthetic test postbacks from the setup page: in no total">test</span>' in (
        shown.content.decode()
    )


def test_the_timeline_action_and_deliveries_pages_mark_test_postbacks(staff_client, one_real_and_one_test):
    marker = ">test</span>"
    assert marker in staff_client.get(f"/brands/{synthetic.TEST_CAMPAIGN_ID}/").content.decode()
    assert marker in staff_client.get(f"/actions/{one_real_and_one_test}/").content.decode()
    assert marker not in staff_client.get("/actions/REAL-1/").content.decode()
    deliveries = staff_client.get("/deliveries/").content.decode()
    assert deliveries.count(marker) == 1


def test_expired_test_credentials_are_deleted_before_the_next_test(db, settings):
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        for _ in range(3):
            Credential.create_with_secret(label=synthetic.TEST_CREDENTIAL_LABEL, expires_at=NOW - timedelta(minutes=55))
    fresh, _ = Credential.create_with_secret(
        label=synthetic.TEST_CREDENTIAL_LABEL, expires_at=NOW + timedelta(minutes=5)
    )
    real, _ = Credential.create_with_secret(label="impact.com", expires_at=NOW - timedelta(days=1))
    settings.PUBLIC_URL = "http://127.0.0.1:9"  # nothing listens: the test fails, the clean-up is done
    with time_machine.travel(NOW, tick=False):
        outcome = synthetic.send_test_postback(settings.PUBLIC_URL + "/postbacks/impact/", timeout=1)
    assert outcome.error
    left = set(Credential.objects.values_list("pk", flat=True))
    assert fresh.pk in left and real.pk in left
    assert Credential.objects.filter(label=synthetic.TEST_CREDENTIAL_LABEL).count() == 2  # fresh and the new one
