"""Setup page (staff): the exact templates to paste into impact.com, and a test postback."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from events import impact
from events.intake.credentials import TOKEN_PARAMETER
from events.models import DEFAULT_HEADER, Credential, Delivery
from events.simulation import synthetic

from ..access import REMOVE_TEST_ACTION, SEND_TEST_POSTBACK, can, permission_required, staff_required
from ..filters import parse_id
from .common import endpoint_url


@staff_required
def setup(request):
    endpoint = endpoint_url()
    credentials = Credential.objects.usable().exclude(label=synthetic.TEST_CREDENTIAL_LABEL)
    headers = sorted(set(credentials.values_list("header_name", flat=True))) or [DEFAULT_HEADER]
    test_delivery = None
    delivery_id = parse_id(request.GET.get("delivery", ""))
    if delivery_id is not None:
        test_delivery = (
            Delivery.objects.filter(pk=delivery_id, action_id__startswith=synthetic.TEST_PREFIX)
            .select_related("event", "credential")
            .first()
        )
    context = {
        "endpoint": endpoint,
        "url_template": impact.url_template(endpoint),
        "json_body_template": impact.json_body_template(),
        "headers": headers,
        "header": headers[0],
        "token_parameter": TOKEN_PARAMETER,
        "credential_count": credentials.count(),
        "test_delivery": test_delivery,
        "test_action_exists": bool(test_delivery and test_delivery.event_id),
        "can_send_test": can(request.user, SEND_TEST_POSTBACK),
        "can_remove_test": can(request.user, REMOVE_TEST_ACTION),
    }
    return render(request, "dashboard/setup.html", context)


@permission_required(*SEND_TEST_POSTBACK)
@require_POST
def send_test_postback(request):
    method = request.POST.get("method", "get")
    if method not in ("get", "post-json"):
        method = "get"
    outcome = synthetic.send_test_postback(endpoint_url(), method=method)
    if outcome.error:
        messages.error(
            request,
            f"The test postback could not reach {endpoint_url()}: {outcome.error}. Check PUBLIC_URL, that the "
            "server answers on it from this host, and that it runs more than one worker.",
        )
    elif not outcome.ok:
        messages.error(request, f"The endpoint answered HTTP {outcome.status}: {outcome.answer[:300]}")
    else:
        messages.success(request, f"The endpoint answered HTTP {outcome.status}: {outcome.answer[:300]}")
    if outcome.delivery is not None:
        return redirect(reverse("setup") + f"?delivery={outcome.delivery.pk}#test")
    return redirect(reverse("setup") + "#test")


@permission_required(*REMOVE_TEST_ACTION)
@require_POST
def remove_test_postback(request):
    action_id = request.POST.get("action_id", "")
    try:
        removed = synthetic.remove_test_action(action_id)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Removed the synthetic action {action_id} ({removed} rows).")
    return redirect(reverse("setup") + "#test")
