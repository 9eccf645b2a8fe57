"""The simulated impact.com world alone: reproducible, realistic, and planned with the faults asked for."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from events import impact
from events.simulation.sender import Target
from events.simulation.verify import compare, expected_transitions
from events.simulation.world import SCENARIOS, Scenario, generate_world, plan_deliveries, truth

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def world_of(seed=1, scenario="default", **sizes):
    return generate_world(seed, SCENARIOS[scenario], now=NOW, **sizes)


def all_params(world):
    return [world.by_id()[c.action_id].params(c) for c in world.changes()]


def test_same_seed_and_time_give_the_same_world_and_plan():
    first, second = world_of(seed=7, scenario="chaos"), world_of(seed=7, scenario="chaos")
    assert all_params(first) == all_params(second)
    plan_a, plan_b = plan_deliveries(first, SCENARIOS["chaos"]), plan_deliveries(second, SCENARIOS["chaos"])
    assert [(s.change.key, s.copy, s.lost_ack) for s in plan_a.sends] == [
        (s.change.key, s.copy, s.lost_ack) for s in plan_b.sends
    ]


def test_another_seed_gives_another_world():
    assert all_params(world_of(seed=1)) != all_params(world_of(seed=2))


def test_the_same_seed_later_gets_new_action_ids():
    later = generate_world(1, SCENARIOS["default"], now=NOW + timedelta(hours=1))
    assert not {a.action_id for a in later.actions} & {a.action_id for a in world_of(seed=1).actions}


def test_brands_have_currencies_and_trackers_and_actions_spread_over_them():
    world = world_of(brands=6, actions=600)
    assert len(world.brands) == 6
    assert all(b.currency and b.trackers and b.name for b in world.brands)
    used = {a.brand.campaign_id for a in world.actions}
    assert len(used) == 6


def test_shares_of_modified_reversed_and_approved_are_roughly_as_asked():
    scenario = Scenario("shares", actions=3000, modified_share=0.3, reversed_share=0.2, approved_share=0.1)
    world = generate_world(3, scenario, now=NOW)
    n = len(world.actions)
    modified = sum(1 for a in world.actions if any(c.delta_amount and c.kind == "modified" for c in a.changes))
    reversed_ = sum(1 for a in world.actions if a.state == "reversed")
    approved = sum(1 for a in world.actions if any(c.status == "APPROVED" for c in a.changes))
    assert 0.26 < modified / n < 0.34
    assert 0.17 < reversed_ / n < 0.23
    # approvals are drawn among actions that are not reversed
    assert 0.06 < approved / n < 0.10


def test_changes_are_consistent_partial_returns_lower_money_and_reversal_is_last():
    world = world_of(scenario="chaos", actions=500)
    for action in world.actions:
        changes = action.changes
        assert changes[0].kind == "tracked" and changes[0].at == action.creation_date
        assert action.event_date <= action.creation_date
        assert all(a.at < b.at for a, b in itertools.pairwise(changes)), "times strictly increase"
        assert all(c.at <= world.now for c in changes)
        for before, change in itertools.pairwise(changes):
            if change.status == "PENDING":  # a partial return
                assert change.amount < before.amount and change.payout <= before.payout
                assert change.delta_amount == change.amount - before.amount != 0
                assert change.delta_payout == change.payout - before.payout
        if action.state == "reversed":
            last = changes[-1]
            assert last.kind == "reversed" and last.status == "REVERSED"
            assert last.amount == last.payout == Decimal("0.00")
            assert last.delta_payout == -changes[-2].payout


def test_postbacks_parse_like_impact_fills_the_recommended_template():
    world = world_of(actions=50)
    action = next(a for a in world.actions if len(a.changes) > 1)
    change = action.changes[1]
    params = action.params(change)
    assert set(params) == {impact.FIELDS[name][0] for name in impact.TEMPLATE_FIELDS} | {"UpdateDate"}
    postback = impact.normalise(list(params.items()))
    assert postback.action_id == action.action_id
    assert postback["amount"] == change.amount and postback["payout"] == change.payout
    assert postback.changed_at == change.at
    assert postback["creation_date"] == action.creation_date


def test_late_actions_change_well_before_they_are_sent():
    world = world_of(scenario="chaos", actions=400)
    late = [a for a in world.actions if a.late]
    assert 30 < len(late) < 90  # chaos: 15 %
    for action in late:
        assert all(world.now - c.at > timedelta(minutes=15) for c in action.changes)
    on_time = [c for a in world.actions if not a.late for c in a.changes]
    assert all(c.delivery_delay < timedelta(minutes=15) for c in on_time)


def test_chaos_plan_has_duplicates_out_of_order_arrivals_and_a_maintenance_burst():
    world = world_of(scenario="chaos", actions=300)
    plan = plan_deliveries(world, SCENARIOS["chaos"])
    sends = plan.sends
    assert sum(1 for s in sends if s.copy) > 0.2 * len(world.changes())
    assert sum(1 for s in sends if s.lost_ack) > 0.05 * len(sends)
    position: dict = {}
    for i, send in enumerate(sends):
        position.setdefault((send.change.action_id, send.change.index), i)
    overtaken = sum(1 for (action_id, index), i in position.items() if index and position[(action_id, index - 1)] > i)
    assert overtaken > 20
    before, held, after = plan.waves
    assert before and after
    assert len(held) == int(len(sends) * 0.3)
    assert len({s.send_at for s in held}) == 1, "the backlog goes out at once when maintenance ends"
    assert {(s.change.action_id, s.change.index) for s in sends} == {(c.action_id, c.index) for c in world.changes()}, (
        "every change is sent at least once"
    )


def test_default_plan_has_no_maintenance_and_keeps_most_changes_in_order():
    plan = plan_deliveries(world_of(), SCENARIOS["default"])
    assert len(plan.waves) == 1 and plan.pause == 0


def test_truth_follows_the_receivers_rules():
    world = world_of(scenario="chaos", actions=300)
    expected = truth(world)
    for action in world.actions:
        want = expected[action.action_id]
        if any(c.kind == "reversed" for c in action.changes):
            assert want.state == "reversed" and want.payout == 0
        elif len(action.changes) > 1:
            assert want.state == "modified"
            assert want.amount == action.changes[-1].amount  # latest UpdateDate wins
        else:
            assert want.state == "tracked"
        assert sum(want.kinds.values()) == len(action.changes)


def test_transitions_follow_arrival_order_with_reversal_terminal():
    assert expected_transitions(["tracked", "modified", "reversed"]) == [
        ("", "tracked"),
        ("tracked", "modified"),
        ("modified", "reversed"),
    ]
    assert expected_transitions(["reversed", "tracked", "modified"]) == [
        ("", "reversed"),
        ("reversed", "reversed"),
        ("reversed", "reversed"),
    ]
    assert expected_transitions(["modified", "tracked"]) == [("", "modified"), ("modified", "modified")]


def _as_receiver_would_store(world):
    """The receiver's state if it applied every change perfectly, in the world's order."""
    actual = {}
    for action in world.actions:
        want = truth(world)[action.action_id]
        kinds = [c.kind for c in action.changes]
        actual[action.action_id] = {
            "state": want.state,
            "amount": str(want.amount),
            "payout": str(want.payout),
            "events": [
                {
                    "seq": i + 1,
                    "kind": c.kind,
                    "from_state": t[0],
                    "to_state": t[1],
                    "status": c.status,
                    "amount": str(c.amount),
                    "payout": str(c.payout),
                    "changed_at": c.at.isoformat(),
                }
                for i, (c, t) in enumerate(zip(action.changes, expected_transitions(kinds), strict=True))
            ],
        }
    return actual


def test_compare_finds_nothing_when_the_receiver_matches_the_truth():
    world = world_of(actions=40)
    assert compare(truth(world), _as_receiver_would_store(world)).line() == "lost: 0, wrong: 0, duplicated: 0"


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        (lambda a: a.pop("missing"), "lost: 1, wrong: 0, duplicated: 0"),
        (lambda a: a["multi"]["events"].pop(), "lost: 1, wrong: 0, duplicated: 0"),
        (
            lambda a: a["multi"]["events"].append(dict(a["multi"]["events"][0], seq=99)),
            "lost: 0, wrong: 1, duplicated: 1",
        ),
        (lambda a: a["multi"].update(amount="1.00"), "lost: 0, wrong: 1, duplicated: 0"),
        (lambda a: a["multi"]["events"][1].update(to_state="tracked"), "lost: 0, wrong: 1, duplicated: 0"),
    ],
    ids=["missing action", "missing event", "repeated event", "wrong amount", "wrong transition"],
)
def test_compare_counts_what_differs(damage, line):
    world = world_of(scenario="chaos", actions=40)
    actual = _as_receiver_would_store(world)
    single = next(a for a in world.actions if len(a.changes) == 1)
    multi = next(a for a in world.actions if len(a.changes) > 2 and a.state == "reversed")
    actual["missing"], actual["multi"] = actual[single.action_id], actual.pop(multi.action_id)
    del actual[single.action_id]
    damage(actual)
    actual[multi.action_id] = actual.pop("multi")
    if "missing" in actual:
        actual[single.action_id] = actual.pop("missing")
    assert compare(truth(world), actual).line() == line


def test_requests_are_filled_like_impact_templates_with_the_credential_where_asked():
    from urllib.parse import parse_qsl, urlsplit

    world = world_of(actions=3)
    action = world.actions[0]
    params = action.params(action.changes[0])

    method, path, body, headers = Target("http://h:81/postbacks/impact/", "s3cret").request(params)
    assert (method, body, headers["X-Postback-Token"]) == ("GET", None, "s3cret")
    query = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
    assert query == params and "token" not in query

    method, path, body, headers = Target(
        "http://h/p/", "s3cret", method="post-json", header="X-Custom", token_in="query"
    ).request(params)
    assert (method, path, headers["Content-Type"]) == ("POST", "/p/?token=s3cret", "application/json")
    assert "X-Custom" not in headers
    assert (
        impact.parse("", body, "application/json").fingerprint() == impact.normalise(list(params.items())).fingerprint()
    )


def test_a_url_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="not an http"):
        Target("ftp://example.com/x", "s")


def test_money_is_in_each_currencys_minor_units_as_impact_reports_it():
    world = generate_world(5, Scenario("currencies", brands=12, actions=600, modified_share=0.5), now=NOW)
    currencies = {a.brand.currency for a in world.actions}
    assert {"JPY", "USD"} <= currencies
    for action in world.actions:
        places = 0 if action.brand.currency == "JPY" else 2
        for change in action.changes:
            for value in (change.amount, change.payout, change.delta_amount, change.delta_payout):
                assert value is None or -value.as_tuple().exponent <= places, (action.brand.currency, value)
