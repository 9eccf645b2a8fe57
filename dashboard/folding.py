"""Fold the few grouped rows a page query returns into totals, pure Python.

The database groups events by (bucket or brand, currency) in one scan; these helpers add
them up for the cards, the money per currency and the chart, without another query.
"""

from __future__ import annotations

from decimal import Decimal

COUNTS = ("events", "tracked", "modified", "reversed")
MONEY = ("gained", "changed", "lost")


def share(part: int, whole: int) -> float | None:
    """part ÷ whole, None when there is no whole."""
    return part / whole if whole else None


def summary(rows: list[dict]) -> dict:
    """Counts summed over every row."""
    return {name: sum(row.get(name) or 0 for row in rows) for name in COUNTS}


def main_currency(rows: list[dict]) -> str | None:
    """The currency with the most events (ties: alphabetical), None without rows."""
    events: dict[str, int] = {}
    for row in rows:
        events[row["currency"]] = events.get(row["currency"], 0) + (row.get("events") or 0)
    if not events:
        return None
    return sorted(events.items(), key=lambda item: (-item[1], item[0]))[0][0]


def money_by_currency(rows: list[dict]) -> list[dict]:
    """[{currency, gained, changed, lost, net, events, lost_share}], the busiest currency first.

    `lost_share`: the payout lost to reversals in the period as a share of the payout gained in it
    (None without payout gained); it may exceed 1 when older actions are reversed in a quiet period."""
    totals: dict[str, dict] = {}
    for row in rows:
        empty = {"currency": row["currency"], "events": 0, **dict.fromkeys(MONEY, Decimal(0))}
        entry = totals.setdefault(row["currency"], empty)
        entry["events"] += row.get("events") or 0
        for name in MONEY:
            entry[name] += Decimal(row.get(name) or 0)
    for entry in totals.values():
        entry["net"] = sum((entry[name] for name in MONEY), Decimal(0))
        entry["lost_share"] = -entry["lost"] / entry["gained"] if entry["gained"] > 0 else None
    return sorted(totals.values(), key=lambda entry: (-entry["events"], entry["currency"]))


def per_bucket(rows: list[dict], currency: str | None) -> list[dict]:
    """Rows per bucket: event counts over every currency, money in `currency` only."""
    buckets: dict = {}
    for row in rows:
        entry = buckets.setdefault(
            row["bucket"], {"bucket": row["bucket"], "tracked": 0, "modified": 0, "reversed": 0, **dict.fromkeys(MONEY)}
        )
        for name in ("tracked", "modified", "reversed"):
            entry[name] += row.get(name) or 0
        if row["currency"] == currency:
            for name in MONEY:
                entry[name] = Decimal(entry[name] or 0) + Decimal(row.get(name) or 0)
    return list(buckets.values())


def per_key(rows: list[dict], key: str) -> dict:
    """{row[key]: [rows]}, e.g. a brand's rows, one per currency."""
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped
