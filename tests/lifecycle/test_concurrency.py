"""Postbacks for the same actions applied at the same time on PostgreSQL by several processors, from
threads with real connections: each thread sends its postback, then works as a processor (batches of
one), so processors race on the same actions, new ones included."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client

from events.models import Action, ActionEvent, Brand, Delivery, RefusalCounter, RefusedAttempt
from events.processing import process_pending
from tests.conftest import ENDPOINT, postback_params
from tests.lifecycle.conftest import CREATED

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def send_concurrently(credential, params_list: list[dict[str, str]]) -> list[tuple[int, dict]]:
    """Send every postback from its own thread (its own connection), all released at once."""
    barrier = threading.Barrier(len(params_list))
    results: list = [None] * len(params_list)

    def worker(i: int, params: dict[str, str]) -> None:
        try:
            client = Client()
            barrier.wait(timeout=10)
            headers = {} if "token" in params else {credential.header_name: credential.secret}
            response = client.get(f"{ENDPOINT}?{urlencode(params)}", headers=headers)
            body = response.json()
            barrier.wait(timeout=10)  # every postback stored: now as many processors at once
            process_pending(size=1)
            results[i] = (response.status_code, body)
        except Exception as exc:  # reported by the assertions below
            results[i] = (0, {"error": repr(exc)})
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, p)) for i, p in enumerate(params_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a postback never finished (deadlock?)"
    for _, body in results:  # as every processor left it
        if "delivery" in body:
            body["outcome"] = Delivery.objects.get(pk=body["delivery"]).outcome
    return results


def modification(minutes: int, amount: str) -> dict[str, str]:
    return postback_params(
        Amount=amount, DeltaAmount="1", UpdateDate=(CREATED + timedelta(minutes=minutes)).isoformat()
    )


def events_of(action_id: str) -> list[ActionEvent]:
    return list(ActionEvent.objects.filter(action__action_id=action_id).order_by("seq"))


def test_two_changes_to_the_same_action_at_the_same_time_both_land(client, credential):
    client.get(f"{ENDPOINT}?{urlencode(postback_params())}", headers={credential.header_name: credential.secret})
    process_pending()
    results = send_concurrently(credential, [modification(10, "110.00"), modification(20, "120.00")])
    assert [status for status, _ in results] == [200, 200], results
    assert [body["outcome"] for _, body in results] == ["applied", "applied"]
    events = events_of("A1")
    assert [e.seq for e in events] == [1, 2, 3]
    action = Action.objects.get(action_id="A1")
    assert action.event_count == 3
    assert action.amount == Decimal("120.00")  # the latest change, whichever committed last


def test_eight_changes_to_a_new_action_at_the_same_time_all_land_in_a_consistent_order(credential):
    params = [postback_params()] + [modification(minutes, f"{100 + minutes}.00") for minutes in range(1, 8)]
    results = send_concurrently(credential, params)
    assert [status for status, _ in results] == [200] * 8, results
    assert {body["outcome"] for _, body in results} == {"applied"}
    events = events_of("A1")
    assert [e.seq for e in events] == list(range(1, 9))
    assert sorted(e.fingerprint for e in events) == sorted({e.fingerprint for e in events})
    # Each event's from_state is the state its predecessor left: one consistent order, no lost update.
    for previous, event in itertools.pairwise(events):
        assert event.from_state == previous.to_state
    action = Action.objects.get(action_id="A1")
    assert (action.event_count, action.amount, action.state) == (8, Decimal("107.00"), "modified")
    assert action.tracked_seen
    assert Delivery.objects.filter(outcome="applied").count() == 8


def test_the_same_postback_sent_eight_times_at_once_makes_exactly_one_event(credential):
    results = send_concurrently(credential, [postback_params()] * 8)
    assert [status for status, _ in results] == [200] * 8, results
    outcomes = sorted(body["outcome"] for _, body in results)
    assert outcomes == ["applied"] + ["duplicate"] * 7
    [event] = events_of("A1")
    assert event.duplicate_count == 7
    assert len({body["delivery"] for _, body in results}) == 8  # every delivery is stored


def test_first_postbacks_for_new_actions_of_a_new_brand_at_the_same_time_make_one_brand(credential):
    params = [postback_params(action_id=f"N{i}", CampaignId="2002", CampaignName="New Brand") for i in range(8)]
    results = send_concurrently(credential, params)
    assert [status for status, _ in results] == [200] * 8, results
    assert {body["outcome"] for _, body in results} == {"applied"}
    brand = Brand.objects.get(campaign_id="2002")
    assert brand.actions.count() == 8
    assert ActionEvent.objects.filter(brand=brand, kind="tracked").count() == 8


def test_changes_to_two_actions_crossing_each_other_do_not_deadlock(client, credential):
    for action_id in ("X", "Y"):
        client.get(
            f"{ENDPOINT}?{urlencode(postback_params(action_id=action_id))}",
            headers={credential.header_name: credential.secret},
        )
    process_pending()
    params = []
    for i in range(1, 5):
        for action_id in ("X", "Y"):
            params.append({**modification(i, f"{i}.00"), "ActionId": action_id})
    results = send_concurrently(credential, params)
    assert [status for status, _ in results] == [200] * 8, results
    assert {body["outcome"] for _, body in results} == {"applied"}
    for action_id in ("X", "Y"):
        assert [e.seq for e in events_of(action_id)] == [1, 2, 3, 4, 5]
        assert Action.objects.get(action_id=action_id).amount == Decimal("4.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_refusals_all_answer_401_and_are_all_counted(live_server):
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from events.models import Credential, RefusalCounter, RefusedAttempt

    Credential.create_with_secret(label="real")

    def refused(_):
        try:
            urllib.request.urlopen(live_server.url + "/postbacks/impact/?ActionId=X", timeout=10)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(refused, range(16)))
    assert codes == [401] * 16
    assert RefusalCounter.objects.get(reason="missing_credential").count == 16
    assert RefusedAttempt.objects.count() == 16


def test_a_burst_of_refused_postbacks_is_refused_and_counted_not_an_error(credential):
    results = send_concurrently(credential, [{"ActionId": f"R{i}", "token": "wrong-secret-0000000"} for i in range(8)])
    assert [status for status, _ in results] == [401] * 8, results
    assert RefusalCounter.objects.get(reason="invalid_credential").count == 8
    assert RefusedAttempt.objects.count() == 8


def test_two_processors_over_the_same_backlog_apply_every_delivery_exactly_once(credential):
    """5,000 stored postbacks (new actions, their modifications, reversals and retries, in arrival
    order), then two processors at once: no deadlock, each delivery taken once, the histories whole."""
    params = []
    for n in range(1250):
        action = f"B{n}"
        params.append(postback_params(action_id=action))
        params.append({**modification(1, "101.00"), "ActionId": action})
        params.append(
            {
                **postback_params(action_id=action),
                "Status": "REVERSED",
                "Payout": "0",
                "UpdateDate": (CREATED + timedelta(minutes=2)).isoformat(),
            }
            if n % 4 == 0
            else postback_params(action_id=action)
        )
        params.append({**modification(3, "103.00"), "ActionId": action})
    # Stored as the endpoint stores them (the endpoint's own tests cover the request path).
    Delivery.objects.bulk_create(
        [Delivery(method="GET", path=ENDPOINT, query_string=urlencode(one), credential=credential) for one in params]
    )
    errors: list[Exception] = []

    def processor():
        try:
            process_pending(size=100)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=processor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a processor never finished (deadlock?)"
    assert errors == []
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}  # none taken twice
    outcomes = sorted(Delivery.objects.values_list("outcome", flat=True))
    assert outcomes.count("duplicate") == 1250 - 313 and outcomes.count("applied") == 5000 - (1250 - 313)
    assert ActionEvent.objects.count() == 5000 - (1250 - 313)
    assert Action.objects.count() == 1250
    for action in Action.objects.filter(action_id__in=["B0", "B1", "B1249"]):
        assert [e.seq for e in events_of(action.action_id)] == list(range(1, action.event_count + 1))
