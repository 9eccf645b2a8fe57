import csv
import io

from delay_helpers import MIN, T0, send_at, tracked
from django.urls import reverse

from events import alerts
from events.models import DelayAlert


def late_alerts(send):
    """Two brands, each with a late alert; the first one resolved."""
    tracked(send, "A1", T0, T0 + 90 * MIN)
    tracked(send, "B1", T0, T0 + 100 * MIN, CampaignId="2002", CampaignName="Zebra Hats")
    first = DelayAlert.objects.get(brand__campaign_id="1001")
    alerts.resolve(first, note="done", now=T0 + 3 * 60 * MIN)
    return first, DelayAlert.objects.get(brand__campaign_id="2002")


def test_alerts_page_lists_open_alerts_first(send, user_client, django_assert_max_num_queries):
    resolved, open_ = late_alerts(send)
    with django_assert_max_num_queries(8):
        page = user_client.get("/alerts/").content.decode()
    assert page.index(f"/alerts/{open_.pk}/") < page.index(f"/alerts/{resolved.pk}/")


def test_alerts_page_filters_by_status_kind_and_brand(send, user_client):
    resolved, open_ = late_alerts(send)
    page = user_client.get("/alerts/", {"status": "resolved"}).content.decode()
    assert f"/alerts/{resolved.pk}/" in page and f"/alerts/{open_.pk}/" not in page
    page = user_client.get("/alerts/", {"brand": open_.brand_id, "kind": "late"}).content.decode()
    assert f"/alerts/{open_.pk}/" in page and f"/alerts/{resolved.pk}/" not in page
    page = user_client.get("/alerts/", {"kind": "missing"}).content.decode()
    assert "No alerts match." in page


def test_pages_need_a_login(client, db):
    assert client.get("/alerts/").status_code == 302


def test_alert_page_shows_the_evidence_and_the_csv_has_every_change(send, user_client):
    for i in range(3):
        tracked(send, f"A{i}", T0 + i * MIN, T0 + 2 * 60 * MIN)
    alert = DelayAlert.objects.get()
    page = user_client.get(f"/alerts/{alert.pk}/").content.decode()
    assert "A0" in page and "A2" in page and "Download CSV" in page
    assert "Acknowledge" not in page  # staff only

    response = user_client.get(f"/alerts/{alert.pk}/evidence.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["action_id"] for r in rows] == ["A0", "A1", "A2"]
    assert rows[0]["changed_at_utc"] == "2026-11-20T22:03:11+00:00"
    assert rows[0]["postback_received_at_utc"] == "2026-11-21T00:03:11+00:00"
    assert rows[0]["delay"] == "2 h 00 min"


def test_staff_acknowledge_then_resolve_with_a_note_each_a_change_row(send, staff_client):
    send_at(send, T0 + 2 * 60 * MIN)
    alert = DelayAlert.objects.get()
    response = staff_client.post(f"/alerts/{alert.pk}/acknowledge", {"note": "asked impact.com support"})
    assert response.status_code == 302
    staff_client.post(f"/alerts/{alert.pk}/resolve", {"note": "ticket 42: their queue was stuck"})

    alert.refresh_from_db()
    assert alert.status == "resolved"
    changes = list(alert.changes.values_list("from_status", "to_status", "user__username", "note"))
    assert changes[1:] == [
        ("open", "acknowledged", "staff", "asked impact.com support"),
        ("acknowledged", "resolved", "staff", "ticket 42: their queue was stuck"),
    ]
    page = staff_client.get(f"/alerts/{alert.pk}/").content.decode()
    assert "by staff: ticket 42" in page


def test_non_staff_cannot_acknowledge(send, user_client):
    send_at(send, T0 + 2 * 60 * MIN)
    alert = DelayAlert.objects.get()
    response = user_client.post(f"/alerts/{alert.pk}/acknowledge", {"note": "x"})
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open"


def test_resolving_twice_says_it_is_already_resolved(send, staff_client):
    send_at(send, T0 + 2 * 60 * MIN)
    alert = DelayAlert.objects.get()
    staff_client.post(f"/alerts/{alert.pk}/resolve")
    response = staff_client.post(f"/alerts/{alert.pk}/resolve", follow=True)
    assert "already resolved" in response.content.decode()
    assert alert.changes.count() == 2


BANNER = '<div class="banner'  # the banner element (templates/dashboard/alerts/banner.html), not its words


def test_banner_on_every_page_while_an_alert_is_open(send, user_client):
    assert BANNER not in user_client.get("/").content.decode()
    send_at(send, T0 + 2 * 60 * MIN)
    for url in ("/", "/brands/", "/deliveries/", "/alerts/"):
        page = user_client.get(url).content.decode()
        assert BANNER in page and "1 delay alert open." in page, url
    alerts.resolve(DelayAlert.objects.get())
    assert BANNER not in user_client.get("/").content.decode()


def test_banner_costs_no_query_for_anonymous_visitors(send, client, django_assert_num_queries):
    send_at(send, T0 + 2 * 60 * MIN)
    with django_assert_num_queries(0):
        page = client.get(reverse("login")).content.decode()
    assert BANNER not in page and DelayAlert.objects.active().count() == 1


def test_open_counts_by_brand_for_badges(send):
    _resolved, open_ = late_alerts(send)
    assert DelayAlert.objects.open_counts_by_brand() == {open_.brand_id: 1}


def test_active_alert_by_event_for_timeline_badges(send):
    from events.models import ActionEvent

    tracked(send, "A1", T0, T0 + 90 * MIN)
    tracked(send, "A2", T0 + 80 * MIN, T0 + 90 * MIN)  # on time
    late, on_time = ActionEvent.objects.get(action__action_id="A1"), ActionEvent.objects.get(action__action_id="A2")
    alert = DelayAlert.objects.get()
    assert DelayAlert.objects.active_by_event([late.pk, on_time.pk]) == {late.pk: alert.pk}
    alerts.resolve(alert)
    assert DelayAlert.objects.active_by_event([late.pk, on_time.pk]) == {}


def test_impact_token_is_never_shown_back_in_full(client, django_user_model):
    from events.models import ImpactAccount

    admin = django_user_model(username="root", is_staff=True, is_superuser=True)
    admin.set_unusable_password()
    admin.save()
    admin_client = client
    admin_client.force_login(admin)

    token = "s3cret-token-abcdefgh-wxyz"
    response = admin_client.post(
        "/admin/events/impactaccount/add/",
        {"label": "impact.com", "account_sid": "IRabc", "token": token, "active": "on"},
    )
    assert response.status_code == 302, response.content
    account = ImpactAccount.objects.get()
    assert account.auth_token == token
    page = admin_client.get(f"/admin/events/impactaccount/{account.pk}/change/").content.decode()
    assert token not in page and "…wxyz" in page
    admin_client.post(  # editing without a token keeps it
        f"/admin/events/impactaccount/{account.pk}/change/",
        {"label": "renamed", "account_sid": "IRabc", "token": "", "active": "on"},
    )
    account.refresh_from_db()
    assert (account.label, account.auth_token) == ("renamed", token)
