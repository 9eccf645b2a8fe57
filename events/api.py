"""The postback endpoint: `GET|POST /postbacks/impact/`. Thin: it only calls the pipeline."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from . import ingest
from .models import DEFAULT_HEADER


class PostbackRefused(exceptions.AuthenticationFailed):
    def __init__(self, refusal: ingest.Refusal):
        super().__init__({"error": "unauthorized", "reason": refusal.reason, "detail": refusal.detail})


class CredentialAuthentication(BaseAuthentication):
    """An active postback credential in its header or in the `token` parameter."""

    def authenticate(self, request):
        result = ingest.authenticate(request._request)
        if isinstance(result, ingest.Refusal):
            ingest.record_refusal(request._request, result)
            raise PostbackRefused(result)
        return (None, result)

    def authenticate_header(self, request):
        # Defining this makes DRF answer 401 rather than 403.
        return f'Token header="{DEFAULT_HEADER}", param="{ingest.TOKEN_PARAMETER}"'


class HasCredential(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, ingest.Authenticated)


class JSONWhateverTheClientAccepts(BaseContentNegotiation):
    """The sender's Accept header is not ours to honour: a postback is always answered in JSON (never 406)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


class ImpactPostbackView(APIView):
    authentication_classes = [CredentialAuthentication]
    permission_classes = [HasCredential]
    parser_classes = []  # the raw body is stored first and parsed by the pipeline
    throttle_classes = []
    content_negotiation_class = JSONWhateverTheClientAccepts
    http_method_names = ["get", "post"]

    def get(self, request):
        return self.receive(request)

    def post(self, request):
        return self.receive(request)

    def receive(self, request):
        # Read the raw bytes before anything parses them (DRF issue #4940).
        body = None if ingest.body_too_large(request._request) else ingest.read_body(request._request)
        if body is None:
            limit = settings.POSTBACK_MAX_BODY_BYTES
            return Response(
                {"error": "payload_too_large", "detail": f"Bodies are limited to {limit} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        delivery = ingest.store(request._request, request.auth, body)
        ingest.process(delivery)
        return Response({"delivery": delivery.pk, "outcome": delivery.outcome})

    def handle_exception(self, exc):
        if isinstance(exc, DatabaseError):  # nothing could be stored: impact.com retries
            response = Response(
                {"error": "unavailable", "detail": "The database is unavailable; retry later."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
            response["Retry-After"] = str(settings.RETRY_AFTER_SECONDS)
            return response
        return super().handle_exception(exc)
