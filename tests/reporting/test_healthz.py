from datetime import timedelta

import pytest
import time_machine
from delay_helpers import MIN, T0, send_at
from django.db import connections

from events.alerts import watcher
from events.models import DelayAlert
from events.processing import process_pending


def test_healthz_is_503_until_the_watcher_has_run(client, db):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["watcher_last_run_at"] is None
    assert response.json()["database"] is True


def test_healthz_reports_database_last_postback_watcher_and_open_alerts(client, send, settings):
    send_at(send, T0 + 2 * 60 * MIN)  # a late postback: one open alert
    with time_machine.travel(T0 + 2 * 60 * MIN + MIN, tick=False):
        watcher.Watcher().run_pass()
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "database": True,
        "last_postback_received_at": "2026-11-21T00:03:11+00:00",
        "watcher_last_run_at": "2026-11-21T00:04:11+00:00",
        "open_alerts": 1,
        "pending_deliveries": 0,
        "oldest_pending_age_seconds": None,
        "watcher_ok": True,
        "processing_ok": True,
        "status": "ok",
    }
    assert "secret" not in response.content.decode().lower()


def test_healthz_is_503_when_the_watcher_missed_three_intervals(client, db, settings):
    settings.WATCH_INTERVAL_SECONDS = 60
    with time_machine.travel(T0, tick=False):
        watcher.Watcher().run_pass()
    with time_machine.travel(T0 + timedelta(seconds=180), tick=False):
        assert client.get("/healthz").status_code == 200
    with time_machine.travel(T0 + timedelta(seconds=181), tick=False):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "watcher has not run for 3 intervals"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_when_the_database_is_unreachable(client):
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens there
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json() == {"database": False, "status": "database unavailable"}


def test_healthz_is_503_and_an_alert_opens_while_postbacks_wait_too_long_to_be_applied(client, store, settings):
    settings.PROCESSING_STALL_SECONDS = 60
    with time_machine.travel(T0, tick=False):
        store()  # stored; no processor applies it
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        watcher.Watcher().run_pass()
        assert client.get("/healthz").status_code == 200  # not older than the limit yet
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        watcher.Watcher().run_pass()
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["pending_deliveries"], body["oldest_pending_age_seconds"], body["processing_ok"]) == (1, 61, False)
    assert body["status"] == "postbacks wait to be applied for over 60 s"
    alert = DelayAlert.objects.get(kind="stalled")
    assert alert.brand is None and "1 postbacks stored and not applied" in alert.summary
    assert "Processing stalled – postback processing" in alert.title

    process_pending()
    with time_machine.travel(T0 + timedelta(seconds=120), tick=False):
        watcher.Watcher().run_pass()
        assert client.get("/healthz").status_code == 200
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert alert.changes.last().note.startswith("processing caught up")
