"""Site-wide middleware."""

from django.conf import settings


class SecurityHeadersMiddleware:
    """Adds Content-Security-Policy (CONTENT_SECURITY_POLICY) to every response that has none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
