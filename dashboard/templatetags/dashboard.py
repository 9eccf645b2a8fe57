"""Template filters: money with currency, times in the display zone, delays and their badges."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html

from .. import delays, money
from ..timezones import display_zone

register = template.Library()


@register.filter(name="money")
def money_filter(amount, currency=""):
    return money.format_money(amount, currency)


@register.filter
def signed_money(amount, currency=""):
    return money.format_money(amount, currency, signed=True)


@register.filter
def money_class(amount):
    """CSS class for a signed amount: gain, loss or nothing."""
    try:
        value = Decimal(amount)
    except (TypeError, InvalidOperation, ValueError):
        return ""
    return "gain" if value > 0 else "loss" if value < 0 else ""


def _format(moment: datetime, with_seconds: bool = True) -> str:
    local = timezone.localtime(moment, display_zone())
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


@register.filter
def when(moment):
    """A <time> in the display zone; its title gives UTC."""
    if not moment:
        return "—"
    utc = moment.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        utc.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        _format(moment),
    )


@register.filter
def when_text(moment):
    return _format(moment) if moment else ""


@register.filter
def duration(seconds):
    return delays.format_duration(seconds)


@register.filter
def delay_badge(seconds):
    level = delays.delay_level(seconds, settings.DELAY_LATE_AFTER_MINUTES, settings.DELAY_ALERT_AFTER_MINUTES)
    if level == delays.UNKNOWN:
        return format_html('<span class="badge muted" title="No impact-side time in the postback">{}</span>', "n/a")
    titles = {
        delays.ON_TIME: f"On time (≤ {settings.DELAY_LATE_AFTER_MINUTES} min)",
        delays.LATE: f"Late (> {settings.DELAY_LATE_AFTER_MINUTES} min)",
        delays.ALERT: f"Alert-late (> {settings.DELAY_ALERT_AFTER_MINUTES} min)",
    }
    return format_html(
        '<span class="badge {}" title="{}">{}</span>', level, titles[level], delays.format_duration(seconds)
    )


@register.filter
def percent(value):
    if value is None:
        return "—"
    return f"{value * 100:.1f}%"


@register.simple_tag
def zone_name():
    """`Europe/Paris (UTC+01:00)`: the zone every time on the page is shown in."""
    zone = display_zone()
    offset = timezone.localtime(timezone.now(), zone).strftime("%z")
    return f"{zone.key} (UTC{offset[:3]}:{offset[3:]})"


@register.filter
def date_local(moment):
    """The calendar day of `moment` in the display zone, as YYYY-MM-DD (for date filters)."""
    return timezone.localtime(moment, display_zone()).date().isoformat() if moment else ""


@register.filter
def kind_class(kind):
    return {"tracked": "tracked", "modified": "modified", "reversed": "reversed"}.get(kind, "")
