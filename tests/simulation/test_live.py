"""The simulator against the real endpoint over HTTP (pytest-django's live_server), with --verify.

On SQLite the live server shares the test's in-memory database connection between its
threads, so the simulator sends from one thread there; PostgreSQL gets real concurrency.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
from datetime import UTC, datetime
from urllib.request import Request, urlopen

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from events import forwarding, impact, lifecycle
from events.forwarding import outbox
from events.intake import endpoint, store
from events.models import Action, ActionEvent, DelayAlert, Delivery, Endpoint, Outcome, RefusedAttempt
from events.processing import process_pending
from events.simulation.sender import Sender, Target
from events.simulation.world import SCENARIOS, generate_world
from tests.conftest import ENDPOINT, is_postgres

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def simulate(live_server, credential):
    """Run `simulate_postbacks` against the live server; returns its output (raises CommandError on failure)."""
    # Django's test server writes a response in several small pieces: without TCP_NODELAY each
    # request waits for a delayed ACK (~40 ms). Accepted sockets inherit it from the listening one.
    live_server.thread.httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _simulate(**options):
        out = io.StringIO()
        options = {
            "url": live_server.url + ENDPOINT,
            "token": credential.secret,
            "concurrency": 4 if is_postgres() else 1,
            "pause": 0,
            "backoff": 0,
            "progress": False,
            "stdout": out,
            **options,
        }
        try:
            call_command("simulate_postbacks", **options)
        except CommandError as exc:
            exc.output = out.getvalue()
            raise
        return out.getvalue()

    return _simulate


def test_chaos_scenario_is_received_without_loss_and_verifies(simulate):
    output = simulate(scenario="chaos", actions=150, seed=11, verify=True)
    assert "Verify (orm, 150 actions): lost: 0, wrong: 0, duplicated: 0" in output
    assert "received" in output.split("Answers seen:")[1]
    assert Delivery.objects.filter(outcome="duplicate").exists()
    world = generate_world(11, SCENARIOS["chaos"], now=NOW, actions=150)
    assert Action.objects.count() == 150
    assert ActionEvent.objects.count() == len(world.changes())
    assert ActionEvent.objects.filter(out_of_order=True).exists()
    assert ActionEvent.objects.late().exists()


def test_chaos_as_json_posts_with_the_token_parameter_verifies_through_the_api(simulate, processor):
    # On SQLite the processor's thread shares the in-memory database's cache with the live server,
    # whose INSERT then fails at once ("table is locked", a 503) instead of waiting for the batch to
    # commit as a database file's busy timeout makes it; a short backoff lets the retries outlast it.
    output = simulate(
        scenario="chaos", actions=60, seed=5, method="post-json", token_in="query", verify=True, verify_via="http",
        backoff=0.01,
    )  # fmt: skip
    assert "Verify (http, 60 actions): lost: 0, wrong: 0, duplicated: 0" in output
    assert ActionEvent.objects.exists()


def test_a_receiver_that_drops_one_event_fails_verification(simulate, monkeypatch):
    world = generate_world(3, SCENARIOS["chaos"], now=NOW, actions=80)
    victim = next(a for a in world.actions if len(a.changes) > 1)
    dropped = impact.normalise(list(victim.params(victim.changes[1]).items())).fingerprint()
    real_apply = lifecycle.apply_batch

    def apply_dropping_one(changes):
        """Claims the dropped change was a duplicate, and writes nothing for it."""
        kept = iter(real_apply([c for c in changes if c.postback.fingerprint() != dropped]))
        return [
            lifecycle.Result(Outcome.DUPLICATE, None) if c.postback.fingerprint() == dropped else next(kept)
            for c in changes
        ]

    monkeypatch.setattr(lifecycle, "apply_batch", apply_dropping_one)
    with pytest.raises(CommandError, match="verification failed: lost: 1, "):
        simulate(scenario="chaos", actions=80, seed=3, now=NOW, verify=True)


def test_a_receiver_that_applies_retries_twice_fails_verification(simulate, monkeypatch):
    counter = itertools.count()
    monkeypatch.setattr(impact.Postback, "fingerprint", lambda self: f"bug-{next(counter)}")
    with pytest.raises(CommandError, match=r"verification failed: .*duplicated: [1-9]") as failure:
        simulate(scenario="chaos", actions=30, seed=4, verify=True)
    assert "repeats the change" in failure.value.output


def test_server_errors_are_retried_until_the_postback_is_accepted(simulate, monkeypatch):
    real_store = store.store
    failures = itertools.count()

    def store_failing_twice(*args, **kwargs):
        if next(failures) < 2:
            raise OperationalError("database unavailable (simulated)")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(endpoint, "store", store_failing_twice)
    output = simulate(scenario="default", actions=5, seed=2, verify=True)
    assert "HTTP 503: 2" in output
    assert "lost: 0, wrong: 0, duplicated: 0" in output


def test_a_refused_postback_is_tried_15_times_then_given_up(simulate, settings):
    settings.POSTBACK_REFUSAL_THROTTLE_RATE = ""  # every attempt reaches authentication (429s: test_security_access)
    world = generate_world(9, SCENARIOS["default"], now=NOW, actions=1)
    postbacks = len(world.changes())
    with pytest.raises(CommandError, match=f"{postbacks} postbacks were not accepted after 15 attempts") as failure:
        simulate(scenario="default", actions=1, seed=9, now=NOW, token="not-the-secret-at-all", concurrency=1)
    assert f"HTTP 401: {15 * postbacks}" in failure.value.output
    assert f"{15 * postbacks} attempts" in failure.value.output
    assert RefusedAttempt.objects.count() == 15 * postbacks


def test_without_a_token_the_simulator_creates_its_own_short_lived_credential(simulate, settings, live_server):
    settings.PUBLIC_URL = live_server.url
    output = simulate(url=None, token=None, scenario="default", actions=10, verify=True)
    assert "Created credential" in output and "'demo simulator'" in output
    assert "lost: 0, wrong: 0, duplicated: 0" in output


def test_backdating_moves_receive_times_to_when_impact_would_have_sent_them(simulate):
    output = simulate(scenario="demo", actions=40, seed=6, verify=True)
    assert "Backdated" in output and "own credential" in output
    oldest = ActionEvent.objects.order_by("received_at").first()
    assert (NOW.now(UTC) - oldest.received_at).days >= 7
    assert all(e.delay_seconds is not None and e.delay_seconds >= 0 for e in ActionEvent.objects.all())


def test_the_demo_judges_delays_once_backdated_and_its_only_alert_is_its_late_brands(simulate, settings):
    from events.models import AlertItem, Notification

    output = simulate(scenario="demo", actions=40, seed=6, verify=True)
    world = generate_world(6, SCENARIOS["demo"], now=NOW.now(UTC), actions=40)
    late_brand = world.brands[-1]

    alert = DelayAlert.objects.select_related("brand").get()  # nothing else was opened, not even on arrival
    assert (alert.kind, alert.brand.campaign_id) == ("late", late_brand.campaign_id)
    assert f"{alert.item_count} over {settings.DELAY_ALERT_AFTER_MINUTES} min late joined a delay alert" in output
    items = list(AlertItem.objects.filter(alert=alert).select_related("event"))
    assert len(items) == alert.item_count >= 3
    for item in items:  # the evidence is the events' own times, after backdating
        event = item.event
        assert (item.received_at, item.changed_at, item.delay_seconds) == (
            event.received_at, event.changed_at, event.delay_seconds,
        )  # fmt: skip
        assert event.delay_seconds > settings.DELAY_ALERT_AFTER_MINUTES * 60
    assert alert.opened_at == min(item.received_at for item in items)  # never before the receipt it cites
    assert alert.max_delay_seconds == max(item.delay_seconds for item in items)
    assert alert.title.startswith(f"Late postbacks – {late_brand.name}: {alert.item_count} changes, longest delay")
    assert not Notification.objects.exclude(alert=alert).exists()


# --- The read-only actions API used by --verify-via http ------------------------------------


def _get(live_server, path, headers=None):
    request = Request(live_server.url + path, headers=headers or {})
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except Exception as exc:  # HTTPError carries the status
        return exc.code, json.loads(exc.read())


def test_actions_api_needs_staff_or_a_credential(live_server, credential, send):
    send(action_id="API-1")
    status, _ = _get(live_server, "/api/actions/?ids=API-1")
    assert status == 401
    status, _ = _get(live_server, "/api/actions/?ids=API-1", {credential.header_name: "wrong-secret-value"})
    assert status == 401
    status, body = _get(live_server, "/api/actions/?ids=API-1,NOPE", {credential.header_name: credential.secret})
    assert status == 200
    assert body["missing"] == ["NOPE"]
    [action] = body["actions"]
    assert (action["state"], action["amount"], action["events"][0]["kind"]) == ("tracked", "100.000000", "tracked")


def test_actions_api_for_staff_sessions_and_not_for_other_users(client, django_user_model, send):
    send(action_id="API-2")
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(user)
    assert client.get("/api/actions/?ids=API-2").status_code == 403
    user.is_staff = True
    user.save()
    response = client.get("/api/actions/?ids=API-2")
    assert response.status_code == 200 and response.json()["actions"][0]["action_id"] == "API-2"
    assert client.get("/api/actions/").status_code == 400
    assert client.get("/api/actions/?ids=" + ",".join(str(i) for i in range(501))).status_code == 400


def test_a_stopped_sender_finishes_the_postback_in_flight_and_sends_no_more(live_server, credential):
    from events.simulation.world import plan_deliveries

    world = generate_world(8, SCENARIOS["default"], now=NOW, actions=20)
    by_id = world.by_id()
    target = Target(live_server.url + ENDPOINT, credential.secret)

    def stop_after_first(stats, deltas):
        if deltas.get("sent"):
            sender.stop()  # as SIGTERM or Ctrl-C do

    sender = Sender(
        target, lambda s: by_id[s.change.action_id].params(s.change), concurrency=1, progress=stop_after_first
    )
    stats = sender.run(plan_deliveries(world, SCENARIOS["default"]))
    assert stats.interrupted and stats.sent == 1
    assert Delivery.objects.count() == 1
    process_pending()
    assert ActionEvent.objects.count() == 1


def test_the_rate_limit_spaces_requests(simulate):
    import time

    world = generate_world(12, SCENARIOS["default"], now=NOW, actions=10)
    started = time.monotonic()
    output = simulate(scenario="default", actions=10, seed=12, now=NOW, rate=40, verify=True)
    postbacks = int(output.split("Sent ")[1].split()[0])
    assert postbacks >= len(world.changes())
    assert time.monotonic() - started >= (postbacks - 1) / 40
    assert "lost: 0, wrong: 0, duplicated: 0" in output


def test_earlier_expired_simulator_credentials_are_switched_off(simulate, settings, live_server):
    from datetime import timedelta

    from django.utils import timezone

    from events.models import Credential

    old, _ = Credential.create_with_secret("demo simulator", expires_at=timezone.now() - timedelta(hours=1))
    settings.PUBLIC_URL = live_server.url
    simulate(url=None, token=None, scenario="default", actions=2)
    old.refresh_from_db()
    assert not old.active
    assert Credential.objects.filter(label="demo simulator", active=True).count() == 1


def test_the_forwarded_stream_verifies_signed_once_and_in_order(simulate, settings):
    settings.FORWARD_ALLOW_PRIVATE_TARGETS = True
    output = simulate(scenario="chaos", actions=60, seed=12, verify=True, verify_forwarding=True)
    assert "Verify (orm, 60 actions): lost: 0, wrong: 0, duplicated: 0" in output
    assert "Verify forwarding (60 actions): lost: 0, wrong: 0, duplicated: 0" in output
    endpoint = Endpoint.objects.get()
    assert not endpoint.active  # the run's endpoint takes nothing more
    assert endpoint.messages.filter(status="delivered").count() == ActionEvent.objects.filter(applied=True).count()


def test_a_forwarded_stream_missing_a_change_fails_its_verification(simulate, settings, monkeypatch):
    settings.FORWARD_ALLOW_PRIVATE_TARGETS = True
    real_write = outbox.write_messages
    dropped = []

    def write_all_but_one(results, now=None):
        if not dropped and any(outbox.is_change(r) for r in results):
            dropped.append(next(r for r in results if outbox.is_change(r)))
            results = [r for r in results if r is not dropped[0]]
        return real_write(results, now)

    monkeypatch.setattr(forwarding, "write_messages", write_all_but_one)
    with pytest.raises(CommandError, match="forwarding verification failed: lost: 1, ") as failure:
        simulate(scenario="chaos", actions=30, seed=13, verify=True, verify_forwarding=True)
    assert "Verify (orm, 30 actions): lost: 0, wrong: 0, duplicated: 0" in failure.value.output
    assert "was not forwarded" in failure.value.output


def test_a_forwarded_change_sent_twice_under_new_webhook_ids_is_reported_duplicated(simulate, settings, monkeypatch):
    settings.FORWARD_ALLOW_PRIVATE_TARGETS = True
    real_write = outbox.write_messages

    def write_twice(results, now=None):
        return real_write(results, now) + real_write(results, now)

    monkeypatch.setattr(forwarding, "write_messages", write_twice)
    with pytest.raises(CommandError, match=r"forwarding verification failed: .*duplicated: [1-9]") as failure:
        simulate(scenario="chaos", actions=20, seed=14, verify=True, verify_forwarding=True)
    assert "arrived under two webhook-ids" in failure.value.output


def test_forwarding_verification_needs_private_targets_allowed(simulate, settings):
    settings.FORWARD_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(CommandError, match="FORWARD_ALLOW_PRIVATE_TARGETS=true"):
        simulate(scenario="chaos", actions=5, seed=1, verify_forwarding=True)
    assert not Endpoint.objects.exists()
