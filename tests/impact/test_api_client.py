"""The API client against a local server that speaks impact.com's documented API."""

import json
import urllib.request
from datetime import timedelta

import pytest
import time_machine
from delay_helpers import MIN, T0
from fake_impact import SID, TOKEN, FakeImpact, update_record

from events.alerts import reconcile
from events.impact import api as impact_api
from events.models import ApiChange, ImpactAccount

T = T0 + timedelta(days=1)


@pytest.fixture
def fake(settings, db):
    with FakeImpact() as server:
        settings.IMPACT_API_BASE_URL = server.base_url
        settings.IMPACT_API_ALLOW_HTTP = True
        server.account = ImpactAccount.objects.create(account_sid=SID, auth_token=TOKEN)
        yield server


def client(fake, token=TOKEN, **kwargs):
    return impact_api.ImpactClient(SID, token, base_url=fake.base_url, allow_http=True, **kwargs)


def add_updates(fake, n):
    fake.updates += [update_record(f"A{i}", T + i * timedelta(seconds=10)) for i in range(n)]


def test_pages_are_followed_with_basic_auth_and_json(fake):
    add_updates(fake, 5)
    records = list(client(fake, page_size=2).records("ActionUpdates", {}))

    assert [r["ActionId"] for r in records] == [f"A{i}" for i in range(5)]
    assert [r["query"]["Page"] for r in fake.requests] == ["1", "2", "3"]
    for request in fake.requests:
        assert request["headers"]["Accept"] == "application/json"
        assert request["headers"]["Authorization"].startswith("Basic ")
    assert records[0]["Payout"] == "8.00"  # numbers arrive as strings


def test_the_server_answers_xml_without_accept_and_the_client_refuses_it(fake):
    add_updates(fake, 1)
    request = urllib.request.Request(
        fake.base_url + f"/Mediapartners/{SID}/ActionUpdates",
        headers={"Authorization": _basic()},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"].startswith("application/xml")
        assert b'<ActionUpdates page="1" numpages="1"' in response.read()

    fake.ignore_accept = True
    with pytest.raises(impact_api.ApiError, match="expected JSON"):
        list(client(fake).records("ActionUpdates", {}))


def _basic():
    import base64

    return "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


def test_wrong_token_is_a_clear_error(fake):
    with pytest.raises(impact_api.ApiError, match="check the Account SID and Auth Token"):
        list(client(fake, token="wrong").records("Actions", {}))


def test_429_waits_retry_after_on_the_injected_clock_then_retries(fake):
    add_updates(fake, 1)
    fake.throttle_next = 1
    fake.retry_after = "7"
    waits = []
    with time_machine.travel(T, tick=False) as traveller:

        def sleep(seconds):
            waits.append(seconds)
            traveller.shift(seconds)

        records = list(client(fake, sleep=sleep).records("ActionUpdates", {}))
    assert len(records) == 1
    assert waits == [7]
    assert len(fake.requests) == 2
    assert fake.requests[1]["at"] - fake.requests[0]["at"] >= 7


def test_long_retry_after_stops_the_reconciliation_and_pauses_it(fake):
    add_updates(fake, 1)
    fake.throttle_next = 1
    fake.retry_after = "3600"
    with time_machine.travel(T, tick=False):
        account = ImpactAccount.objects.get()
        report = reconcile.reconcile(account, reconcile.client_for(account, sleep=pytest.fail))
    assert "wait 3600 s" in report.error
    assert len(fake.requests) == 1
    account.refresh_from_db()
    assert account.paused_until == T + timedelta(hours=1)
    assert account.synced_through is None  # it starts again from the same point
    assert not reconcile.reconcile_due(account, T + 30 * MIN)
    assert reconcile.reconcile_due(account, T + 61 * MIN)


def test_request_budget_per_hour_is_obeyed_and_reported(fake, settings):
    settings.IMPACT_API_REQUESTS_PER_HOUR = 3
    add_updates(fake, 10)

    def run(moment):
        with time_machine.travel(moment, tick=False):
            account = ImpactAccount.objects.get()
            return reconcile.reconcile(account, reconcile.client_for(account, page_size=2))

    first = run(T + 30 * MIN)
    assert len(fake.requests) == 3  # the server saw exactly the budget
    assert "budget exhausted" in first.error
    assert "3 of 3 requests used this hour" in first.budget

    run(T + 40 * MIN)  # same hour: nothing left
    assert len(fake.requests) == 3

    later = run(T + 100 * MIN)  # next hour: a fresh budget, the same window again
    assert len(fake.requests) == 6
    assert ApiChange.objects.count() == 6  # 3 pages of 2 records each time, stored once
    assert "3 of 3" in later.budget


def test_remaining_zero_from_impact_stops_before_the_next_request(fake):
    fake.hourly_limit = 2
    add_updates(fake, 10)
    with pytest.raises(impact_api.BudgetExhausted, match="Remaining-hour: 0"):
        list(client(fake, page_size=2).records("ActionUpdates", {}))
    assert len(fake.requests) == 2


def test_next_page_on_another_host_is_refused(fake):
    c = client(fake)
    with pytest.raises(impact_api.ApiError, match="another host"):
        c.get("http://example.com/Mediapartners/x/Actions")
    assert fake.requests == []


def test_a_redirect_on_the_same_host_is_followed_with_the_credentials(fake):
    add_updates(fake, 1)
    fake.redirect_next = f"/Mediapartners/{SID}/ActionUpdates?PageSize=1000&Page=1"
    assert len(list(client(fake).records("ActionUpdates", {}))) == 1
    assert len(fake.requests) == 2
    assert fake.requests[1]["headers"]["Authorization"] == _basic()


@pytest.mark.parametrize("elsewhere", ["other host", "https instead of http"])
def test_a_redirect_to_another_host_or_scheme_is_refused_and_nothing_is_sent_there(fake, elsewhere):
    with FakeImpact() as other:
        port = fake.base_url.rsplit(":", 1)[1]
        target = other.base_url if elsewhere == "other host" else f"https://127.0.0.1:{port}"
        fake.redirect_next = f"{target}/Mediapartners/{SID}/ActionUpdates"
        with pytest.raises(impact_api.ApiError, match="another host or scheme"):
            list(client(fake).records("ActionUpdates", {}))
        assert other.requests == []
    assert len(fake.requests) == 1


def test_the_client_refuses_a_plain_http_base_url_unless_told_it_is_a_test():
    with pytest.raises(impact_api.ApiError, match="must be https"):
        impact_api.ImpactClient(SID, TOKEN, base_url="http://api.impact.com")
    assert impact_api.ImpactClient(SID, TOKEN, base_url="http://127.0.0.1:9", allow_http=True)


def test_retry_after_can_be_an_http_date():
    now = T
    assert impact_api.retry_after_seconds("Sat, 21 Nov 2026 22:05:11 GMT", lambda: now) == 121
    assert impact_api.retry_after_seconds("", lambda: now) == 60
    assert json.dumps(impact_api.api_time(T)) == '"2026-11-21T22:03:11Z"'
