"""Any arrival order, any number of repeats of the same postbacks and any split of them into the
processor's batches end in the same action and history as applying them one by one in order."""

from __future__ import annotations

from datetime import timedelta

from django.test import override_settings
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from events import impact
from events.alerts import missing
from events.models import Action, ActionEvent, ApiChange, Brand, DelayAlert, Delivery
from events.processing import process_next_batch
from tests.conftest import postback_params
from tests.lifecycle.conftest import CREATED

money = st.decimals(min_value=0, max_value=1000, places=2)


@st.composite
def lifecycles(draw) -> list[dict[str, str]]:
    """One tracked postback, some modifications with deltas and an update time, maybe one reversal.

    Money starts at zero sometimes, so a modification's deltas can equal its whole values too."""
    amount, payout = draw(money), draw(money)
    # Templates differ: with or without the Delta macros, with or without an update time on tracked.
    # With them, the tracked postback carries its whole values as deltas (a change from nothing).
    with_deltas = draw(st.booleans())
    tracked = postback_params(
        Amount=str(amount),
        Payout=str(payout),
        DeltaAmount=str(amount) if with_deltas else None,
        DeltaPayout=str(payout) if with_deltas else None,
    )
    if draw(st.booleans()):
        tracked["UpdateDate"] = CREATED.isoformat()
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
        postbacks.append(
            postback_params(
                Status="REVERSED",
                # impact.com may leave a macro unfilled in a reversal.
                Amount=draw(st.sampled_from([str(amount), "{Amount}"])),
                Payout=draw(st.sampled_from(["0", "{Payout}"])),
                DeltaPayout=str(-payout) if with_deltas else None,
                UpdateDate=(CREATED + timedelta(minutes=minutes)).isoformat(),
            )
        )
    return postbacks


@st.composite
def arrivals(draw, postbacks: list) -> list[int]:
    """A permutation of the postbacks with some of them repeated anywhere (impact.com's retries)."""
    order = draw(st.permutations(range(len(postbacks))))
    for repeat in draw(st.lists(st.integers(0, len(postbacks) - 1), max_size=4)):
        order.insert(draw(st.integers(0, len(order))), repeat)
    return order


def outcome() -> tuple:
    action = Action.objects.get(action_id="A1")
    entries = sorted(ActionEvent.objects.filter(action=action).values_list("fingerprint", "kind"))
    seqs = sorted(ActionEvent.objects.filter(action=action).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    return (action.state, action.amount, action.payout, entries)


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
        assert outcomes.count("applied") == len(expected[3])
        assert set(outcomes) <= {"applied", "duplicate"}
    # Each batch was applied as one: none fell back to one delivery at a time.
    assert not [r for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("events.processing")]


def backfill(postbacks: list[dict], chosen: list[int]) -> None:
    """impact.com's API reported these changes and no postback came: `--backfill` recorded them from
    the API records (one change per action, kind and time, as impact.com lists them)."""
    keys = set()
    for i in sorted(chosen):
        params = postbacks[i]
        postback = impact.normalise(list(params.items()))
        kind = (
            "tracked" if i == 0 else "reversed" if impact.status_group(params["Status"]) == "reversed" else "modified"
        )
        key = (kind, postback.changed_at or postback["creation_date"])
        if key not in keys:
            keys.add(key)
            ApiChange.objects.create(
                action_id="A1", kind=kind, state=params["Status"], changed_at=key[1], payload=params
            )
    missing.backfill(now=CREATED + timedelta(days=2))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_postbacks_joining_backfilled_changes_end_the_same_in_any_order_and_batches(store, data):
    """Some of the changes were recorded from impact.com's API first; then every postback arrives,
    in any order, repeated, in any batches: each joins its change's entry (one change, one entry)
    and the action and history end as applying them one by one in order does."""
    postbacks = data.draw(lifecycles(), label="postbacks")
    chosen = data.draw(st.sets(st.integers(0, len(postbacks) - 1), min_size=1), label="backfilled")

    reset()
    backfill(postbacks, chosen)
    for params in postbacks:
        store(params)
        apply_in_batches([])
    expected = outcome()
    assert not ActionEvent.objects.filter(source="api").exists()  # every backfilled entry was joined

    order = data.draw(arrivals(postbacks), label="arrival order")
    sizes = data.draw(st.lists(st.integers(1, len(order)), max_size=len(order)), label="batches")
    reset()
    backfill(postbacks, chosen)
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
    assert sorted(kind for _, kind in expected[3]) == ["modified", "tracked"]

    reset()
    backfill(postbacks, [1])
    for params in reversed(postbacks):
        store(params)
    apply_in_batches([])
    assert outcome() == expected
    assert not ActionEvent.objects.filter(source="api").exists()
