"""The postback endpoint's own middleware chain (settings.ENDPOINT_MIDDLEWARE), for Django's handlers."""

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

# Every URL under it is a sender's (the postback endpoints), never a person's.
ENDPOINT_PREFIX = "/postbacks/"


def for_endpoint(environ) -> bool:
    return environ.get("PATH_INFO", "").startswith(ENDPOINT_PREFIX)


class EndpointChain:
    """A Django handler that builds its chain from settings.ENDPOINT_MIDDLEWARE.

    Django builds a handler's chain from settings.MIDDLEWARE alone, so that setting is swapped for
    the moment this handler builds its own: once, when the application is loaded.
    """

    def load_middleware(self, is_async=False):
        site = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.ENDPOINT_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site


class EndpointHandler(EndpointChain, WSGIHandler):
    pass
