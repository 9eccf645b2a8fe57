"""`GET /api/actions/?ids=A,B`: read-only action states and histories, and how many deliveries wait to be
applied (for `simulate_postbacks --verify`).

For staff (session) or a caller holding an active postback credential (in its header), so the
simulator can verify a remote instance with the token it already sends postbacks with. A credential
that is presented and refused goes the endpoint's way: throttled, recorded and counted, 401 (403
from outside the allow-list, 429 past the rate), and scrubbed from the request before anything logs it.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import DatabaseError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from events.models import Action, Delivery

from .credentials import Authenticated, Refusal, auth_config, authenticate, presents_credential
from .endpoint import database_unavailable, refuse
from .redaction import scrub_credentials

MAX_IDS = 500


def action_state(action) -> dict:
    """One action with its history (events prefetched), as `simulate_postbacks --verify` reads it."""
    events = sorted(action.events.all(), key=lambda e: e.seq)
    return {
        "action_id": action.action_id,
        "state": action.state,
        "status": action.status,
        "amount": _text(action.amount),
        "payout": _text(action.payout),
        "currency": action.currency,
        "events": [
            {
                "seq": e.seq,
                "kind": e.kind,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "status": e.status,
                "amount": _text(e.amount),
                "payout": _text(e.payout),
                "changed_at": e.changed_at.isoformat() if e.changed_at else None,
                "received_at": e.received_at.isoformat(),
                "duplicate_count": e.duplicate_count,
            }
            for e in events
        ],
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class CredentialHeaderAuthentication(BaseAuthentication):
    """An active postback credential; none presented lets session authentication try."""

    def authenticate(self, request):
        if not presents_credential(request._request):
            return None
        result = authenticate(request._request)
        if isinstance(result, Refusal):
            scrub_credentials(request._request, {c.header_name for c in auth_config().credentials})
            refuse(request, result)
        scrub_credentials(request._request, result.header_names, result.secret)
        return (None, result)

    def authenticate_header(self, request):
        return "Token"


class StaffOrCredential(BasePermission):
    def has_permission(self, request, view):
        if isinstance(request.auth, Authenticated):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class ActionStateView(APIView):
    # Not part of the public OpenAPI description (/api/schema/): a read-back for the simulator's --verify.
    schema = None
    authentication_classes = [CredentialHeaderAuthentication, SessionAuthentication]
    permission_classes = [StaffOrCredential]
    http_method_names = ["get"]

    def get(self, request):
        raw = request.query_params.get("ids", "")
        ids = [value for value in (part.strip() for part in raw.split(",")) if value]
        if not ids:
            raise exceptions.ValidationError({"ids": "Give ActionIds, comma-separated: ?ids=A,B"})
        if len(ids) > MAX_IDS:
            raise exceptions.ValidationError({"ids": f"At most {MAX_IDS} ActionIds per request ({len(ids)} given)."})
        # Counted first: a batch applied after the count shows in the page, never the reverse (a page
        # read before a batch committed, and a count of 0 after it, would pass for the final state).
        pending = Delivery.objects.pending().count()
        actions = Action.objects.filter(action_id__in=ids).prefetch_related("events")
        found = [action_state(action) for action in actions]
        known = {item["action_id"] for item in found}
        # `pending`: deliveries stored but not applied yet, so a caller knows whether to ask again.
        return Response({"actions": found, "missing": [i for i in ids if i not in known], "pending": pending})

    def handle_exception(self, exc):
        if isinstance(exc, DatabaseError):
            return database_unavailable(self.request, exc)
        return super().handle_exception(exc)
