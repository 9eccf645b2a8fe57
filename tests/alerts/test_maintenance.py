from delay_helpers import MIN, T0, tracked

from events.alerts import notify
from events.models import DelayAlert, MaintenanceWindow, Notification

START = T0
END = T0 + 2 * 60 * MIN


def test_backlog_after_maintenance_makes_one_expected_alert_that_is_not_notified(send, settings, staff_client):
    settings.ALERT_EMAILS = ["ops@example.com"]
    MaintenanceWindow.objects.create(starts_at=START, ends_at=END, note="impact.com postback maintenance")
    for i in range(20):  # changes during the window, all sent in a burst 5 minutes after it ended
        tracked(send, f"M{i}", START + i * MIN, END + 5 * MIN)

    alert = DelayAlert.objects.get()
    assert (alert.kind, alert.expected, alert.item_count) == ("late", True, 20)
    assert "maintenance" in alert.changes.get().note
    assert not Notification.objects.exists()
    assert notify.send_due_notifications(now=END + 6 * MIN) == {"sent": 0, "failed": 0}

    page = staff_client.get("/alerts/").content.decode()
    assert "expected" in page and "20 changes, longest delay" in page


def test_late_postback_outside_any_window_is_a_separate_notified_alert(send, settings):
    settings.ALERT_EMAILS = ["ops@example.com"]
    MaintenanceWindow.objects.create(starts_at=START, ends_at=END)
    tracked(send, "M1", START + 10 * MIN, END + 5 * MIN)
    tracked(send, "X1", END + 60 * MIN, END + 3 * 60 * MIN)

    assert list(DelayAlert.objects.order_by("id").values_list("expected", "item_count")) == [(True, 1), (False, 1)]
    assert Notification.objects.get().alert.expected is False


def test_window_ending_before_the_change_does_not_make_it_expected(send):
    MaintenanceWindow.objects.create(starts_at=START - 5 * 60 * MIN, ends_at=START - 60 * MIN)
    tracked(send, "A1", START, START + 90 * MIN)
    assert DelayAlert.objects.get().expected is False
