"""Site-wide middleware."""

from __future__ import annotations

import logging
from urllib.parse import unquote_to_bytes

from csp.utils import build_policy
from django.conf import settings
from django.contrib.auth import logout
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Views that keep what they are sent as it came: the postback endpoint stores a NUL (escaped), and
# reads its raw body itself.
KEEPS_RAW_INPUT = {"impact-postback"}


class ContentSecurityPolicyMiddleware:
    """The Content-Security-Policy header on every response, from CONTENT_SECURITY_POLICY (rendered
    by django-csp, once).

    django-csp's own middleware renders the policy again for every response, so that a view may
    change it or add a nonce; no view here does, and that rendering was a twentieth of a postback's
    time on the request path.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = policy_in_written_order()  # "" without a policy: no header

    def __call__(self, request):
        response = self.get_response(request)
        # Django's debug pages style themselves inline (as django-csp leaves them).
        debug_page = settings.DEBUG and response.status_code in (404, 500)
        if self.policy and not debug_page and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response


def policy_in_written_order() -> str:
    """django-csp's policy, its directives in the order CONTENT_SECURITY_POLICY lists them.

    django-csp joins them in the order of a set, which string hashing makes differ from process to
    process: each gunicorn worker sent the same policy in an order of its own.
    """
    written = list((settings.CONTENT_SECURITY_POLICY or {}).get("DIRECTIVES", {}))
    directives = [d for d in build_policy().split("; ") if d]

    def position(directive: str) -> int:
        name = directive.split(" ", 1)[0]
        return written.index(name) if name in written else len(written)

    return "; ".join(sorted(directives, key=position))


def _has_nul(encoded: str) -> bool:
    return b"\x00" in unquote_to_bytes(encoded)


class RejectNulMiddleware:
    """A NUL byte in the path, the query string or a form body answers 400.

    PostgreSQL text cannot hold one, so no lookup could match, and the database would raise (a 500)
    where a page or admin searched for it. Nothing stored contains one: the postback endpoint, the
    only door that takes it, stores it escaped.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is not None and match.url_name in KEEPS_RAW_INPUT:
            return None
        fields = request.POST.lists() if request.method == "POST" else []  # form-encoded or multipart
        posted = any("\x00" in name or any("\x00" in value for value in values) for name, values in fields)
        if posted or "\x00" in request.path_info or _has_nul(request.META.get("QUERY_STRING", "")):
            return HttpResponseBadRequest("NUL bytes are not accepted here.\n", content_type="text/plain")
        return None


class DatabaseUnavailableMiddleware:
    """A page whose database is down, restarting or locked past its timeout answers 503 with
    Retry-After: the request was fine and may be tried again, which a 500 would deny.

    The page is rendered without the request's context: its context processors read the database.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        # Not DataError or IntegrityError: those say what was asked was wrong, a bug to see as a 500.
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("%s answered 503, database error: %s", request.path, exception, exc_info=exception)
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(settings.RETRY_AFTER_SECONDS)
        return response


class StaffOTPMiddleware:
    """With STAFF_REQUIRE_OTP, a staff session not verified by a one-time code is logged out.

    The login forms already refuse staff without a code; this ends the sessions opened before the
    setting was switched on (or by any other door), on their next request. After django-otp's
    OTPMiddleware, which sets `request.user.is_verified`.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if settings.STAFF_REQUIRE_OTP and user.is_authenticated and user.is_staff and not user.is_verified():
            logout(request)
        return self.get_response(request)
