"""What several page families share: the period a page asks for, CSV requests and their links,
the charts built from grouped rows, and the endpoint's public URL."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from .. import charts, money
from ..periods import BadPeriod, Period, parse_period
from ..timezones import display_zone

MONEY_PARTS = ("gained", "changed", "lost")


def wants_csv(request) -> bool:
    return request.GET.get("format") == "csv"


def csv_query(request) -> str:
    """The query of the page's "Export CSV" link: its filters, without its page."""
    query = [(k, v) for k, v in request.GET.items() if k not in ("before", "after", "format")]
    return urlencode([*query, ("format", "csv")])


def period_of(request) -> tuple[Period, str | None]:
    """The period the request asks for, and the error that made it fall back to the default."""
    now = timezone.now()
    try:
        period = parse_period(
            request.GET.get("period"), request.GET.get("start"), request.GET.get("end"), now=now, tz=display_zone()
        )
        return period, None
    except BadPeriod as exc:
        return parse_period(None, None, None, now=now, tz=display_zone()), str(exc)


def endpoint_url() -> str:
    """Where impact.com sends postbacks, as it sees it."""
    return settings.PUBLIC_URL + reverse("impact-postback")


def _bucket_label(moment, bucket: str) -> str:
    local = timezone.localtime(moment, display_zone())
    return local.strftime("%H:%M") if bucket == "hour" else local.strftime("%b %d")


def _bucket_key(moment):
    return timezone.localtime(moment, display_zone()).replace(tzinfo=None)


def build_charts(rows: list[dict], slots: list, bucket: str, currency: str | None):
    """Stacked events chart and net payout chart over every slot, empty slots included."""
    by_key = {_bucket_key(row["bucket"]): row for row in rows}
    labels, counts, nets, table = [], [], [], []
    for slot in slots:
        row = by_key.get(_bucket_key(slot), {})
        net = sum((Decimal(row.get(name) or 0) for name in MONEY_PARTS), Decimal(0))
        label = _bucket_label(slot, bucket)
        labels.append(label)
        counts.append(row)
        nets.append(net)
        table.append(
            {
                "label": label,
                "tracked": row.get("tracked", 0),
                "modified": row.get("modified", 0),
                "reversed": row.get("reversed", 0),
                "net": net,
            }
        )
    series = [("tracked", "tracked"), ("modified", "modified"), ("reversed", "reversed")]
    return {
        "events": charts.stacked_bars(labels, series, counts),
        "payout": charts.signed_bars(labels, nets, fmt=lambda v: money.format_money(v, currency or "", signed=True)),
        "table": table,
        "currency": currency or "",
        "bucket": bucket,
    }


def day_slots(start, end) -> list:
    """Every day from `start` to `end` in the display zone: the slots of a daily chart."""
    return Period("custom", start, end, "").buckets(display_zone(), "day")
