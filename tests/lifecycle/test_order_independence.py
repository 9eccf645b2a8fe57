"""Any arrival order, any number of repeats of the same postbacks and any split of them into the
processor's batches end in the same action and history as applying them one by one in order."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.test import override_settings
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from events import impact
from events.alerts import missing
from events.lifecycle import rules
from events.models import Action, ActionEvent, ApiChange, Brand, DelayAlert, Delivery
from events.processing import process_next_batch
from tests.conftest import postback_params
from tests.lifecycle.conftest import CREATED

money = st.decimals(min_value=0, max_value=1000, places=2)


@st.composite
def trackings(draw) -> tuple[dict[str, str], Decimal, Decimal, bool]:
    """A tracked postback: (params, amount, payout, whether the template has the Delta macros).

    Templates differ: with or without the Delta macros, with or without an update time on the
    tracking (a template may fill it for the tracking only). With the macros, the tracked postback
    carries its whole values as deltas (a change from nothing)."""
    amount, payout = draw(money), draw(money)
    with_deltas = draw(st.booleans())
    tracked = postback_params(
        Amount=str(amount),
        Payout=str(payout),
        DeltaAmount=str(amount) if with_deltas else None,
        DeltaPayout=str(payout) if with_deltas else None,
    )
    if draw(st.booleans()):
        tracked["UpdateDate"] = CREATED.isoformat()
    return tracked, amount, payout, with_deltas


@st.composite
def reversals(draw, amount: Decimal, payout: Decimal, with_deltas: bool) -> dict[str, str]:
    """A reversal of an action whose values are `amount` and `payout`, without an update time."""
    return postback_params(
        Status="REVERSED",
        # impact.com may leave a macro unfilled in a reversal.
        Amount=draw(st.sampled_from([str(amount), "{Amount}"])),
        Payout=draw(st.sampled_from(["0", "{Payout}"])),
        DeltaPayout=str(-payout) if with_deltas else None,
    )


@st.composite
def lifecycles(draw) -> list[dict[str, str]]:
    """One tracked postback, some modifications with deltas and an update time, maybe one reversal.

    Money starts at zero sometimes, so a modification's deltas can equal its whole values too."""
    tracked, amount, payout, with_deltas = draw(trackings())
    postbacks = [tracked]
    # Small minute values so that two changes sometimes share an update time.
    times = draw(st.lists(st.integers(min_value=1, max_value=6), max_size=4))
    for minutes in sorted(times):
        new_amount = draw(st.one_of(st.just(amount), money))
        new_payout = draw(st.one_of(st.just(payout), money))
        postbacks.append(
            postback_params(
                Status=draw(st.sampled_from(["PENDING", "APPROVED"])),
                Amount=str(new_amount),
                Payout=str(new_payout),
                DeltaAmount=str(new_amount - amount) if with_deltas else None,
                DeltaPayout=str(new_payout - payout) if with_deltas else None,
                UpdateDate=(CREATED + timedelta(minutes=minutes)).isoformat(),
            )
        )
        amount, payout = new_amount, new_payout
    if draw(st.booleans()):
        minutes = draw(st.integers(min_value=1, max_value=8))  # usually after the modifications, not always
        reversal = draw(reversals(amount, payout, with_deltas))
        postbacks.append(reversal | {"UpdateDate": (CREATED + timedelta(minutes=minutes)).isoformat()})
    return postbacks


@st.composite
def arrivals(draw, postbacks: list) -> list[int]:
    """A permutation of the postbacks with some of them repeated anywhere (impact.com's retries)."""
    order = draw(st.permutations(range(len(postbacks))))
    for repeat in draw(st.lists(st.integers(0, len(postbacks) - 1), max_size=4)):
        order.insert(draw(st.integers(0, len(order))), repeat)
    return order


def outcome() -> tuple:
    """The action's state and values, and each entry: its identity, its values, and what postbacks
    said otherwise than impact.com's API (for entries recorded from it)."""
    action = Action.objects.get(action_id="A1")
    rows = ActionEvent.objects.filter(action=action).values_list(
        "fingerprint", "kind", "status", "amount", "payout", "anomaly"
    )
    entries = sorted(
        (*row[:5], [part for part in row[5].split("; ") if part.startswith(rules.DIFFERS)]) for row in rows
    )
    seqs = sorted(ActionEvent.objects.filter(action=action).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    return (action.state, action.status, action.amount, action.payout, entries)


def joins() -> tuple:
    """Which postback joined which entry recorded from the API, and the entries still awaiting one."""
    joined = sorted(ActionEvent.objects.filter(postback_fingerprint__isnull=False).values_list("fingerprint", "kind"))
    awaiting = sorted(ActionEvent.objects.filter(source="api").values_list("fingerprint", "kind"))
    return joined, awaiting


def reset() -> None:
    DelayAlert.objects.all().delete()  # late postbacks open alerts, which hold on to the brand
    ApiChange.objects.all().delete()
    ActionEvent.objects.all().delete()
    Delivery.objects.all().delete()
    Action.objects.all().delete()
    Brand.objects.all().delete()


def apply_in_batches(sizes: list[int]) -> None:
    """Apply what is stored, oldest first, in batches of these sizes (then of one, to the end)."""
    for size in sizes:
        process_next_batch(size)
    while process_next_batch(1) is not None:
        pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_arrival_order_repeats_and_batches_end_in_the_same_action_and_history(store, caplog, data):
    postbacks = data.draw(lifecycles(), label="postbacks")

    reset()
    for params in postbacks:  # the order impact.com made the changes in, each sent once, applied one by one
        store(params)
        apply_in_batches([])
    expected = outcome()
    assert set(Delivery.objects.values_list("outcome", flat=True)) <= {"applied", "duplicate"}  # two may be equal

    for attempt in range(2):
        order = data.draw(arrivals(postbacks), label=f"arrival order {attempt + 1}")
        sizes = data.draw(st.lists(st.integers(1, len(order)), max_size=len(order)), label=f"batches {attempt + 1}")
        minutes = data.draw(st.sampled_from([60, 10**7]), label="delay alert after (minutes)")
        reset()
        with override_settings(DELAY_ALERT_AFTER_MINUTES=minutes):  # late postbacks open alerts, or none
            for i in order:
                store(postbacks[i])
            apply_in_batches(sizes)
        outcomes = list(Delivery.objects.order_by("id").values_list("outcome", flat=True))
        note(f"outcomes {outcomes}")
        assert outcome() == expected
        assert outcomes.count("applied") == len(expected[-1])
        assert set(outcomes) <= {"applied", "duplicate"}
    # Each batch was applied as one: none fell back to one delivery at a time.
    assert not [r for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("events.processing")]


# Another word impact.com's API may use for a status, in the same group.
OTHER_WORD = {"PENDING": "DEFAULT", "APPROVED": "LOCKED"}


def api_record(params: dict[str, str], differs: bool) -> dict[str, str]:
    """The API's record of the change a postback reports: the same values, or (`differs`) another
    status word and a cent more."""
    if not differs:
        return params
    return {
        **params,
        "Status": OTHER_WORD[params["Status"]],
        "Amount": str(Decimal(params["Amount"]) + Decimal("0.01")),
    }


def backfill(
    postbacks: list[dict],
    chosen: list[int],
    differing: set[int] = frozenset(),
    times: dict[int, datetime] | None = None,
) -> set[tuple]:
    """impact.com's API reported these changes and no postback came: `--backfill` recorded them from
    the API records (one change per action, kind and time, as impact.com lists them), the API's values
    other than the postback's for the modifications in `differing`. A postback without a time has
    its change's in `times`. Returns the (kind, time) of the changes whose values differ."""
    keys, differ = set(), set()
    for i in sorted(chosen):
        params = postbacks[i]
        postback = impact.normalise(list(params.items()))
        kind = (
            "tracked" if i == 0 else "reversed" if impact.status_group(params["Status"]) == "reversed" else "modified"
        )
        key = (kind, (times or {}).get(i) or postback.changed_at or postback["creation_date"])
        if key not in keys:
            keys.add(key)
            record = api_record(params, kind == "modified" and i in differing)
            if record is not params:
                differ.add(key)
            ApiChange.objects.create(
                action_id="A1", kind=kind, state=record["Status"], changed_at=key[1], payload=record
            )
    missing.backfill(now=CREATED + timedelta(days=2))
    return differ


def assert_notes_where_values_differ(differ: set[tuple]) -> None:
    """Each entry whose API record differs from a postback of its change says so."""
    noted = ActionEvent.objects.filter(anomaly__contains=rules.DIFFERS).values_list("kind", "changed_at")
    assert differ <= set(noted)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_postbacks_joining_backfilled_changes_end_the_same_in_any_order_and_batches(store, data):
    """Some of the changes were recorded from impact.com's API first; then every postback arrives,
    in any order, repeated, in any batches: each joins its change's entry (one change, one entry)
    and the action and history end as applying them one by one in order does."""
    postbacks = data.draw(lifecycles(), label="postbacks")
    chosen = data.draw(st.sets(st.integers(0, len(postbacks) - 1), min_size=1), label="backfilled")
    # The API's record may say another status word or amount than the postback: the same change still.
    differing = data.draw(st.sets(st.sampled_from(sorted(chosen))), label="API values differ")

    reset()
    differ = backfill(postbacks, chosen, differing)
    for params in postbacks:
        store(params)
        apply_in_batches([])
    expected = outcome()
    assert not ActionEvent.objects.filter(source="api").exists()  # every backfilled entry was joined
    assert_notes_where_values_differ(differ)

    order = data.draw(arrivals(postbacks), label="arrival order")
    sizes = data.draw(st.lists(st.integers(1, len(order)), max_size=len(order)), label="batches")
    reset()
    backfill(postbacks, chosen, differing)
    for i in order:
        store(postbacks[i])
    apply_in_batches(sizes)
    note(f"outcomes {list(Delivery.objects.order_by('id').values_list('outcome', flat=True))}")
    assert outcome() == expected
    assert not ActionEvent.objects.filter(source="api").exists()


def test_an_untimed_tracking_and_a_backfilled_identical_modification_end_the_same_in_either_order(store):
    """A tracking without update time and a modification changing nothing (the same values, one
    minute later), the modification backfilled from the API first: whichever postback comes first,
    the tracking is recorded as the tracking and the modification's postback joins its entry."""
    tracked = postback_params(Amount="0.00", Payout="0.00")
    modified = postback_params(Amount="0.00", Payout="0.00", UpdateDate=(CREATED + timedelta(minutes=1)).isoformat())
    postbacks = [tracked, modified]

    reset()
    backfill(postbacks, [1])
    for params in postbacks:
        store(params)
        apply_in_batches([])
    expected = outcome()
    assert not ActionEvent.objects.filter(source="api").exists()
    assert sorted(entry[1] for entry in expected[-1]) == ["modified", "tracked"]

    reset()
    backfill(postbacks, [1])
    for params in reversed(postbacks):
        store(params)
    apply_in_batches([])
    assert outcome() == expected
    assert not ActionEvent.objects.filter(source="api").exists()


@st.composite
def untimed_lifecycles(draw) -> tuple[list[dict[str, str]], dict[int, datetime]]:
    """A template without UpdateDate: one tracked postback, some modifications, maybe a reversal, and
    the time impact.com made each change (its API record's). Postbacks without a time are told apart
    by their values only, so each modification's (status, amount, payout) is its own: changes with the
    same values would be the same change, and the same bytes a retry."""
    tracked, amount, payout, with_deltas = draw(trackings())
    postbacks, times = [tracked], {}
    seen = {("PENDING", amount, payout)}
    for minutes in range(1, draw(st.integers(0, 4)) + 1):
        # Pending without deltas (or with zero ones) could be a tracking by its form.
        status = draw(st.sampled_from(["PENDING", "APPROVED"]))
        new_amount = draw(st.one_of(st.just(amount), money))
        new_payout = draw(st.one_of(st.just(payout), money))
        if (status, new_amount, new_payout) in seen:
            continue
        seen.add((status, new_amount, new_payout))
        postbacks.append(
            postback_params(
                Status=status,
                Amount=str(new_amount),
                Payout=str(new_payout),
                DeltaAmount=str(new_amount - amount) if with_deltas else None,
                DeltaPayout=str(new_payout - payout) if with_deltas else None,
            )
        )
        times[len(postbacks) - 1] = CREATED + timedelta(minutes=minutes)
        amount, payout = new_amount, new_payout
    if draw(st.booleans()):
        postbacks.append(draw(reversals(amount, payout, with_deltas)))
        times[len(postbacks) - 1] = CREATED + timedelta(minutes=10)
    return postbacks, times


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_postbacks_without_a_time_joining_backfilled_changes_end_the_same_in_any_order_and_batches(store, data):
    """A template without UpdateDate. Every change was recorded from impact.com's API (the tracking too,
    or its postback came before the backfill); then the postbacks arrive in any order, repeated, in any
    batches: each joins its change's entry by its values (a pending one without deltas too, which the
    tracking in the history tells apart) and the action and history end as in order.

    Without the tracking in the history when the changes were backfilled (its postback comes after,
    with the others), a pending postback without deltas could be the tracking: whether it joins a
    modification must not depend on whether the tracking's postback came first."""
    postbacks, times = data.draw(untimed_lifecycles(), label="postbacks")
    tracking = data.draw(st.sampled_from(["backfilled", "before the backfill", "after the backfill"]), label="tracking")
    chosen = set(range(len(postbacks))) - ({0} if tracking == "after the backfill" else set())

    def run(order: list[int], sizes: list[int]) -> None:
        reset()
        if tracking == "before the backfill":
            store(postbacks[0])
            apply_in_batches([])
        backfill(postbacks, chosen, times=times)
        for i in order:
            store(postbacks[i])
        apply_in_batches(sizes)

    run(list(range(len(postbacks))), [])  # one by one, in the order impact.com made the changes
    expected = joins(), outcome() if tracking != "after the backfill" else None
    if tracking != "after the backfill":
        assert not ActionEvent.objects.filter(source="api").exists()  # every backfilled entry was joined

    order = data.draw(arrivals(postbacks), label="arrival order")
    run(order, data.draw(st.lists(st.integers(1, len(order)), max_size=len(order)), label="batches"))
    note(f"outcomes {list(Delivery.objects.order_by('id').values_list('outcome', flat=True))}")
    assert joins() == expected[0]
    if tracking != "after the backfill":
        assert outcome() == expected[1]
