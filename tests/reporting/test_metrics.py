"""Prometheus metrics at /metrics: computed from the database, protected by a token or an allow-list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from events.models import ActionEvent, Delivery
from events.processing import process_pending
from tests.conftest import ENDPOINT, postback_params

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def _metrics_settings(db, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_CIDRS = []
    settings.TRUSTED_PROXIES = []


def scrape(client, **kwargs):
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def bearer(token=TOKEN):
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_without_token_or_allow_list_configured_metrics_are_off(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN])
def test_a_missing_or_wrong_token_is_refused(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_allowed_address_needs_no_token_and_a_spoofed_one_gets_nothing(client, settings):
    settings.METRICS_ALLOWED_CIDRS = ["192.0.2.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.10").status_code == 200
    spoofed = client.get("/metrics", REMOTE_ADDR="203.0.113.9", headers={"X-Forwarded-For": "192.0.2.10"})
    assert spoofed.status_code == 401


def test_metrics_count_outcomes_refusals_latency_and_delays(client, send, credential):
    send(CreationDate=None, UpdateDate=None)  # applied, no change time
    send(CreationDate=None, UpdateDate=None)  # duplicate
    send(ActionId="")  # invalid
    send(action_id="A2")  # applied, CreationDate in 2026-11-20 -> a delay
    client.get(f"{ENDPOINT}?{urlencode(postback_params())}", headers={credential.header_name: "nope-0123456789"})
    client.get(f"{ENDPOINT}?{urlencode(postback_params())}")
    samples = scrape(client, **bearer())

    assert samples[("postbacks_received_total", (("outcome", "applied"),))] == 2
    assert samples[("postbacks_received_total", (("outcome", "duplicate"),))] == 1
    assert samples[("postbacks_received_total", (("outcome", "invalid"),))] == 1
    assert samples[("postbacks_received_total", (("outcome", "failed"),))] == 0
    assert samples[("postbacks_refused_total", (("reason", "invalid_credential"),))] == 1
    assert samples[("postbacks_refused_total", (("reason", "missing_credential"),))] == 1
    assert samples[("postbacks_refused_total", (("reason", "throttled"),))] == 0
    assert samples[("postbacks_refusal_throttle_errors_total", ())] == 0
    assert ("postbacks_refused_total", (("reason", "throttle_failed"),)) not in samples

    processed = Delivery.objects.exclude(processing_ms=None)
    assert processed.count() == 4
    assert samples[("postbacks_processing_seconds_count", ())] == 4
    assert samples[("postbacks_processing_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("postbacks_processing_seconds_sum", ())] == pytest.approx(
        sum(processed.values_list("processing_ms", flat=True)) / 1000
    )

    delays = list(ActionEvent.objects.exclude(delay_seconds=None).values_list("delay_seconds", flat=True))
    assert len(delays) == 1 and delays[0] > 86400
    assert samples[("postbacks_delay_seconds_count", ())] == 1
    assert samples[("postbacks_delay_seconds_bucket", (("le", "86400.0"),))] == 0
    assert samples[("postbacks_delay_seconds_bucket", (("le", "+Inf"),))] == 1
    assert samples[("postbacks_delay_seconds_sum", ())] == delays[0]
    assert samples[("postbacks_last_received_timestamp_seconds", ())] > 0


def test_delay_buckets_are_cumulative(client, send):
    from django.utils import timezone

    now = timezone.now()
    for n, minutes in enumerate([0.5, 10, 20, 90]):
        changed = (now - timedelta(minutes=minutes)).isoformat()
        send(action_id=f"D{n}", CreationDate=changed)
    samples = scrape(client, **bearer())
    bucket = {le: samples[("postbacks_delay_seconds_bucket", (("le", le),))] for le in ("60.0", "900.0", "3600.0")}
    assert bucket == {"60.0": 1, "900.0": 2, "3600.0": 3}
    assert samples[("postbacks_delay_seconds_count", ())] == 4


def test_open_alerts_by_kind_and_the_reconciliation_budget_left(client, send, settings):
    from django.utils import timezone

    from events.models import ImpactAccount

    settings.IMPACT_API_REQUESTS_PER_HOUR = 500
    send(action_id="LATE-1", CreationDate=(timezone.now() - timedelta(hours=3)).isoformat())  # opens a late alert
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    ImpactAccount.objects.create(account_sid="IRabc", auth_token="t" * 20, budget_hour=hour, budget_used=120)
    samples = scrape(client, **bearer())
    assert samples[("postbacks_open_alerts", (("kind", "late"),))] == 1
    assert samples[("postbacks_open_alerts", (("kind", "missing"),))] == 0
    assert samples[("postbacks_reconcile_budget_remaining", (("account", "IRabc"),))] == 380


def test_the_backlog_waiting_to_be_applied_and_its_age(client, store):
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        store(action_id="P1")
        store(action_id="P2")
    with time_machine.travel(start + timedelta(seconds=42), tick=False):
        samples = scrape(client, **bearer())
    assert samples[("postbacks_pending", ())] == 2
    assert samples[("postbacks_oldest_pending_age_seconds", ())] == 42
    process_pending()
    samples = scrape(client, **bearer())
    assert (samples[("postbacks_pending", ())], samples[("postbacks_oldest_pending_age_seconds", ())]) == (0, 0)
