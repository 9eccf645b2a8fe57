"""A simulated impact.com: a reproducible world of actions and a delivery plan with faults.

Pure Python (no Django), so it is easy to test alone. `generate_world()` draws
brands and actions from a seed; each action has a list of changes (tracked,
then maybe partial returns, an approval or a reversal) at impact-side times.
`plan_deliveries()` turns the changes into postbacks in the order impact.com
would send them, with the faults its own behaviour produces: retries of the
same postback (duplicates), out-of-order arrival, late delivery and a
maintenance pause followed by a burst. `Truth` says what the receiver must end
up with, following the rules in events/lifecycle/rules.py:

- the kind of a change: the tracked postback carries its whole amount and payout as
  deltas (impact.com's update that creates an action does), Status=REVERSED =
  reversed, anything else = modified;
- a reversal is terminal (the world never changes an action after it);
- money: the change with the latest UpdateDate wins, whatever the arrival order.

Every postback carries an UpdateDate (the impact-side time of the change; for
the tracked postback it equals CreationDate), so the receiver can order them.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from events.common.money import round_money, smallest_unit
from events.impact import FIELDS, TEMPLATE_FIELDS, Lifecycle

MAX_OVERTAKE = timedelta(hours=1)
# An on-time action's postback overtaken by the next one stays under this delay: only the scenario's
# late actions reach the receiver over an hour (a delay alert) after their change.
MAX_OVERTAKEN_DELAY = timedelta(minutes=45)
OVERTAKE_GAP = timedelta(seconds=1)
TRACKED, MODIFIED, REVERSED = Lifecycle.TRACKED, Lifecycle.MODIFIED, Lifecycle.REVERSED

BRAND_NAMES = (
    "Acme Shoes",
    "Northwind Outdoor",
    "Blue Fjord Travel",
    "Lumen Skincare",
    "Kettle & Crumb",
    "Voltline Electronics",
    "Maple Street Books",
    "Pixel Pet Supply",
    "Harbor Home Goods",
    "Sierra Sports",
    "Oak & Ivy Furniture",
    "Cobalt Mobile",
)
# (currency, UTC offset in hours of the brand's reports, typical order value)
CURRENCIES = (
    ("USD", -8, 80),
    ("USD", -5, 120),
    ("EUR", 1, 70),
    ("GBP", 0, 60),
    ("CAD", -5, 90),
    ("AUD", 10, 110),
    ("JPY", 9, 9000),
)
TRACKER_NAMES = ("Online Sale", "App Purchase", "Subscription", "Booking", "In-store Sale")
RETURN_DETAILS = ("Partial return", "Item returned", "Price adjustment")
REVERSAL_DETAILS = ("Order cancelled", "Fraud", "Returned in full", "Duplicate order")


def money(value: float | Decimal, currency: str = "USD") -> Decimal:
    """An amount as impact.com reports it: in the currency's minor units (whole yen, cents)."""
    return round_money(Decimal(str(value)), currency, rounding=ROUND_HALF_UP)


def iso(moment: datetime, offset_hours: int) -> str:
    """ISO 8601 with the brand's offset, as impact.com writes dates (2026-11-20T14:03:11-08:00)."""
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Brand:
    campaign_id: str
    name: str
    currency: str
    utc_offset: int
    trackers: tuple[tuple[str, str], ...]  # (ActionTrackerId, ActionTrackerName)
    commission: Decimal  # payout / amount
    typical_amount: float


@dataclass(frozen=True)
class Change:
    """One change of an action at impact.com, as its postback reports it."""

    action_id: str
    index: int  # 0 for the tracked change, then 1, 2, ...
    kind: str  # tracked / modified / reversed (what the receiver must derive)
    status: str
    status_detail: str
    amount: Decimal
    payout: Decimal
    delta_amount: Decimal | None
    delta_payout: Decimal | None
    at: datetime  # impact-side time of the change (UpdateDate)
    delivery_delay: timedelta  # how long after the change impact.com sends it

    @property
    def key(self) -> tuple[str, Decimal, Decimal, datetime]:
        """What identifies the change in the receiver's history."""
        return (self.status, self.amount, self.payout, self.at)

    @property
    def send_at(self) -> datetime:
        return self.at + self.delivery_delay


@dataclass
class Action:
    action_id: str
    brand: Brand
    tracker: tuple[str, str]
    event_date: datetime
    creation_date: datetime
    locking_date: datetime
    oid: str
    sub_id1: str
    changes: list[Change] = field(default_factory=list)
    late: bool = False

    @property
    def final(self) -> Change:
        # Reversal is terminal and always last; otherwise the latest change wins.
        return max(self.changes, key=lambda c: c.at)

    @property
    def state(self) -> str:
        kinds = {c.kind for c in self.changes}
        if REVERSED in kinds:
            return REVERSED
        return MODIFIED if MODIFIED in kinds else TRACKED

    def kinds(self) -> Counter:
        return Counter(c.kind for c in self.changes)

    def params(self, change: Change) -> dict[str, str]:
        """The postback as impact.com fills the recommended template, plus UpdateDate."""
        brand = self.brand
        values = {
            "action_id": self.action_id,
            "campaign_id": brand.campaign_id,
            "campaign_name": brand.name,
            "action_tracker_id": self.tracker[0],
            "action_tracker_name": self.tracker[1],
            "status": change.status,
            "status_detail": change.status_detail,
            "amount": format(change.amount, "f"),
            "delta_amount": "" if change.delta_amount is None else format(change.delta_amount, "f"),
            "payout": format(change.payout, "f"),
            "delta_payout": "" if change.delta_payout is None else format(change.delta_payout, "f"),
            "currency": brand.currency,
            "event_date": iso(self.event_date, brand.utc_offset),
            "creation_date": iso(self.creation_date, brand.utc_offset),
            "locking_date": iso(self.locking_date, brand.utc_offset),
            "oid": self.oid,
            "sub_id1": self.sub_id1,
            "sub_id2": "",
            "sub_id3": "",
            "promo_code": "",
        }
        params = {FIELDS[name][0]: values[name] for name in TEMPLATE_FIELDS}
        params["UpdateDate"] = iso(change.at, brand.utc_offset)
        return params


@dataclass(frozen=True)
class Scenario:
    """A preset: the world's shape and the rate of each delivery fault."""

    name: str
    brands: int = 4
    actions: int = 200
    history: timedelta = timedelta(hours=2)
    modified_share: float = 0.25  # actions with one or two partial returns
    reversed_share: float = 0.1
    approved_share: float = 0.1
    duplicate_rate: float = 0.02  # postbacks impact.com sends again (lost acknowledgement)
    out_of_order_rate: float = 0.05  # actions whose changes arrive in the wrong order
    late_rate: float = 0.02  # actions whose postbacks arrive 20 min to 6 h after the change
    # The deliberately late brand: this many of its recent actions reach the receiver over an hour
    # (75 min to 6 h) after their changes, so it has a delay alert; no other brand is that late
    # unless `late_rate` says so.
    late_brand_actions: int = 0
    lost_ack_rate: float = 0.0  # responses the sender "does not see", so it retries
    maintenance_share: float = 0.0  # share of postbacks held by a maintenance pause, then sent in a burst
    pause: float = 0.0  # seconds the maintenance pause lasts in real time
    backdate: bool = False  # spread receive times over the history (demo: a month of dashboard)


SCENARIOS = {
    "default": Scenario("default"),
    "demo": Scenario(
        "demo",
        brands=5,
        actions=300,
        history=timedelta(days=30),
        late_rate=0.0,
        late_brand_actions=3,
        duplicate_rate=0.03,
        backdate=True,
    ),
    "burst": Scenario("burst", actions=500, maintenance_share=0.6, pause=5.0, duplicate_rate=0.05),
    "chaos": Scenario(
        "chaos",
        actions=300,
        modified_share=0.4,
        reversed_share=0.25,
        approved_share=0.15,
        duplicate_rate=0.3,
        out_of_order_rate=0.4,
        late_rate=0.15,
        lost_ack_rate=0.1,
        maintenance_share=0.3,
        pause=1.0,
    ),
}


@dataclass
class World:
    seed: int
    now: datetime
    brands: list[Brand]
    actions: list[Action]

    def changes(self) -> list[Change]:
        return [change for action in self.actions for change in action.changes]

    def by_id(self) -> dict[str, Action]:
        return {action.action_id: action for action in self.actions}


def _brands(rng: random.Random, count: int) -> list[Brand]:
    names = rng.sample(BRAND_NAMES, k=min(count, len(BRAND_NAMES)))
    names += [f"Brand {i}" for i in range(len(names) + 1, count + 1)]
    brands = []
    for i, name in enumerate(names):
        currency, offset, typical = rng.choice(CURRENCIES)
        trackers = tuple(
            (str(rng.randrange(10_000, 99_999)), tracker) for tracker in rng.sample(TRACKER_NAMES, k=rng.randint(1, 3))
        )
        brands.append(
            Brand(
                campaign_id=str(10_000 + rng.randrange(1000) * 10 + i),
                name=name,
                currency=currency,
                utc_offset=offset,
                trackers=trackers,
                commission=Decimal(rng.choice(("0.03", "0.05", "0.08", "0.10", "0.12", "0.15"))),
                typical_amount=typical * rng.uniform(0.6, 1.6),
            )
        )
    return brands


def _normal_delay(rng: random.Random) -> timedelta:
    """impact.com's promise: within 15 minutes; most within a minute."""
    return timedelta(seconds=min(14 * 60, max(2.0, rng.lognormvariate(math.log(20), 1.0))))


def generate_world(
    seed: int,
    scenario: Scenario,
    *,
    now: datetime,
    brands: int | None = None,
    actions: int | None = None,
) -> World:
    """Draw a reproducible world: the same seed, scenario, sizes and `now` give the same world."""
    rng = random.Random(f"world-{seed}")
    now = now.astimezone(UTC).replace(microsecond=0)
    brand_list = _brands(rng, brands or scenario.brands)
    # Brands differ in size: a few big ones, a long tail.
    weights = [1 / (rank + 1) for rank in range(len(brand_list))]
    history = scenario.history.total_seconds()
    # ActionIds depend on `now` too: running the same seed again later adds new actions
    # instead of re-sending old ones with other times; pass the same `now` to replay a world exactly.
    serials = random.Random(f"ids-{seed}-{now.isoformat()}").sample(range(10**8, 10**9), k=actions or scenario.actions)
    late_flags = [rng.random() < scenario.late_rate for _ in serials]
    late_brand = brand_list[-1]  # the smallest: its delay alert is the demo's, not an accident
    forced = set(range(min(scenario.late_brand_actions, len(serials))))
    result = []
    for number, serial in enumerate(serials):
        brand = rng.choices(brand_list, weights=weights)[0]
        if number in forced:
            brand = late_brand
        tracker = rng.choice(brand.trackers)
        late = late_flags[number] or number in forced
        if late:
            # Sent now, but changed 20 minutes to 6 hours ago (within a short window); the late
            # brand's are over an hour late, so they open its delay alert.
            low = 75 * 60 if number in forced else 20 * 60
            lateness = timedelta(seconds=rng.uniform(low, 6 * 3600))
            window_end, span = now - lateness, min(600.0, history)
        else:
            window_end, span = now - timedelta(seconds=30), history
        created = window_end - timedelta(seconds=rng.uniform(0.5, 1.0) * span)
        created = created.replace(microsecond=0)
        action = draw_action(rng, brand, tracker, serial, created, late=late)
        action.changes = _changes(rng, scenario, action, window_end, now)
        result.append(action)
    return World(seed=seed, now=now, brands=brand_list, actions=result)


def draw_action(
    rng: random.Random, brand: Brand, tracker: tuple[str, str], serial: int, created: datetime, late: bool = False
) -> Action:
    """One action of `brand` created at `created`, its other values drawn from `rng` (no changes yet)."""
    return Action(
        action_id=f"{brand.campaign_id}.{tracker[0]}.{serial}",
        brand=brand,
        tracker=tracker,
        event_date=created - timedelta(seconds=rng.randrange(5, 900)),
        creation_date=created,
        locking_date=created + timedelta(days=rng.choice((30, 45, 60))),
        oid=f"ORD-{rng.randrange(10**6, 10**7)}",
        sub_id1=rng.choice(("newsletter", "homepage", "blog", "")),
        late=late,
    )


def _changes(rng: random.Random, scenario: Scenario, action: Action, window_end: datetime, now: datetime):
    brand = action.brand
    unit = smallest_unit(brand.currency)  # a cent, or a yen

    def in_currency(value) -> Decimal:
        return money(value, brand.currency)

    amount = max(in_currency(rng.lognormvariate(math.log(brand.typical_amount), 0.7)), Decimal(1))
    payout = max(in_currency(amount * brand.commission), unit)
    roll = rng.random()
    returns = 0
    if roll < scenario.modified_share:
        returns = rng.choice((1, 1, 1, 2))
    reversed_ = rng.random() < scenario.reversed_share
    approved = not reversed_ and rng.random() < scenario.approved_share

    steps = 1 + returns + int(reversed_) + int(approved)
    room = (window_end - action.creation_date).total_seconds()
    # Later changes happen after the tracking, spread over the time left (at least a second apart).
    offsets = sorted(rng.sample(range(1, max(int(room), steps + 1)), k=steps - 1))
    times = [action.creation_date] + [action.creation_date + timedelta(seconds=s) for s in offsets]

    def delay(at: datetime) -> timedelta:
        return now - at if action.late else _normal_delay(rng)

    def change(kind, status, detail, new_amount, new_payout, delta_amount=None, delta_payout=None):
        at = times[len(changes)]
        return Change(
            action_id=action.action_id,
            index=len(changes),
            kind=kind,
            status=status,
            status_detail=detail,
            amount=new_amount,
            payout=new_payout,
            delta_amount=delta_amount,
            delta_payout=delta_payout,
            at=at,
            delivery_delay=delay(at),
        )

    changes: list[Change] = []
    changes.append(change(TRACKED, "PENDING", "", amount, payout, amount, payout))  # a change from nothing
    for _ in range(returns):
        kept = Decimal(str(rng.uniform(0.3, 0.9)))
        new_amount = min(in_currency(amount * kept), amount - unit)
        if new_amount < unit:
            break
        new_payout = min(max(in_currency(new_amount * brand.commission), unit), payout)
        detail = rng.choice(RETURN_DETAILS)
        changes.append(
            change(MODIFIED, "PENDING", detail, new_amount, new_payout, new_amount - amount, new_payout - payout)
        )
        amount, payout = new_amount, new_payout
    if approved:
        changes.append(change(MODIFIED, "APPROVED", "", amount, payout))
    if reversed_:
        zero = Decimal(0)
        changes.append(change(REVERSED, "REVERSED", rng.choice(REVERSAL_DETAILS), zero, zero, -amount, -payout))
    return changes


# --- The delivery plan ------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """One postback impact.com sends (a retry of the same change is another Send)."""

    change: Change
    send_at: datetime  # when impact.com sends it (planned time)
    copy: int = 0  # 0 for the first sending, 1.. for retries impact.com makes on its own
    lost_ack: bool = False  # the sender does not see the answer to its first attempt, and retries


@dataclass
class Plan:
    """Postbacks in sending order, in waves: a pause separates a wave from the next (maintenance)."""

    waves: list[list[Send]]
    pause: float
    maintenance: tuple[datetime, datetime] | None = None

    @property
    def sends(self) -> list[Send]:
        return [send for wave in self.waves for send in wave]

    def counts(self) -> Counter:
        sends = self.sends
        return Counter(
            postbacks=len(sends),
            changes=len({(s.change.action_id, s.change.index) for s in sends}),
            duplicates=sum(1 for s in sends if s.copy),
            lost_acks=sum(1 for s in sends if s.lost_ack),
            held=len(self.waves[1]) if self.maintenance else 0,
        )


def _can_overtake(action: Action, first: Send, second: Send) -> bool:
    """Plausible only for changes within the hour (or the earlier one would be days late); an on-time
    action's overtaken postback stays under MAX_OVERTAKEN_DELAY."""
    if second.send_at - first.send_at >= MAX_OVERTAKE:
        return False
    return action.late or max(first.send_at, second.send_at) + OVERTAKE_GAP - first.change.at < MAX_OVERTAKEN_DELAY


def plan_deliveries(world: World, scenario: Scenario) -> Plan:
    """Order the postbacks as impact.com would send them, with the scenario's faults."""
    rng = random.Random(f"plan-{world.seed}-{scenario.name}")
    sends = []
    for action in world.actions:
        planned = [Send(change, change.send_at) for change in action.changes]
        # A later change overtakes an earlier one (e.g. the earlier one's first attempt failed).
        close = [i for i in range(len(planned) - 1) if _can_overtake(action, planned[i], planned[i + 1])]
        if close and rng.random() < scenario.out_of_order_rate:
            i = rng.choice(close)
            first, second = planned[i], planned[i + 1]
            planned[i] = replace(first, send_at=max(first.send_at, second.send_at) + OVERTAKE_GAP)
            planned[i + 1] = replace(second, send_at=min(first.send_at, second.send_at))
        sends.extend(planned)
    retries = []
    for send in sends:
        if rng.random() < scenario.duplicate_rate:
            for copy in range(1, rng.choice((2, 2, 2, 3))):
                gap = timedelta(seconds=rng.uniform(1, 1800))
                retries.append(replace(send, send_at=send.send_at + gap * copy, copy=copy))
    sends += retries
    sends = [replace(s, lost_ack=rng.random() < scenario.lost_ack_rate) for s in sends]
    sends.sort(key=lambda s: (s.send_at, s.change.action_id, s.change.index, s.copy))

    if not scenario.maintenance_share or len(sends) < 3:
        return Plan(waves=[sends], pause=0.0)
    # Maintenance: a window of planned time in which nothing is sent; its backlog goes out at the end.
    held_count = max(1, int(len(sends) * scenario.maintenance_share))
    start = rng.randrange(0, len(sends) - held_count + 1)
    before, held, after = sends[:start], sends[start : start + held_count], sends[start + held_count :]
    window = (held[0].send_at, held[-1].send_at)
    held = [replace(s, send_at=window[1]) for s in held]
    return Plan(waves=[before, held, after], pause=scenario.pause, maintenance=window)


# --- What the receiver must end up with ----------------------------------------------------


@dataclass(frozen=True)
class Expected:
    action_id: str
    state: str
    amount: Decimal
    payout: Decimal
    kinds: Counter
    changes: tuple[tuple[str, Decimal, Decimal, datetime], ...]


def truth(world: World) -> dict[str, Expected]:
    """Every action's final state, money and history, as the receiver must have them."""
    return {
        action.action_id: Expected(
            action_id=action.action_id,
            state=action.state,
            amount=action.final.amount,
            payout=action.final.payout,
            kinds=action.kinds(),
            changes=tuple(change.key for change in action.changes),
        )
        for action in world.actions
    }
