"""Finding things: the timeline's Sub ID and action/order ID filters forgive case and find a part of an
order id; an unknown action or brand answers a page with the navigation, not Django's bare 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests_dashboard_common import NOW, iso


@pytest.fixture
def three_actions(send, time_machine):
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    created = iso(NOW - timedelta(hours=1, minutes=1))
    send(ActionId="19816.5280.969444420", SubId1="blog", Oid="ORD-9246735", CreationDate=created)
    send(ActionId="A-2", SubId1="Newsletter", Oid="ORD-1111111", CreationDate=created)
    send(ActionId="A-3", SubId1="blogroll", Oid="ord-9246735-b", CreationDate=created)
    time_machine.move_to(NOW, tick=False)


def found(client, **filters) -> list[str]:
    response = client.get("/brands/1001/", filters)
    assert response.status_code == 200
    return sorted(e.action.action_id for e in response.context["page"].rows)


def test_the_sub_id_filter_matches_whatever_the_case_but_the_whole_value(staff_client, three_actions):
    assert found(staff_client, sub_id="Blog") == ["19816.5280.969444420"]
    assert found(staff_client, sub_id="NEWSLETTER") == ["A-2"]
    assert found(staff_client, sub_id="blo") == []


def test_an_order_id_is_found_by_a_part_whatever_the_case(staff_client, three_actions):
    assert found(staff_client, q="9246735") == ["19816.5280.969444420", "A-3"]
    assert found(staff_client, q="ord-1111111") == ["A-2"]


def test_an_action_id_is_found_whatever_the_case(staff_client, three_actions):
    assert found(staff_client, q="a-2") == ["A-2"]
    assert found(staff_client, q="19816.5280.969444420") == ["19816.5280.969444420"]


def test_the_chart_follows_the_case_insensitive_sub_id(staff_client, three_actions):
    response = staff_client.get("/brands/1001/", {"sub_id": "BLOG"})
    assert sum(row["tracked"] for row in response.context["chart"]["table"]) == 1


def test_an_unknown_action_answers_a_styled_page_with_the_navigation(staff_client, three_actions):
    response = staff_client.get("/actions/NOPE-42/")
    assert response.status_code == 404
    html = response.content.decode()
    assert '<nav aria-label="Main">' in html and "app.css" in html
    assert "No action with ActionId <code>NOPE-42</code> has arrived yet." in html
    assert '/deliveries/?action_id=NOPE-42"' in html


def test_an_unknown_brand_and_an_unknown_page_answer_the_same_styled_page(staff_client):
    brand = staff_client.get("/brands/nope/")
    assert brand.status_code == 404 and "No brand with campaign ID <code>nope</code>" in brand.content.decode()
    page = staff_client.get("/no/such/page/")
    assert page.status_code == 404 and '<nav aria-label="Main">' in page.content.decode()
    assert "There is no page at" in page.content.decode()
