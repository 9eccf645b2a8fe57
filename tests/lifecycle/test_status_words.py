"""Status words through the real endpoint: reversal words lose the money, the others only change status."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from events.models import Action, ActionEvent
from tests.lifecycle.conftest import CREATED, update


def kinds() -> list[tuple[str, str, str]]:
    return list(ActionEvent.objects.order_by("seq").values_list("kind", "to_state", "status"))


@pytest.mark.parametrize("word", ["REVERSED", "REJECTED", "DECLINED", "rejected", "Declined"])
def test_a_reversal_word_reverses_the_action_and_loses_its_payout(post, staff_client, time_machine, word):
    post()
    post(60, Status=word, Payout="0", DeltaPayout="-10.00", UpdateDate=update(55))
    assert kinds() == [("tracked", "tracked", "PENDING"), ("reversed", "reversed", word.upper())]
    assert Action.objects.get(action_id="A1").state == "reversed"

    time_machine.move_to(CREATED + timedelta(minutes=61), tick=False)
    (usd,) = staff_client.get("/?period=30d").context["money_cards"]
    assert (usd["gained"], usd["lost"], usd["net"]) == (Decimal(10), Decimal(-10), Decimal(0))


def test_a_rejection_arriving_first_creates_the_action_as_reversed(post):
    post(5, Status="REJECTED", Payout="0", UpdateDate=update(4))
    assert kinds() == [("reversed", "reversed", "REJECTED")]


@pytest.mark.parametrize("word", ["APPROVED", "LOCKED", "CLEARED", "PAID"])
def test_an_approval_word_is_a_modification_that_keeps_the_money(post, word):
    post()
    post(90, Status=word, UpdateDate=update(85))
    assert kinds() == [("tracked", "tracked", "PENDING"), ("modified", "modified", word)]
    action = Action.objects.get(action_id="A1")
    assert (action.state, action.status, action.payout) == ("modified", word, Decimal(10))


def test_default_is_the_pending_word_of_the_older_api_and_tracks(post):
    post(Status="DEFAULT")
    assert kinds() == [("tracked", "tracked", "DEFAULT")]


def test_the_timeline_and_the_action_page_show_the_status_word_as_sent(post, staff_client):
    post()
    post(60, Status="REJECTED", Payout="0", UpdateDate=update(55))
    timeline = staff_client.get("/brands/1001/").content.decode()
    assert 'title="Status as impact.com sent it">REJECTED</span>' in timeline
    action_page = staff_client.get("/actions/A1/").content.decode()
    assert "status <span" in action_page and ">REJECTED</span>" in action_page
