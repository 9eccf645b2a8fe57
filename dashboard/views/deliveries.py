"""The deliveries log, replaying deliveries (staff), and the refused attempts with their counters."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from events.models import Delivery, RefusalCounter, RefusedAttempt
from events.processing import replay as replay_deliveries

from ..access import REPLAY, can, permission_required
from ..exports import csv_response, moment_cell
from ..filters import DeliveryFilter, RefusedFilter, parse_id
from ..paging import keyset_page
from ..timezones import display_zone
from .common import csv_query, wants_csv

REPLAY_MAX = 200
DELIVERY_CSV_HEADER = ["id", "received_at", "method", "outcome", "action_id", "reason", "remote_addr", "query_string"]
REFUSED_CSV_HEADER = ["at", "reason", "remote_addr", "method", "path", "size"]


@login_required
@require_GET
def deliveries(request):
    # The page's rows leave out the payload; the CSV names its own columns.
    stored = Delivery.objects.defer("body", "traceback", "headers")
    filterset = DeliveryFilter(request.GET or None, queryset=stored, tz=display_zone())
    context = {
        "replayable": {"invalid", "failed", "received"},
        "replayed_ids": request.GET.get("ids", ""),
        "can_replay": can(request.user, REPLAY),
    }
    return _log(request, filterset, "dashboard/deliveries.html", context, "deliveries.csv", DELIVERY_CSV_HEADER)


@permission_required(*REPLAY)
@require_POST
def replay(request):
    ids = {parse_id(value) for value in request.POST.getlist("delivery")}
    if None in ids:
        return HttpResponseBadRequest("Delivery ids must be numbers.")
    ids = sorted(ids)
    if not ids:
        messages.warning(request, "Select at least one invalid or failed delivery to replay.")
        return redirect("deliveries")
    if len(ids) > REPLAY_MAX:
        messages.error(request, f"Replay at most {REPLAY_MAX} deliveries at a time.")
        return redirect("deliveries")
    selected = Delivery.objects.replayable().filter(pk__in=ids).order_by("id")
    counts = replay_deliveries(selected)
    total = sum(counts.values())
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    skipped = len(ids) - total
    text = f"Replayed {total} {'delivery' if total == 1 else 'deliveries'}"
    text += f": {summary}." if summary else "."
    if skipped:
        text += f" {skipped} skipped (already applied or duplicate)."
    level = messages.SUCCESS if set(counts) <= {"applied", "duplicate"} and total else messages.WARNING
    messages.add_message(request, level, text)
    return redirect(reverse("deliveries") + "?" + urlencode({"ids": ",".join(map(str, ids))}))


@login_required
@require_GET
def refused(request):
    filterset = RefusedFilter(request.GET or None, queryset=RefusedAttempt.objects.all(), tz=display_zone())
    # The counters are read when the page shows them, not for the CSV.
    context = {"counters": RefusalCounter.objects.order_by("-count"), "keep": settings.REFUSED_ATTEMPTS_KEEP}
    return _log(request, filterset, "dashboard/refused.html", context, "refused-attempts.csv", REFUSED_CSV_HEADER)


def _log(request, filterset, template: str, context: dict, csv_name: str, csv_header: list[str]):
    """A log page: the filtered rows as CSV when asked, else their keyset page with the filter form,
    newest first by the filter's time field."""
    rows = filterset.qs
    if wants_csv(request):
        return _log_csv(csv_name, rows, csv_header, filterset.time_field)
    page = keyset_page(request, rows, field=filterset.time_field)
    context = {"filter": filterset, "page": page, "csv_query": csv_query(request), **context}
    return render(request, template, context)


def _log_csv(filename: str, rows, header: list[str], time_field: str):
    """Newest first: one column per field named in `header`, its time in ISO 8601 (UTC, to the second)."""
    at = header.index(time_field)
    data = rows.order_by(f"-{time_field}", "-id").values_list(*header)
    lines = ([*r[:at], moment_cell(r[at]), *r[at + 1 :]] for r in data.iterator(chunk_size=2000))
    return csv_response(filename, header, lines)
