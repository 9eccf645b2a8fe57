"""What the receiver stored, read back (from the database or through `GET /api/actions/`), and
compared with the simulated truth: `lost / wrong / duplicated`."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from events.intake.actions_api import action_state
from events.models import Action
from events.processing import pending, process_pending

from .sender import Target
from .world import REVERSED, TRACKED, Expected


def read_state_orm(action_ids: Iterable[str], timeout: float = 60, sleep: Callable[[float], None] = time.sleep) -> dict:
    """The receiver's actions and histories, straight from the database (same project), once every
    delivery stored is applied: what is pending is applied here, as a processor would (one that
    runs meanwhile keeps its own batches), then the rest is waited for, up to `timeout` seconds."""
    process_pending()
    deadline = time.monotonic() + timeout
    while pending().exists() and time.monotonic() < deadline:
        sleep(0.2)
        process_pending()
    ids = list(action_ids)
    state: dict[str, dict] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for action in Action.objects.filter(action_id__in=chunk).prefetch_related("events"):
            state[action.action_id] = action_state(action)
    return state


def read_state_http(
    api_url: str,
    token: str,
    header: str,
    action_ids: Iterable[str],
    timeout: float = 30,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """The same, through `GET /api/actions/?ids=...` (staff session or a credential in its header),
    asked again while the receiver says deliveries are still waiting to be applied, or answers 503
    (its database busy or restarting), up to `timeout`."""
    ids = list(action_ids)
    deadline = time.monotonic() + timeout
    while True:
        try:
            state, waiting = _read_http(api_url, token, header, ids, timeout)
        except Unavailable:
            if time.monotonic() >= deadline:
                raise
            state, waiting = {}, 1
        if not waiting or time.monotonic() >= deadline:
            return state
        sleep(0.5)


class Unavailable(RuntimeError):
    """The receiver answered 503: ask again later."""


def _read_http(api_url: str, token: str, header: str, ids: list[str], timeout: float) -> tuple[dict, int]:
    target = Target(api_url, token, header=header)
    state: dict[str, dict] = {}
    waiting = 0
    conn = target.connect(timeout)
    try:
        for start in range(0, len(ids), 100):
            query = urlencode({"ids": ",".join(ids[start : start + 100])})
            conn.request("GET", f"{target.path}?{query}", headers={header: token, "Accept": "application/json"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                error = Unavailable if response.status == 503 else RuntimeError
                raise error(f"{api_url} answered {response.status}: {body[:300]!r}")
            answer = json.loads(body)
            waiting = max(waiting, answer.get("pending", 0))
            for item in answer["actions"]:
                state[item["action_id"]] = item
    finally:
        conn.close()
    return state, waiting


@dataclass
class Report:
    lost: int = 0  # changes the receiver has no event for (missing actions count all theirs)
    wrong: int = 0  # actions whose state, money or history differ
    duplicated: int = 0  # events recorded more than once for the same change
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.wrong or self.duplicated)

    def line(self) -> str:
        return f"lost: {self.lost}, wrong: {self.wrong}, duplicated: {self.duplicated}"


def _dec(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def expected_transitions(kinds: list[str]) -> list[tuple[str, str]]:
    """(from_state, to_state) of each event, in the receiver's arrival order (lifecycle rules)."""
    state, result = "", []
    for kind in kinds:
        if not state:
            new = kind
        elif state == REVERSED or kind == REVERSED:
            new = REVERSED
        elif kind == TRACKED:
            new = state
        else:
            new = "modified"
        result.append((state, new))
        state = new
    return result


def compare(expected: dict[str, Expected], actual: dict[str, dict]) -> Report:
    report = Report()

    def differ(text: str) -> None:
        report.differences.append(text)

    for action_id, want in expected.items():
        got = actual.get(action_id)
        if got is None:
            report.lost += len(want.changes)
            differ(f"{action_id}: missing ({len(want.changes)} changes lost)")
            continue
        events = got["events"]
        remaining = Counter(want.changes)
        seen: Counter = Counter()
        wrong = []
        for event in events:
            changed_at = datetime.fromisoformat(event["changed_at"]) if event["changed_at"] else None
            key = (event["status"], _dec(event["amount"]), _dec(event["payout"]), changed_at)
            if remaining[key]:
                remaining[key] -= 1
                seen[key] += 1
            elif seen[key]:
                report.duplicated += 1
                differ(f"{action_id}: event #{event['seq']} repeats the change of {key[3]} ({key[0]})")
            else:
                wrong.append(f"event #{event['seq']} reports a change that never happened: {key}")
        for key, count in remaining.items():
            if count:
                report.lost += count
                differ(f"{action_id}: no event for the change of {key[3]} ({key[0]} {key[1]}/{key[2]})")
        if (got["state"], _dec(got["amount"]), _dec(got["payout"])) != (want.state, want.amount, want.payout):
            wrong.append(
                f"is {got['state']} {got['amount']}/{got['payout']}, expected {want.state} {want.amount}/{want.payout}"
            )
        kinds = Counter(event["kind"] for event in events)
        if kinds != want.kinds and not any(remaining.values()) and len(events) == len(want.changes):
            wrong.append(f"event kinds {dict(kinds)}, expected {dict(want.kinds)}")
        transitions = expected_transitions([event["kind"] for event in events])
        for event, (from_state, to_state) in zip(events, transitions, strict=True):
            if (event["from_state"], event["to_state"]) != (from_state, to_state):
                wrong.append(
                    f"event #{event['seq']} ({event['kind']}) goes {event['from_state'] or '-'} -> "
                    f"{event['to_state']}, expected {from_state or '-'} -> {to_state}"
                )
        if wrong:
            report.wrong += 1
            differ(f"{action_id}: " + "; ".join(wrong))
    return report
