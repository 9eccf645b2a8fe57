"""A brand's timeline: filters, keyset pages, chart and CSV export."""

from datetime import timedelta

import pytest
from tests_dashboard_common import NOW

from events.models import ActionEvent


def _ids(response):
    return [e.pk for e in response.context["page"].rows]


def test_timeline_lists_the_brand_events_newest_first(staff_client, make_history):
    make_history(30, brands=2)
    response = staff_client.get("/brands/1001/")
    rows = response.context["page"].rows
    assert rows and all(e.brand.campaign_id == "1001" for e in rows)
    assert [(e.received_at, e.pk) for e in rows] == sorted(((e.received_at, e.pk) for e in rows), reverse=True)


def test_paging_by_cursor_visits_every_event_once(staff_client, make_history):
    make_history(130, brands=1)
    seen, cursor, pages = [], None, []
    while True:
        response = staff_client.get("/brands/1001/" + (f"?before={cursor}" if cursor else ""))
        pages.append(response)
        seen += _ids(response)
        cursor = response.context["page"].older
        if not cursor:
            break
    expected = list(ActionEvent.objects.order_by("-received_at", "-id").values_list("id", flat=True))
    assert seen == expected and len(pages) == 3
    back = staff_client.get(f"/brands/1001/?after={pages[1].context['page'].newer}")
    assert _ids(back) == _ids(pages[0])


def test_paging_is_exact_when_many_events_share_a_timestamp(staff_client, make_history):
    make_history(120, brands=1)
    ActionEvent.objects.update(received_at=NOW)
    first = staff_client.get("/brands/1001/")
    second = staff_client.get(f"/brands/1001/?before={first.context['page'].older}")
    third = staff_client.get(f"/brands/1001/?before={second.context['page'].older}")
    everything = _ids(first) + _ids(second) + _ids(third)
    assert sorted(everything, reverse=True) == everything and len(set(everything)) == 120


def test_a_tampered_cursor_shows_the_newest_page_with_a_note(staff_client, make_history):
    make_history(10, brands=1)
    response = staff_client.get("/brands/1001/?before=not-a-cursor")
    assert response.status_code == 200
    assert len(_ids(response)) == 10
    assert "not valid any more" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("kind=reversed", lambda e: e.kind == "reversed"),
        ("state=modified", lambda e: e.to_state == "modified"),
        ("late=on", lambda e: e.delay_seconds > 900),
        ("tracker=8", lambda e: e.action.action_tracker_id == "8"),
        ("sub_id=sub2", lambda e: e.action.sub_id1 == "sub2"),
        ("q=1001.000003", lambda e: e.action.action_id == "1001.000003"),
        ("q=ORD-6", lambda e: e.action.oid == "ORD-6"),
        ("date_from=2026-11-20&date_to=2026-11-20", lambda e: e.received_at.date().isoformat() == "2026-11-20"),
    ],
)
def test_each_filter_keeps_only_matching_events(staff_client, make_history, query, check):
    make_history(60, brands=1)
    response = staff_client.get(f"/brands/1001/?{query}")
    rows = response.context["page"].rows
    everything = list(ActionEvent.objects.select_related("action"))
    assert rows and all(check(e) for e in rows)
    assert len(rows) == sum(1 for e in everything if check(e))


def test_an_invalid_filter_value_is_explained_and_ignored(staff_client, make_history):
    make_history(10, brands=1)
    response = staff_client.get("/brands/1001/?kind=sideways&date_from=yesterday")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Select a valid choice" in html and "Enter a valid date" in html


def test_chart_counts_the_filtered_events_per_day(staff_client, make_history):
    make_history(60, brands=1)
    response = staff_client.get("/brands/1001/?kind=tracked")
    table = response.context["chart"]["table"]
    assert len(table) == 30  # the last 30 whole days by default, today included: no sliver of a 31st
    assert sum(row["tracked"] for row in table) == ActionEvent.objects.filter(kind="tracked").count()
    assert sum(row["reversed"] for row in table) == 0
    assert "<svg" in response.content.decode()


def test_csv_export_streams_the_filtered_events(staff_client, make_history):
    make_history(60, brands=2)
    response = staff_client.get("/brands/1001/?kind=reversed&format=csv")
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="brand-1001-events.csv"' in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode("utf-8-sig").strip().splitlines()
    expected = ActionEvent.objects.filter(brand__campaign_id="1001", kind="reversed").count()
    assert len(lines) == expected + 1
    assert all(",reversed," in line and ",USD," in line and ",-10.00," in line for line in lines[1:])


def test_unknown_brand_is_404(staff_client):
    assert staff_client.get("/brands/nope/").status_code == 404


def test_timeline_shows_delay_badges_and_flags(staff_client, make_history):
    make_history(20, brands=1)
    html = staff_client.get("/brands/1001/").content.decode()
    assert 'class="badge alert"' in html and 'class="badge late"' in html and 'class="badge on-time"' in html
    assert "out of order" in html and "1 duplicate" in html
    assert 'impact <time datetime="2026-' in html  # the impact-side time under the received time


def test_an_older_page_keeps_the_filters(staff_client, make_history):
    make_history(400, brands=1)
    first = staff_client.get("/brands/1001/?kind=tracked")
    older = first.context["page"].older
    assert f"kind=tracked&amp;before={older}" in first.content.decode()
    second = staff_client.get(f"/brands/1001/?kind=tracked&before={older}")
    assert all(e.kind == "tracked" for e in second.context["page"].rows)
    assert NOW - timedelta(days=7) < second.context["page"].rows[-1].received_at
