"""Every CSV gives times as the pages do (UTC, to the second) and durations in the pages' one form."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from tests_dashboard_common import NOW, iso


def rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


def test_the_timeline_csv_has_times_to_the_second_and_the_delay_as_the_page_shows_it(staff_client, send, time_machine):
    time_machine.move_to(NOW + timedelta(microseconds=654321), tick=False)
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(hours=2, minutes=57)))
    (row,) = rows(staff_client.get("/brands/1001/?format=csv"))
    assert (row["received_at"], row["changed_at"]) == ("2026-11-21T12:00:00+00:00", "2026-11-21T09:03:00+00:00")
    assert row["delay"] == "2 h 57 min"
    page = staff_client.get("/brands/1001/").content.decode()
    assert "2026-11-21 12:00:00</time>" in page and "2 h 57 min" in page


def test_the_deliveries_csv_has_its_times_to_the_second(staff_client, send, time_machine):
    time_machine.move_to(NOW + timedelta(microseconds=654321), tick=False)
    send(ActionId="A1")
    (row,) = rows(staff_client.get("/deliveries/?format=csv"))
    assert row["received_at"] == "2026-11-21T12:00:00+00:00"
