"""Forwarding pages (staff): the endpoints with their health; one endpoint's last attempts and its
messages; sending a test message, replaying one message, replaying every failed one since a time."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.contrib import messages
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from events.common.times import FIRST_DAY, LAST_DAY
from events.forwarding import replay_failed, replay_message, send_test
from events.forwarding.health import RATE_WINDOW, health
from events.models import Endpoint, Message, MessageStatus

from ..access import REPLAY_MESSAGE, SEND_TEST_MESSAGE, can, permission_required, staff_required
from ..paging import keyset_page
from ..timezones import display_zone

WINDOW = f"{RATE_WINDOW.total_seconds() / 3600:g} h"
SINCE_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


class SinceForm(forms.Form):
    """The moment "every failed message since" starts, in the display time zone."""

    since = forms.DateTimeField(input_formats=SINCE_FORMATS)

    def clean_since(self) -> datetime:
        since = self.cleaned_data["since"]
        if not FIRST_DAY <= since.date() <= LAST_DAY:
            raise forms.ValidationError(f"Times run from {FIRST_DAY} to {LAST_DAY}.")
        return since


@staff_required
@require_GET
def endpoints(request):
    shown = list(Endpoint.objects.select_related("brand"))
    figures = health([e.pk for e in shown], timezone.now())
    rows = [(endpoint, figures[endpoint.pk]) for endpoint in shown]
    return render(request, "dashboard/forwarding/list.html", {"rows": rows, "window": WINDOW})


def _endpoint(pk: int) -> Endpoint:
    return get_object_or_404(Endpoint.objects.select_related("brand"), pk=pk)


def _context(request, endpoint: Endpoint) -> dict:
    return {
        "endpoint": endpoint,
        "health": health([endpoint.pk], timezone.now())[endpoint.pk],
        "window": WINDOW,
        "can_test": can(request.user, SEND_TEST_MESSAGE),
        "can_replay": can(request.user, REPLAY_MESSAGE),
    }


@staff_required
@require_GET
def endpoint_detail(request, pk: int):
    """The endpoint, its figures and its attempts, newest first."""
    endpoint = _endpoint(pk)
    page = keyset_page(request, endpoint.attempts.select_related("message"), field="at")
    context = {**_context(request, endpoint), "page": page, "since_default": _since_default()}
    return render(request, "dashboard/forwarding/endpoint.html", context)


@staff_required
@require_GET
def endpoint_messages(request, pk: int):
    """The endpoint's messages, newest first, optionally of one status (another status finds none)."""
    endpoint = _endpoint(pk)
    status = request.GET.get("status", "")
    shown = endpoint.messages.defer("body").select_related("action")
    if status in MessageStatus.values:
        shown = shown.filter(status=status)
    elif status:
        shown = shown.none()
    page = keyset_page(request, shown, field="created_at")
    context = {**_context(request, endpoint), "page": page, "status": status, "statuses": MessageStatus.choices}
    return render(request, "dashboard/forwarding/messages.html", context)


def _since_default() -> str:
    """A day ago, as the form's datetime-local field wants it."""
    return (timezone.now() - RATE_WINDOW).astimezone(display_zone()).strftime("%Y-%m-%dT%H:%M")


@permission_required(*SEND_TEST_MESSAGE)
@require_POST
def endpoint_test(request, pk: int):
    endpoint = _endpoint(pk)
    attempt = send_test(endpoint)
    if attempt.success:
        messages.success(request, f"Test message answered {attempt.status_code} in {attempt.latency_ms} ms.")
    else:
        answer = attempt.status_code or attempt.error
        messages.warning(request, f"Test message failed ({answer}); it will be retried like any other.")
    return redirect("forwarding-endpoint", pk=endpoint.pk)


@permission_required(*REPLAY_MESSAGE)
@require_POST
def message_replay(request, pk: int, message_pk: int):
    """Send one message again (same webhook-id); a pending one is already on its way."""
    message = get_object_or_404(Message, pk=message_pk, endpoint_id=pk)
    if message.status == MessageStatus.PENDING:
        messages.warning(request, f"Message {message.msg_id} is pending already: it will be sent.")
    else:
        replay_message(message)
        messages.success(request, f"Message {message.msg_id} will be sent again (same webhook-id).")
    return redirect(reverse("forwarding-messages", kwargs={"pk": pk}) + f"?status={MessageStatus.PENDING}")


@permission_required(*REPLAY_MESSAGE)
@require_POST
def endpoint_replay_failed(request, pk: int):
    """Every failed message of the endpoint written since a time, pending again."""
    endpoint = _endpoint(pk)
    with timezone.override(display_zone()):
        form = SinceForm(request.POST)
        valid = form.is_valid()
    if not valid:
        problem = " ".join(str(e) for e in form.errors.get("since", []))
        return HttpResponseBadRequest(f"Give the time to replay from as YYYY-MM-DDTHH:MM. {problem}\n")
    count = replay_failed(endpoint, form.cleaned_data["since"])
    messages.success(request, f"{count} failed message{'s' if count != 1 else ''} will be sent again.")
    return redirect("forwarding-endpoint", pk=endpoint.pk)
