"""The deliveries log: outcome filters, refused attempts, and replay for staff only."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from tests_dashboard_common import NOW, iso

from events.models import Action, Delivery, RefusalCounter, RefusedAttempt
from tests.conftest import grant


def _failed(action_id="A7"):
    """A delivery a since-fixed bug left `failed`: its payload is fine, so a replay applies it."""
    query = urlencode({"ActionId": action_id, "CampaignId": "1001", "Status": "PENDING", "Payout": "7.00",
                       "Currency": "USD", "CreationDate": iso(NOW - timedelta(minutes=3))})  # fmt: skip
    return Delivery.objects.create(
        method="GET", path="/postbacks/impact/", query_string=query, outcome="failed",
        reason="OperationalError: database is locked", attempts=1,
    )  # fmt: skip


def test_deliveries_filter_by_outcome(staff_client, send):
    send(ActionId="A1")
    send(ActionId="A1")
    send(ActionId="", Status="PENDING")
    outcomes = lambda q: [d.outcome for d in staff_client.get(f"/deliveries/?{q}").context["page"].rows]  # noqa: E731
    assert outcomes("") == ["invalid", "duplicate", "applied"]
    assert outcomes("outcome=duplicate") == ["duplicate"]
    assert outcomes("outcome=invalid") == ["invalid"]
    assert outcomes("outcome=failed") == []


def test_staff_replay_applies_a_failed_delivery_and_says_so(staff_client, send):
    failed = _failed()
    invalid_id = send(ActionId="", Status="PENDING").json()["delivery"]
    response = staff_client.post("/deliveries/replay/", {"delivery": [failed.pk, invalid_id]}, follow=True)
    failed.refresh_from_db()
    assert failed.outcome == "applied" and failed.attempts == 2
    assert Action.objects.get(action_id="A7").payout == 7
    assert Delivery.objects.get(pk=invalid_id).outcome == "invalid"
    html = response.content.decode()
    assert "Replayed 2 deliveries: 1 applied, 1 invalid." in html
    assert sorted(d.pk for d in response.context["page"].rows) == sorted([failed.pk, invalid_id])


def test_replaying_an_applied_delivery_changes_nothing(staff_client, send):
    applied = send(ActionId="A1").json()["delivery"]
    response = staff_client.post("/deliveries/replay/", {"delivery": [applied]}, follow=True)
    assert "Replayed 0 deliveries. 1 skipped (already applied or duplicate)." in response.content.decode()
    assert Delivery.objects.get(pk=applied).attempts == 1


def test_viewers_cannot_replay(user_client):
    failed = _failed()
    assert user_client.post("/deliveries/replay/", {"delivery": [failed.pk]}).status_code == 403
    failed.refresh_from_db()
    assert failed.outcome == "failed"
    assert 'name="delivery"' not in user_client.get("/deliveries/").content.decode()


def test_replay_needs_post_and_a_csrf_token(db, django_user_model):
    failed = _failed()
    staff = django_user_model.objects.create_user("s", password="x", is_staff=True)
    grant(staff, "events.replay_delivery")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    assert browser.get("/deliveries/replay/").status_code == 405
    assert browser.post("/deliveries/replay/", {"delivery": [failed.pk]}).status_code == 403
    failed.refresh_from_db()
    assert failed.outcome == "failed"


@pytest.mark.parametrize("value", ["abc", ""])
def test_replay_with_a_bad_selection_is_answered_clearly(staff_client, value):
    response = staff_client.post("/deliveries/replay/", {"delivery": [value]} if value else {}, follow=True)
    assert response.status_code in (200, 400)
    if value:
        assert response.status_code == 400 and b"must be numbers" in response.content
    else:
        assert "Select at least one" in response.content.decode()


def test_refused_attempts_are_listed_with_their_counters(staff_client, send):
    send(ActionId="A1", headers={"X-Postback-Token": "not-the-secret"})
    send(ActionId="A1", headers={})
    response = staff_client.get("/deliveries/refused/")
    assert [r.reason for r in response.context["page"].rows] == ["missing_credential", "invalid_credential"]
    assert {c.reason: c.count for c in RefusalCounter.objects.all()} == {
        "missing_credential": 1, "invalid_credential": 1
    }  # fmt: skip
    html = response.content.decode()
    assert "Credential not recognised" in html and "not-the-secret" not in html


def test_deliveries_and_refused_attempts_export_as_csv(staff_client, send):
    send(ActionId="=cmd()")  # a formula-looking ActionId stays text in a spreadsheet
    send(ActionId="A1", headers={})
    lines = b"".join(staff_client.get("/deliveries/?format=csv").streaming_content).decode("utf-8-sig").splitlines()
    assert lines[0] == "id,received_at,method,outcome,action_id,reason,remote_addr,query_string"
    assert ",applied,'=cmd()," in lines[1]
    refused = b"".join(staff_client.get("/deliveries/refused/?format=csv").streaming_content).decode("utf-8-sig")
    assert "missing_credential" in refused


def test_an_empty_log_says_what_to_do(staff_client):
    assert "No deliveries stored yet" in staff_client.get("/deliveries/").content.decode()


def _pages(client, url):
    """Every page of a keyset-paged list, following its "Older" links from the newest."""
    pages, cursor = [], None
    while True:
        page = client.get(url + (f"?before={cursor}" if cursor else "")).context["page"]
        pages.append([row.pk for row in page.rows])
        cursor = page.older
        if not cursor:
            return pages


def test_the_deliveries_log_pages_back_through_every_delivery_once(staff_client, make_history):
    make_history(60, brands=1)
    pages = _pages(staff_client, "/deliveries/")
    assert len(pages) == 2 and len(pages[0]) == 50
    assert [pk for page in pages for pk in page] == list(
        Delivery.objects.order_by("-received_at", "-id").values_list("id", flat=True)
    )


def test_refused_attempts_page_back_through_every_attempt_once(staff_client):
    RefusedAttempt.objects.bulk_create(
        [RefusedAttempt(at=NOW - timedelta(minutes=i // 2), reason="missing_credential", method="GET",
                        path="/postbacks/impact/") for i in range(70)]
    )  # fmt: skip
    pages = _pages(staff_client, "/deliveries/refused/")
    assert [len(page) for page in pages] == [50, 20]
    assert [pk for page in pages for pk in page] == list(
        RefusedAttempt.objects.order_by("-at", "-id").values_list("id", flat=True)
    )


@pytest.mark.parametrize("url", ["/deliveries/", "/deliveries/refused/"])
def test_a_tampered_cursor_on_the_logs_shows_the_newest_page_with_a_note(staff_client, send, url):
    send(ActionId="A1")
    send(ActionId="A1", headers={})
    response = staff_client.get(f"{url}?before=not-a-cursor")
    assert response.status_code == 200 and len(response.context["page"].rows) == 1
    assert "not valid any more" in response.content.decode()
