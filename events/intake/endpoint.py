"""The postback endpoint: `GET|POST /postbacks/impact/`. Thin: authenticate, store, answer.

Nothing else happens on the request: a processor applies the stored delivery (`events.processing`).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from events.common import logs
from events.models import DEFAULT_HEADER, Outcome, RefusalReason

from . import openapi
from .credentials import TOKEN_PARAMETER, Authenticated, Refusal, auth_config, authenticate
from .limits import body_too_large, query_too_long, read_body
from .redaction import scrub_credentials
from .refusals import count_refusal, record_refusal, refusal_throttled
from .store import store

logger = logging.getLogger(__name__)


class PostbackRefused(exceptions.AuthenticationFailed):
    def __init__(self, refusal: Refusal):
        super().__init__({"error": "unauthorized", "reason": refusal.reason, "detail": refusal.detail})


class CredentialAuthentication(BaseAuthentication):
    """An active postback credential in its header or in the `token` parameter."""

    def authenticate(self, request):
        result = authenticate(request._request)
        if isinstance(result, Refusal):
            # A refusal was confirmed from a fresh read: these are the active credentials' headers.
            scrub_credentials(request._request, {c.header_name for c in auth_config().credentials})
            refuse(request, result)
        scrub_credentials(request._request, result.header_names, result.secret)
        return (None, result)

    def authenticate_header(self, request):
        # Defining this makes DRF answer 401 rather than 403. Names the headers the active
        # credentials use (as just read for the refusal); none configured yet: the default one.
        names = sorted({c.header_name for c in auth_config().credentials}) or [DEFAULT_HEADER]
        return f'Token header="{", ".join(names)}", param="{TOKEN_PARAMETER}"'


class AddressNotAllowed(exceptions.PermissionDenied):
    def __init__(self, refusal: Refusal):
        super().__init__({"error": "forbidden", "reason": refusal.reason, "detail": refusal.detail})


def refuse(request, refusal: Refusal):
    """Throttle, record and answer a refusal (401, 403 for the allow-list, 429 past the rate)."""
    wait = refusal_throttled(request._request)
    if wait is not None:
        count_refusal(RefusalReason.THROTTLED)
        raise exceptions.Throttled(wait=wait, detail="Too many refused postbacks from this address; retry later.")
    record_refusal(request._request, refusal)
    if refusal.reason == RefusalReason.ADDRESS_NOT_ALLOWED:
        raise AddressNotAllowed(refusal)
    raise PostbackRefused(refusal)


class HasCredential(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, Authenticated)


class JSONOnly(BaseContentNegotiation):
    """Always JSON, whatever the sender's Accept says (never 406).

    DRF's default reads `?format=` through request.GET, whose parser answers 400 to more than
    DATA_UPLOAD_MAX_NUMBER_FIELDS parameters before the delivery could be stored.
    """

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


class ImpactPostbackView(APIView):
    content_negotiation_class = JSONOnly
    authentication_classes = [CredentialAuthentication]
    permission_classes = [HasCredential]
    parser_classes = []  # the raw body is stored first and parsed by the pipeline
    throttle_classes = []
    http_method_names = ["get", "post"]

    @openapi.receive_get
    def get(self, request):
        return self.receive(request)

    @openapi.receive_post
    def post(self, request):
        return self.receive(request)

    def receive(self, request):
        limit = settings.POSTBACK_MAX_BODY_BYTES
        if body_too_large(request._request):
            return Response(
                {"error": "payload_too_large", "detail": f"Bodies are limited to {limit} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        if query_too_long(request._request):
            return Response(
                {"error": "uri_too_long", "detail": f"Query strings are limited to {limit} characters."},
                status=status.HTTP_414_REQUEST_URI_TOO_LONG,
            )
        # Read the raw bytes before anything parses them (DRF issue #4940).
        body = read_body(request._request)
        if body is None:  # chunked, so only known too large once read
            return Response(
                {"error": "payload_too_large", "detail": f"Bodies are limited to {limit} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        delivery = store(request._request, request.auth, body)
        logs.bind_delivery(delivery.pk)
        logger.debug("postback stored as delivery %s", delivery.pk)
        # Django's JsonResponse, not DRF's Response: the same JSON without the renderer's
        # negotiation and rendering, which cost a twenty-fifth of a stored postback's instructions.
        return JsonResponse({"delivery": delivery.pk, "outcome": Outcome.RECEIVED})

    def handle_exception(self, exc):
        if isinstance(exc, DatabaseError):  # nothing could be stored: impact.com retries
            return database_unavailable(self.request, exc)
        return super().handle_exception(exc)


def database_unavailable(request, exc: DatabaseError) -> Response:
    """503 with Retry-After for a database error (down, or locked past its timeout): the caller
    retries, where a 500 would say the request itself was wrong."""
    logger.error("%s answered 503, database error: %s", request.path, exc, exc_info=exc)
    # The credential may not have been read yet: blank the default places (no database to ask).
    scrub_credentials(request._request, {DEFAULT_HEADER})
    response = Response(
        {"error": "unavailable", "detail": "The database is unavailable; retry later."},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
    )
    response["Retry-After"] = str(settings.RETRY_AFTER_SECONDS)
    return response
