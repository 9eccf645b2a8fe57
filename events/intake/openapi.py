"""The OpenAPI description of the postback endpoint (drf-spectacular), served at /api/schema/.

The endpoint has no serializer (it stores raw bytes first), so the parameters, bodies and
answers are described here by hand from impact.com's vocabulary (`events.impact`); a test runs
schemathesis against the description to keep the two in step.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from events import impact
from events.models import DEFAULT_HEADER, Outcome, RefusalReason


class CredentialScheme(OpenApiAuthenticationExtension):
    target_class = "events.intake.endpoint.CredentialAuthentication"
    name = ["credentialHeader", "credentialToken"]

    def get_security_requirement(self, auto_schema):
        return [{"credentialHeader": []}, {"credentialToken": []}]  # either one

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": DEFAULT_HEADER,
                "description": "The credential impact.com support adds as a custom header (the header name is "
                "per credential; this is the default).",
            },
            {
                "type": "apiKey",
                "in": "query",
                "name": "token",
                "description": "Fallback while support has not set up the header: `&token=<credential>`.",
            },
        ]


class OutcomeSerializer(serializers.Serializer):
    delivery = serializers.IntegerField(help_text="The stored delivery's id.")
    outcome = serializers.ChoiceField(
        choices=[Outcome.RECEIVED],
        help_text="received: stored and committed; a processor applies it within a second or so (its outcome "
        "then shows on the deliveries page and in GET /api/actions/).",
    )


class RefusalSerializer(serializers.Serializer):
    error = serializers.ChoiceField(choices=["unauthorized", "forbidden"])
    reason = serializers.ChoiceField(
        choices=[r.value for r in RefusalReason if r not in (RefusalReason.THROTTLED, RefusalReason.THROTTLE_FAILED)]
    )
    detail = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


PARAMETERS = [
    OpenApiParameter(
        macro,
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        required=False,
        description=f"impact.com's {{{macro}}} macro ({kind}). Any case, snake_case and common aliases work; "
        "empty or an unfilled {Macro} counts as absent.",
    )
    for macro, kind in impact.FIELDS.values()
]

BODY = {
    "application/json": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "A flat object of the publisher's parameter names and impact.com macros.",
    },
    "application/x-www-form-urlencoded": {"type": "object", "additionalProperties": {"type": "string"}},
    "application/xml": {"type": "string", "description": "<postback><ActionId>{ActionId}</ActionId>…</postback>"},
}

RESPONSES = {
    200: OpenApiResponse(
        OutcomeSerializer,
        description="Stored and committed, nothing else: the postback is applied afterwards, in a batch. "
        "A payload that turns out invalid is kept with its reason: a retry of the same bytes cannot succeed.",
        examples=[OpenApiExample("received", value={"delivery": 42, "outcome": "received"})],
    ),
    401: OpenApiResponse(RefusalSerializer, description="No valid credential; counted and recorded (no secret)."),
    403: OpenApiResponse(RefusalSerializer, description="The source address is not in the allow-list."),
    405: OpenApiResponse(DetailSerializer, description="Only GET and POST are accepted."),
    413: OpenApiResponse(ErrorSerializer, description="Body over POSTBACK_MAX_BODY_BYTES (from Content-Length)."),
    414: OpenApiResponse(ErrorSerializer, description="Query string over POSTBACK_MAX_BODY_BYTES characters."),
    429: OpenApiResponse(
        DetailSerializer,
        description="Too many refused postbacks from this address (Retry-After says when to retry). "
        "A valid credential is never throttled.",
    ),
    503: OpenApiResponse(ErrorSerializer, description="The database is unavailable; nothing stored (Retry-After)."),
}


def _receive(method: str, summary: str, request):
    return extend_schema(
        operation_id=f"postback_{method}", summary=summary, parameters=PARAMETERS, request=request, responses=RESPONSES
    )


receive_get = _receive("get", "Receive a postback (GET, values in the query string; recommended)", None)
receive_post = _receive(
    "post", "Receive a postback (POST, JSON, form or XML body; query parameters are read too)", BODY
)
