"""No query parameter of any page answers a 5xx or makes unbounded work, whatever a logged-in user
sends: arbitrary text at every parameter of every page (hypothesis, as staff), and the requests
that did answer 500 or ran a worker out of memory, one by one."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dashboard import urls as dashboard_urls
from dashboard.filters import DeliveryFilter, RefusedFilter, TimelineFilter
from dashboard.report_filters import SORT_CHOICES, LockingFilter, PerformanceFilter
from events.models import Action, Attempt, Brand, DelayAlert, Delivery, Endpoint, Message
from events.reporting import reports
from events.reporting.report_queries import DIMENSIONS

ROOT = Path(__file__).resolve().parents[2]
PAGING = ["before", "after"]

# Every query parameter each page reads (the test below keeps this list complete).
PARAMETERS = {
    "overview": ["period", "start", "end", "currency"],
    "brands": ["period", "start", "end", "q", "sort", "tests", "format"],
    "brand": [*TimelineFilter.base_filters, *PAGING, "format"],
    "action": [],
    "deliveries": [*DeliveryFilter.base_filters, *PAGING, "format"],
    "refused": [*RefusedFilter.base_filters, *PAGING, "format"],
    "setup": ["delivery"],
    "alerts": ["status", "kind", "brand", "expected"],
    "alert-detail": [],
    "alert-csv": [],
    "api-actions": ["ids"],
    "forwarding": [],
    "forwarding-endpoint": [*PAGING],
    "forwarding-messages": ["status", *PAGING],
    "locking": [*LockingFilter.base_filters, *PAGING, "format"],
    "performance": ["period", "start", "end", *PerformanceFilter.base_filters, *PAGING, "format"],
    "search": ["q"],
}
POSTS = {"replay", "setup-test-postback", "setup-test-postback-remove", "alert-acknowledge", "alert-resolve"}
POSTS |= {"forwarding-test", "forwarding-replay", "forwarding-replay-failed"}


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Values that broke something once, or sit on an edge: the ends of the calendar, digits Python
# reads and PostgreSQL does not, ids past a bigint, NUL, page links pointing off the end of time.
EDGES = [
    "0001-01-01", "0001-01-02", "1899-12-31", "1900-01-01", "9998-12-31", "9999-12-30", "9999-12-31",
    "2026-02-30", "2026-11-21", "custom", "24h", "csv", "on", "active", "²", "٣", "-1", "0", "1e400", "NaN",
    "9" * 19, "9" * 30, "1," * 600, "\x00", "A\x00B", "%00", "1001",
    cursor("9999-12-31T23:59:59.999999+00:00|1"), cursor("0001-01-01T00:00:00+05:00|1"),
    cursor("2026-11-20T00:00:00+00:00|99999999999999999999"), cursor("2026-11-20T00:00:00|1"),
]  # fmt: skip
DATES = st.dates().map(lambda day: day.isoformat())
NUMBERS = st.integers(min_value=-(2**70), max_value=2**70).map(str)
CURSORS = st.builds(
    lambda at, pk: cursor(f"{at.isoformat()}|{pk}"),
    st.datetimes(timezones=st.timezones()),
    st.integers(min_value=-(2**70), max_value=2**70),
)
# Besides any text and the edges, what each parameter usually holds, so combinations get tried
# (a custom period with its dates, a page link with the filters...).
USUAL = {
    "period": st.sampled_from(["custom", "24h", "7d", "30d"]),
    "start": DATES, "end": DATES, "date_from": DATES, "date_to": DATES,
    "ids": NUMBERS, "brand": NUMBERS, "delivery": NUMBERS,
    "before": CURSORS, "after": CURSORS,
    "format": st.just("csv"), "late": st.just("on"),
    "day": DATES, "by": st.sampled_from(sorted(DIMENSIONS)), "sort": st.sampled_from([s for s, _ in SORT_CHOICES]),
    "value": st.sampled_from(["sub0", "", "7"]), "currency": st.sampled_from(["USD", "usd", "EUR"]),
}  # fmt: skip


def values(name: str):
    return st.one_of(st.text(max_size=30), st.sampled_from(EDGES), USUAL.get(name, st.text(max_size=5)))


# The requests of the report, always among the examples tried.
REPORTED = {
    "overview": [{"period": "custom", "start": "9999-12-31", "end": "9999-12-31"}],
    "brands": [{"q": "\x00"}],
    "brand": [{"date_from": "0001-01-02", "date_to": "9999-12-30"}, {"date_to": "9999-12-31"}, {"q": "\x00"}],
    "deliveries": [{"date_to": "9999-12-31"}],
    "refused": [{"date_to": "9999-12-31"}],
    "alerts": [{"brand": "²"}],
    "setup": [{"delivery": "²"}],
    "api-actions": [{"ids": "\x00"}],
    "forwarding-messages": [{"status": "failed", "before": cursor("9999-12-31T23:59:59.999999+00:00|1")}],
    "locking": [{"day": "9999-12-31"}, {"day": "1900-01-01", "brand": "1001"}, {"brand": "nope", "format": "csv"}],
    "performance": [
        {"by": "nope", "sort": "-nope"},
        {"value": "sub0", "by": "sub_id1", "brand": "1001"},
        {"period": "custom", "start": "9998-12-31", "end": "9998-12-31", "value": ""},
    ],
    "search": [{"q": "1" * 300}, {"q": "%_"}, {"q": "ORD"}],
}


def page_path(name: str, brand, action, alert, endpoint) -> str:
    kwargs = {"brand": {"campaign_id": brand.campaign_id}, "action": {"action_id": action.action_id}}
    kwargs |= {"alert-detail": {"pk": alert.pk}, "alert-csv": {"pk": alert.pk}}
    kwargs |= {"forwarding-endpoint": {"pk": endpoint.pk}, "forwarding-messages": {"pk": endpoint.pk}}
    return reverse(name, kwargs=kwargs.get(name))


def answer(client, path: str, params: dict[str, str] | None = None):
    response = client.get(path, params or {})
    if response.streaming:  # a CSV export: its rows are read while it streams
        b"".join(response.streaming_content)
    return response


@pytest.fixture
def world(make_history):
    make_history(10)
    reports.backfill()  # the history is bulk-created: its reports as the migration fills them
    brand = Brand.objects.get(campaign_id="1001")
    action = Action.objects.filter(brand=brand).first()
    alert = DelayAlert.objects.create(
        brand=brand,
        kind="late",
        summary="late",
        opened_at=action.first_received_at,
        last_item_at=action.first_received_at,
    )
    endpoint = Endpoint.objects.create(url="https://hooks.example.com/h", description="fuzzed")
    message = Message.objects.create(endpoint=endpoint, msg_id="msg_1", type="test", body="{}", status="failed")
    Attempt.objects.create(message=message, endpoint=endpoint, status_code=500, latency_ms=3, response="busy")
    return brand, action, alert, endpoint


def test_every_query_parameter_a_view_reads_is_fuzzed():
    read = set()
    for path in [*(ROOT / "dashboard").rglob("*.py"), ROOT / "events" / "intake" / "actions_api.py"]:
        read |= set(re.findall(r"(?:GET|query_params)\.get\(\"(\w+)\"", path.read_text()))
    fuzzed = {name for names in PARAMETERS.values() for name in names}
    assert read <= fuzzed, read - fuzzed
    assert {pattern.name for pattern in dashboard_urls.urlpatterns} - POSTS <= set(PARAMETERS)


@pytest.mark.parametrize("page", sorted(PARAMETERS))
def test_arbitrary_text_in_any_query_parameter_never_answers_5xx(staff_client, world, page):
    path = page_path(page, *world)
    names = PARAMETERS[page] or ["unknown"]
    every = st.fixed_dictionaries({}, optional={name: values(name) for name in names})

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(params=every)
    def check(params):
        response = answer(staff_client, path, params)
        assert response.status_code < 500, (path, params, response.status_code)

    for params in REPORTED.get(page, []):
        check = example(params=params)(check)
    check()


@pytest.mark.parametrize("page", ["brand", "action"])
def test_arbitrary_text_as_a_brand_or_action_id_never_answers_5xx(staff_client, world, page):
    prefix = "/brands/" if page == "brand" else "/actions/"

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=st.one_of(st.text(min_size=1, max_size=30), st.sampled_from(EDGES)))
    @example(text="\x00")
    def check(text):
        response = answer(staff_client, prefix + quote(text, safe="") + "/")
        assert response.status_code < 500, (text, response.status_code)

    check()


# --- the requests of the report, one by one ------------------------------------------------------


def test_a_century_long_timeline_chart_is_refused_and_the_chart_keeps_its_30_days(staff_client, world):
    response = answer(staff_client, "/brands/1001/?date_from=0001-01-02&date_to=9999-12-30")
    assert response.status_code == 200
    assert "Dates run from 1900-01-01 to 9998-12-31." in response.content.decode()
    assert len(response.context["chart"]["table"]) <= 31


def test_a_range_over_366_days_is_refused_on_every_dated_page(staff_client, world):
    for path in ["/brands/1001/", "/deliveries/", "/deliveries/refused/"]:
        response = answer(staff_client, f"{path}?date_from=2025-01-01&date_to=2026-11-21")
        assert response.status_code == 200
        assert "A date range covers at most 366 days." in response.content.decode(), path
    alone = answer(staff_client, "/brands/1001/?date_from=2020-01-01")  # a start alone runs to today
    assert "A date range covers at most 366 days." in alone.content.decode()
    assert len(alone.context["chart"]["table"]) <= 31
    year = answer(staff_client, "/brands/1001/?date_from=2025-11-21&date_to=2026-11-20")
    assert "covers at most" not in year.content.decode() and len(year.context["chart"]["table"]) == 365


@pytest.mark.parametrize("path", ["/brands/1001/", "/deliveries/", "/deliveries/refused/"])
def test_the_last_day_of_the_calendar_is_an_error_beside_the_field_not_a_500(staff_client, world, path):
    response = answer(staff_client, path + "?date_to=9999-12-31")
    assert response.status_code == 200
    assert "Dates run from 1900-01-01 to 9998-12-31." in response.content.decode()


def test_a_custom_period_at_the_end_of_the_calendar_falls_back_with_a_message(staff_client, world):
    response = answer(staff_client, "/?period=custom&start=9999-12-31&end=9999-12-31")
    assert response.status_code == 200
    assert response.context["period_error"] == "dates run from 1900-01-01 to 9998-12-31"
    assert response.context["period"].key == "7d"


@pytest.mark.parametrize(
    "path",
    [
        *["/brands/?q=%00", "/brands/1001/?q=%00", "/actions/%00/", "/brands/%00/", "/api/actions/?ids=%00"],
        *["/?period=%00", "/forwarding/1/messages/?status=%00"],
    ],
)
def test_a_nul_byte_anywhere_but_a_postback_is_a_400(staff_client, world, path):
    assert answer(staff_client, path).status_code == 400


def test_a_nul_byte_in_a_form_body_is_a_400_before_anything_stores_it(staff_client, world):
    _, _, alert, _ = world
    response = staff_client.post(f"/alerts/{alert.pk}/acknowledge", {"note": "on it\x00"})
    assert response.status_code == 400
    alert.refresh_from_db()
    assert alert.status == "open"


def test_a_postback_keeps_its_nul_bytes_stored_escaped(send):
    response = send(SubId1="a\x00b")
    assert response.status_code == 200
    assert "%00" in Delivery.objects.get().query_string


@pytest.mark.parametrize("value", ["²", "٣", "9" * 30, "-1", "1.0"])
def test_an_id_that_is_not_a_plain_number_finds_nothing(staff_client, world, value):
    alerts = answer(staff_client, "/alerts/", {"brand": value})
    assert alerts.status_code == 200 and list(alerts.context["alerts"]) == []
    setup = answer(staff_client, "/setup/", {"delivery": value})
    assert setup.status_code == 200 and setup.context["test_delivery"] is None
    deliveries = answer(staff_client, "/deliveries/", {"ids": value})
    assert deliveries.status_code == 200
    assert "Give delivery ids as numbers, comma-separated." in deliveries.content.decode()


def test_replaying_an_id_past_a_bigint_is_a_400(staff_client, world):
    assert staff_client.post("/deliveries/replay/", {"delivery": ["9" * 30]}).status_code == 400


@pytest.mark.parametrize(
    "token",
    [
        cursor("9999-12-31T23:59:59.999999-05:00|1"),
        cursor("0001-01-01T00:00:00+05:00|1"),
        cursor("2026-11-20T00:00:00+00:00|99999999999999999999"),
    ],
)
def test_a_page_link_off_the_end_of_time_or_ids_shows_the_newest_page(staff_client, world, token):
    for path in ["/brands/1001/", "/deliveries/", "/deliveries/refused/"]:
        response = answer(staff_client, path, {"before": token})
        assert response.status_code == 200
        assert "That page link is not valid any more" in response.content.decode()


def test_a_page_link_off_the_end_of_time_on_the_forwarding_pages_shows_the_newest_page(staff_client, world):
    endpoint = world[3]
    for token in [cursor("9999-12-31T23:59:59.999999-05:00|1"), cursor("0001-01-01T00:00:00+05:00|1")]:
        for name in ["forwarding-endpoint", "forwarding-messages"]:
            response = answer(staff_client, page_path(name, *world), {"after": token})
            assert response.status_code == 200, (name, token)
            assert "That page link is not valid any more" in response.content.decode()
            assert len(response.context["page"].rows) == 1
    assert endpoint.messages.get().status == "failed"


def test_any_text_as_the_time_to_replay_failed_messages_from_is_a_redirect_or_a_400(staff_client, world):
    path = reverse("forwarding-replay-failed", kwargs={"pk": world[3].pk})

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(since=st.one_of(st.text(max_size=30), st.sampled_from(EDGES), st.datetimes().map(lambda d: d.isoformat())))
    @example(since="9999-12-31T23:59")
    @example(since="0001-01-01T00:00")
    def check(since):
        response = staff_client.post(path, {"since": since})
        assert response.status_code in (302, 400), (since, response.status_code)

    check()
