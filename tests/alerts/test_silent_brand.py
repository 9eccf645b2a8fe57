from datetime import timedelta

from delay_helpers import MIN, T0, tracked

from events import alerts
from events.alerts import watcher
from events.models import DelayAlert

LAST = T0 + 19 * 10 * MIN  # the 20th postback, one every 10 minutes


def twenty_postbacks(send):
    for i in range(20):
        moment = T0 + i * 10 * MIN
        tracked(send, f"S{i}", moment, moment + MIN)


def test_brand_silent_for_several_usual_gaps_gets_a_silent_alert_that_resolves_when_postbacks_return(send):
    twenty_postbacks(send)
    last_received = LAST + MIN

    watcher.check(now=last_received + 59 * MIN)  # 6 gaps of 10 min = 60 min
    assert not DelayAlert.objects.exists()

    watcher.check(now=last_received + 61 * MIN)
    alert = DelayAlert.objects.get()
    assert (alert.kind, alert.status, alert.since) == ("silent", "open", last_received)
    assert "usually one every 10 min" in alert.summary
    assert alert.remind_at is None  # softer: no reminders

    tracked(send, "S99", last_received + 70 * MIN, last_received + 71 * MIN)
    watcher.check(now=last_received + 72 * MIN)
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert "postbacks again since" in alert.changes.last().note


def test_a_silence_resolved_by_staff_is_not_reported_again(send):
    twenty_postbacks(send)
    watcher.check(now=LAST + 2 * 60 * MIN)
    alerts.resolve(DelayAlert.objects.get(), note="brand paused its program", now=LAST + 2 * 60 * MIN)
    watcher.check(now=LAST + 3 * 60 * MIN)
    assert DelayAlert.objects.count() == 1


def test_brand_without_enough_history_is_never_silent(send):
    for i in range(5):
        tracked(send, f"S{i}", T0 + i * MIN, T0 + i * MIN)
    watcher.check(now=T0 + timedelta(days=3))
    assert not DelayAlert.objects.exists()
