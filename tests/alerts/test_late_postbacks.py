from datetime import timedelta

import pytest
import time_machine
from delay_helpers import MIN, T0, send_at, tracked
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events import processing
from events.alerts import watcher
from events.models import AlertChange, AlertItem, DelayAlert, Delivery, MaintenanceWindow
from events.processing import process_pending
from tests.conftest import postback_params


def test_postback_over_an_hour_after_its_change_opens_a_late_alert(send):
    send_at(send, T0 + 61 * MIN)

    alert = DelayAlert.objects.get()
    assert (alert.kind, alert.status, alert.item_count, alert.expected) == ("late", "open", 1, False)
    assert alert.title == "Late postbacks – Acme Shoes: 1 change, longest delay 1 h 01 min"
    item = alert.items.get()
    assert (item.action_id, item.change, item.changed_at, item.received_at) == ("A1", "tracked", T0, T0 + 61 * MIN)
    assert item.delay_seconds == 61 * 60
    assert list(alert.changes.values_list("from_status", "to_status")) == [("", "open")]


def test_postback_within_the_hour_opens_no_alert(send):
    send_at(send, T0 + 59 * MIN)
    assert not DelayAlert.objects.exists()


def test_backlog_burst_makes_one_alert_per_brand_with_a_count(send):
    for i in range(30):
        tracked(send, f"B{i}", T0 + i * MIN, T0 + 3 * 60 * MIN)
    for i in range(5):
        tracked(send, f"C{i}", T0, T0 + 3 * 60 * MIN, CampaignId="2002", CampaignName="Other brand")

    alerts = {a.brand.campaign_id: a for a in DelayAlert.objects.select_related("brand")}
    assert sorted(alerts) == ["1001", "2002"]
    assert alerts["1001"].item_count == 30 == alerts["1001"].items.count()
    assert alerts["2002"].item_count == 5
    assert alerts["1001"].max_delay_seconds == 3 * 60 * 60
    assert AlertChange.objects.count() == 2  # one "opened" each, not one per postback


def test_late_alert_resolves_itself_once_postbacks_are_on_time_again(send):
    send_at(send, T0 + 2 * 60 * MIN)
    alert = DelayAlert.objects.get()

    watcher.check(now=T0 + 2 * 60 * MIN + 10 * MIN)
    alert.refresh_from_db()
    assert alert.status == "open"

    watcher.check(now=T0 + 2 * 60 * MIN + 16 * MIN)
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert alert.resolved_at == T0 + 2 * 60 * MIN + 16 * MIN
    last = alert.changes.last()
    assert (last.from_status, last.to_status, last.user) == ("open", "resolved", None)
    assert "no late postback since" in last.note and "2 h 00 min" in last.note


def test_a_new_late_postback_after_resolution_opens_a_new_alert(send):
    tracked(send, "A1", T0, T0 + 90 * MIN)
    watcher.check(now=T0 + 120 * MIN)
    tracked(send, "A2", T0 + 60 * MIN, T0 + 200 * MIN)
    assert list(DelayAlert.objects.order_by("id").values_list("status", "item_count")) == [
        ("resolved", 1),
        ("open", 1),
    ]


def test_replaying_a_late_delivery_adds_no_second_item(send):
    send_at(send, T0 + 2 * 60 * MIN)
    with time_machine.travel(T0 + 3 * 60 * MIN, tick=False):
        processing.replay(Delivery.objects.all())
    assert AlertItem.objects.count() == 1
    assert DelayAlert.objects.get().item_count == 1


def test_modified_postback_without_an_update_time_has_no_delay_and_no_alert(send):
    tracked(send, "A1", T0, T0 + MIN)
    send_at(send, T0 + timedelta(days=2), Status="APPROVED", Amount="80.00", CreationDate=None)
    assert not DelayAlert.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_late_postbacks_for_one_brand_make_one_alert_with_every_item():
    import threading

    from django.db import connection
    from django.test import Client

    from events.models import Credential

    credential, secret = Credential.create_with_secret(label="t")
    start = threading.Barrier(6)

    def worker(n):
        client = Client()
        start.wait(10)
        try:
            for i in range(5):
                with time_machine.travel(T0 + 3 * 60 * MIN, tick=False):
                    client.get(
                        "/postbacks/impact/",
                        postback_params(action_id=f"W{n}-{i}"),
                        headers={credential.header_name: secret},
                    )
                    process_pending(size=2)  # each sender is a processor too: six of them at once
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert list(Delivery.objects.values_list("outcome", flat=True)) == ["applied"] * 30
    alert = DelayAlert.objects.get()
    assert alert.item_count == 30 == alert.items.count()
    assert alert.changes.count() == 1


def _burst(store, first: int, size: int) -> None:
    """`size` late postbacks stored at T0 + 3 h, not applied: half of them for changes before a
    maintenance window (expected), half after it; two brands."""
    with time_machine.travel(T0 + 3 * 60 * MIN, tick=False):
        for i in range(first, first + size):
            before_window = i % 2 == 0
            store(
                action_id=f"burst-{i}",
                CreationDate=(T0 - (3 * 60 if before_window else 0) * MIN + i * timedelta(seconds=1)).isoformat(),
                CampaignId="1001" if i % 4 < 2 else "2002",
            )


def test_a_late_backlog_applied_in_one_batch_costs_the_same_queries_whatever_its_size(store):
    """A backlog sent after a maintenance pause is late nearly all of it: its batch judges the late
    postbacks per brand (and expected or not), not one by one, so 40 cost what 8 do (once the first
    batch opened the alerts)."""
    MaintenanceWindow.objects.create(starts_at=T0 - 2 * 60 * MIN, ends_at=T0 - 60 * MIN)
    counts = []
    for first, size in ((0, 4), (4, 8), (12, 40)):
        _burst(store, first, size)
        with CaptureQueriesContext(connection) as queries:
            processing.process_next_batch(100)
        # The alert hook's own (the batch's inserts come in chunks, more of them for more rows on SQLite).
        tables = ("events_delayalert", "events_alertitem", "events_maintenancewindow", "events_credential")
        counts.append(sum(any(t in q["sql"] for t in tables) for q in queries.captured_queries))
    assert counts[1] == counts[2] < counts[0], counts

    alerts = {(a.brand.campaign_id, a.expected): a for a in DelayAlert.objects.select_related("brand")}
    assert sorted(alerts) == [("1001", False), ("1001", True), ("2002", False), ("2002", True)]
    assert sum(a.item_count for a in alerts.values()) == 52 == AlertItem.objects.count()
    for alert in alerts.values():
        assert alert.item_count == alert.items.count() == 13
        assert alert.max_delay_seconds == max(alert.items.values_list("delay_seconds", flat=True))
        assert alert.opened_at == alert.last_item_at == T0 + 3 * 60 * MIN
    assert AlertChange.objects.count() == 4  # one "opened" each
