"""An alert says what it is as it stands (brand, kind, changes, longest delay), and every page shows
its durations and times in one form."""

from __future__ import annotations

import csv
import io

import time_machine
from delay_helpers import MIN, T0, tracked

from events.alerts.notify import message
from events.alerts.silent import check_silent
from events.models import DelayAlert


def test_the_title_follows_the_items_not_the_first_one(send):
    tracked(send, "FIRST", T0, T0 + 61 * MIN)
    alert = DelayAlert.objects.get()
    assert alert.title == "Late postbacks – Acme Shoes: 1 change, longest delay 1 h 01 min"

    tracked(send, "WORST", T0, T0 + 3 * 60 * MIN + 2 * MIN)
    tracked(send, "THIRD", T0 + 60 * MIN, T0 + 3 * 60 * MIN + 3 * MIN)
    alert.refresh_from_db()
    assert alert.title == "Late postbacks – Acme Shoes: 3 changes, longest delay 3 h 02 min"
    assert "FIRST" not in alert.title


def test_a_missing_alert_names_its_longest_delay_once_a_postback_answers():
    alert = DelayAlert(kind="missing", item_count=2, max_delay_seconds=None, summary="x")
    assert alert.description == "2 changes, no postback yet"
    alert.max_delay_seconds = 2 * 3600 + 57 * 60
    assert alert.description == "2 changes, longest delay 2 h 57 min so far"


def test_a_silent_alert_says_since_when(send):
    for i in range(12):
        tracked(send, f"S{i}", T0 + i * 10 * MIN, T0 + i * 10 * MIN + MIN)
    with time_machine.travel(T0 + 12 * 60 * MIN, tick=False):
        check_silent(T0 + 12 * 60 * MIN)
    alert = DelayAlert.objects.get(kind="silent")
    assert alert.title.startswith("Silent brand – Acme Shoes: no postback since 2026-11-20 23:54:11 UTC")


def test_alert_pages_emails_and_csv_show_one_duration_form_and_times_to_the_second(send, user_client):
    tracked(send, "A1", T0, T0 + 2 * 60 * MIN + 57 * MIN)
    alert = DelayAlert.objects.get()

    detail = user_client.get(f"/alerts/{alert.pk}/").content.decode()
    assert "longest delay 2 h 57 min" in detail
    assert '<td data-label="Delay">2 h 57 min</td>' in detail
    assert "10620 s" not in detail and "2:57:00" not in detail
    assert "2026-11-21 01:00:11" in detail  # received and opened: the same instant, to the second
    assert detail.count("2026-11-21 01:00:11</time>") >= 2

    listing = user_client.get("/alerts/").content.decode()
    assert '<td data-label="Longest delay">2 h 57 min</td>' in listing and " s</td>" not in listing
    assert "2026-11-21 01:00:11</time>" in listing

    rows = list(csv.DictReader(io.StringIO(user_client.get(f"/alerts/{alert.pk}/evidence.csv").content.decode())))
    assert (rows[0]["delay"], rows[0]["postback_received_at_utc"]) == ("2 h 57 min", "2026-11-21T01:00:11+00:00")

    subject, body = message(alert, "opened")
    assert subject == "[OPEN] Late postbacks – Acme Shoes: 1 change, longest delay 2 h 57 min"
    assert "Longest delay: 2 h 57 min." in body and "2026-11-21 01:00:11 UTC" in body
