"""Periods are whole days named by their first and last day, both included, in ISO form; so are the
date inputs."""

from __future__ import annotations

from datetime import timedelta

from tests_dashboard_common import NOW, iso


def test_the_7_day_overview_charts_seven_whole_days_without_a_sliver(staff_client, send, time_machine):
    time_machine.move_to(NOW + timedelta(minutes=4), tick=False)
    send(ActionId="A1", CreationDate=iso(NOW))
    response = staff_client.get("/?period=7d")
    labels = [row["label"] for row in response.context["chart"]["table"]]
    assert labels == ["Nov 15", "Nov 16", "Nov 17", "Nov 18", "Nov 19", "Nov 20", "Nov 21"]
    html = response.content.decode()
    assert "Last 7 days · 2026-11-15 – 2026-11-21" in html


def test_a_custom_period_reads_with_its_last_day_not_the_midnight_after_it(staff_client, send):
    send(ActionId="A1", CreationDate=iso(NOW))
    html = staff_client.get("/?period=custom&start=2026-11-10&end=2026-11-16").content.decode()
    assert "2026-11-10 – 2026-11-16" in html
    assert "2026-11-17" not in html
    assert 'name="start" value="2026-11-10"' in html and 'name="end" value="2026-11-16"' in html
    assert 'type="date"' not in html and 'placeholder="YYYY-MM-DD"' in html


def test_the_brand_chart_is_the_last_30_whole_days_named_inclusively(staff_client, send):
    send(ActionId="A1", CreationDate=iso(NOW))
    html = staff_client.get("/brands/1001/").content.decode()
    assert "2026-10-23 – 2026-11-21" in html
    html = staff_client.get("/brands/1001/?date_from=2026-11-10&date_to=2026-11-16").content.decode()
    assert "2026-11-10 – 2026-11-16" in html and "2026-11-17" not in html
    assert 'name="date_from" value="2026-11-10"' in html and 'pattern="\\d{4}-\\d{2}-\\d{2}"' in html
    assert 'type="date"' not in html
