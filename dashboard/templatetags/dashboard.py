"""Template filters: money with currency, times in the display zone, delays and their badges; and the
rows of the brand timeline and the deliveries log, built in Python."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from urllib.parse import quote

from django import template
from django.conf import settings
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeData, mark_safe
from django.utils.text import Truncator

from events.common.times import format_duration
from events.impact import Lifecycle, promises
from events.models import Brand, EventSource, Outcome

from .. import money
from ..locking import locking_note
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


def _format(moment: datetime) -> str:
    return f"{moment.astimezone(display_zone()):%Y-%m-%d %H:%M:%S}"


@register.filter
def when(moment):
    """A <time> in the display zone; its title gives UTC. (Only digits, dashes and colons: nothing to escape.)"""
    if not moment:
        return "—"
    utc = moment.astimezone(UTC)
    return mark_safe(f'<time datetime="{utc.isoformat()}" title="{utc:%Y-%m-%d %H:%M:%S} UTC">{_format(moment)}</time>')  # noqa: S308


@register.filter
def when_text(moment):
    return _format(moment) if moment else ""


@register.filter
def duration(seconds):
    return format_duration(seconds)


@register.filter
def delay_badge(seconds):
    level = promises.delay_level(seconds)
    if level == promises.UNKNOWN:
        return format_html('<span class="badge muted" title="No impact-side time in the postback">{}</span>', "n/a")
    titles = {
        promises.ON_TIME: f"On time (≤ {settings.DELAY_LATE_AFTER_MINUTES} min)",
        promises.LATE: f"Late (> {settings.DELAY_LATE_AFTER_MINUTES} min)",
        promises.ALERT: f"Alert-late (> {settings.DELAY_ALERT_AFTER_MINUTES} min)",
    }
    return format_html('<span class="badge {}" title="{}">{}</span>', level, titles[level], format_duration(seconds))


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


# --- Brand timeline and deliveries rows ----------------------------------------------------------------------

KIND_LABELS = STATE_LABELS = dict(Lifecycle.choices)
SOURCE_LABELS = dict(EventSource.choices)
OUTCOME_LABELS = dict(Outcome.choices)


@register.simple_tag
def event_row(e):
    """One brand timeline row. Built here rather than in a partial template: a page shows fifty, and the
    template engine (and format_html, whose escaping checks every argument for lazy text) spent more on
    them than the page spent on its queries. Every value goes through _text() or is markup made here."""
    action = e.action
    changed = f'<span class="sub" title="impact-side time of the change">impact {when(e.changed_at)}</span>'
    link = f'<a href="{_text(action_path(action.action_id))}">{_text(action.action_id)}</a>'
    order = f'<span class="sub">order {_text(action.oid)}</span>' if action.oid else ""
    from_state = f"{_text(STATE_LABELS.get(e.from_state, e.from_state))} → " if e.from_state else ""
    status = f'<span class="sub" title="Status as impact.com sent it">{_text(e.status)}</span>' if e.status else ""
    kind = _text(KIND_LABELS.get(e.kind, e.kind))
    note = action_locking(action)
    locks = ""
    if note:
        title = _text(note["title"])
        locks = f'<span class="sub"><span class="{note["css"]}" title="{title}">{_text(note["text"])}</span></span>'

    to_state = _text(STATE_LABELS.get(e.to_state, e.to_state))
    # data-label: what each cell is where a narrow screen stacks the row (static/app.css).
    row = (
        "<tr>\n"
        f'  <td class="nowrap" data-label="Received">{when(e.received_at)}{changed if e.changed_at else ""}</td>\n'
        f'  <td data-label="Kind"><span class="kind {_text(e.kind)}">{kind}</span></td>\n'
        f'  <th scope="row" data-label="Action">{link}{order}</th>\n'
        f'  <td class="nowrap" data-label="State">{from_state}{to_state}{status}{locks}</td>\n'
        f'  <td class="num" data-label="Amount">{_amount_and_delta(e.amount, e.delta_amount, e.currency)}</td>\n'
        f'  <td class="num" data-label="Payout">{_amount_and_delta(e.payout, e.delta_payout, e.currency)}</td>\n'
        f'  <td data-label="Delay">{delay_badge(e.delay_seconds)}</td>\n'
        f'  <td data-label="Flags"><span class="flag-list">{"".join(_flags(e))}</span></td>\n'
        "</tr>\n"
    )
    return mark_safe(row)  # noqa: S308 (escaped piece by piece above)


@register.filter
def action_locking(action):
    """{"text", "css", "title"}: "locks in 3 days", "locked since …" (None without a locking date)."""
    return locking_note(action.locking_date, action.state, action.status, timezone.now(), display_zone())


def _text(value) -> str:
    """Escaped text (the markup this module made is kept as it is)."""
    return value if isinstance(value, SafeData) else html.escape(str(value))


def _amount_and_delta(amount, delta, currency) -> str:
    text = _text(money.format_money(amount, currency))
    if not delta:
        return text
    delta_text = _text(money.format_money(delta, currency, signed=True))
    return f'{text}<span class="sub {money_class(delta)}">{delta_text}</span>'


def _flags(e) -> list[str]:
    flags = []
    if e.active_alert_id:
        url = _text(reverse("alert-detail", args=[e.active_alert_id]))
        flags.append(f'<a class="badge bad" href="{url}" title="Evidence in an active delay alert">alert</a>')
    if e.duplicate_count:
        text = f"{e.duplicate_count} duplicate{'s' if e.duplicate_count != 1 else ''}"
        flags.append(_flag(text, title="Retries of this postback received later"))
    if e.out_of_order:
        flags.append(_flag("out of order", "flag warn"))
    if e.superseded:
        flags.append(_flag("superseded"))
    if e.anomaly:
        flags.append(_flag("anomaly", "flag bad", title=e.anomaly))
    if e.source != EventSource.POSTBACK:
        flags.append(_flag(SOURCE_LABELS.get(e.source, e.source)))
    return flags


def _flag(text: str, css: str = "flag", title: str = "") -> str:
    title_attribute = f' title="{_text(title)}"' if title else ""
    return f'<span class="{css}"{title_attribute}>{_text(text)}</span>'


@register.simple_tag(takes_context=True)
def delivery_row(context, d):
    """One row of the deliveries log, built here for the same reason as event_row()."""
    select = ""
    if context["can_replay"]:
        box = ""
        if d.outcome in context["replayable"]:
            box = (
                f'<input type="checkbox" name="delivery" value="{d.pk}" id="replay-{d.pk}" '
                f'aria-label="Select delivery {d.pk} for replay">'
            )
        select = f'<td data-label="Replay">{box}</td>'
    attempts = f'<span class="sub">{d.attempts} attempts</span>' if d.attempts > 1 else ""
    if d.event_id:
        action = f'<a href="{_text(action_path(d.action_id))}">{_text(d.action_id)}</a>'
    else:
        action = _text(d.action_id or "—")
    if d.action_id.startswith(Brand.TEST_ACTION_PREFIX):
        action += ' <span class="flag" title="A synthetic test postback from the setup page: in no total">test</span>'

    row = (
        "\n    <tr>\n"
        f"      {select}\n"
        f'      <th scope="row" data-label="Delivery">#{d.pk} <span class="muted">{_text(d.method)}</span></th>\n'
        f'      <td data-label="Outcome"><span class="outcome {_text(d.outcome)}">'
        f"{_text(OUTCOME_LABELS.get(d.outcome, d.outcome))}</span>{attempts}</td>\n"
        f'      <td class="nowrap" data-label="Received">{when(d.received_at)}</td>\n'
        f'      <td data-label="Action">{action}</td>\n'
        f'      <td class="reason" data-label="Reason">{_text(Truncator(d.reason).chars(160))}</td>\n'
        f'      <td class="nowrap muted" data-label="From">{_text(d.remote_addr)}</td>\n'
        "    </tr>\n  "
    )
    return mark_safe(row)  # noqa: S308 (escaped piece by piece above)


def action_path(action_id: str) -> str:
    """reverse("action", args=[action_id]), resolving the pattern once per script prefix instead of per row."""
    return _action_prefix(get_script_prefix()) + quote(action_id, safe=RFC3986_SUBDELIMS + "/~:@") + "/"


@cache
def _action_prefix(script_prefix: str) -> str:
    return reverse("action", args=["-"]).removesuffix("-/")
