"""Reading the pages: one label per field, every list cell named for narrow screens, and secondary text
colours at 4.5:1 or more on the backgrounds they sit on."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from tests_dashboard_common import NOW, iso

from dashboard.labels import field_label

CSS = (Path(__file__).resolve().parents[2] / "static" / "app.css").read_text()


def test_the_action_page_and_the_filters_name_fields_alike(staff_client, send):
    send(ActionId="A1", SubId1="blog", CreationDate=iso(NOW - timedelta(minutes=1)))
    action_page = staff_client.get("/actions/A1/").content.decode()
    timeline = staff_client.get("/brands/1001/").content.decode()
    for name in ("sub_id1", "action_tracker_id"):
        assert f">{field_label(name)}<" in action_page and f">{field_label(name)}</label>" in timeline
    assert "Sub id1" not in action_page and "Action tracker id" not in action_page


def test_every_cell_of_the_lists_says_what_it_is_for_narrow_screens(staff_client, send):
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(minutes=1)))
    for url in ("/brands/", "/brands/1001/", "/deliveries/"):
        html = staff_client.get(url).content.decode()
        table = html[html.index('<table class="data">') :]
        body = table[table.index("<tbody>") : table.index("</tbody>")]
        cells = re.findall(r"<t[dh](?: [^>]*)?>", body)
        assert cells and all("data-label=" in cell for cell in cells), (url, cells)


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def variable(name: str) -> str:
    return re.search(rf"--{name}:(#[0-9a-f]{{6}})", CSS).group(1)


@pytest.mark.parametrize("text", ["muted", "faint", "ok", "warn", "bad", "accent"])
@pytest.mark.parametrize("background", ["#ffffff", "bg", "#fafbfc", "#eef0f3", "ok-soft", "warn-soft", "bad-soft"])
def test_secondary_and_status_text_reads_at_4_5_to_1_or_more(text, background):
    back = background if background.startswith("#") else variable(background)
    assert contrast(variable(text), back) >= 4.5, (text, background)
