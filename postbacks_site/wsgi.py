"""The WSGI application gunicorn serves: the postback endpoint through its own, shorter middleware
chain (settings.ENDPOINT_MIDDLEWARE), every other URL through the site's (settings.MIDDLEWARE)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postbacks_site.settings")

site = get_wsgi_application()

from postbacks_site.handlers import EndpointHandler, for_endpoint  # noqa: E402 (needs Django set up)

endpoint = EndpointHandler()


def application(environ, start_response):
    return (endpoint if for_endpoint(environ) else site)(environ, start_response)
