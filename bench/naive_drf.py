"""A second baseline for `bench/ingest.py`: a naive one-insert DRF view in this project's stack.

The product's settings (middleware, DRF, database options) with a URLconf of one DRF `APIView`
that finds the ActionId and runs the bare app's `INSERT ... ON CONFLICT DO NOTHING` through
Django's connection: no authentication, no parsing, no history. What the framework alone costs,
so the pipeline can be compared with it as well as with the bare WSGI app.

    gunicorn -c postbacks_site/gunicorn.conf.py bench.naive_drf:application
"""

from __future__ import annotations

import os

from django.db import connection
from django.urls import re_path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.bare_app import INSERT


class NaiveView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        action_id = request.query_params.get("ActionId", "")
        if not action_id:
            return Response({"error": "ActionId missing"}, status=400)
        with connection.cursor() as cursor:
            cursor.execute(INSERT, [action_id, request.META.get("QUERY_STRING", "")])
        return Response({"outcome": "stored"})


urlpatterns = [re_path(r"", NaiveView.as_view())]  # whatever path the Lua script sends


def _application():
    os.environ["DJANGO_SETTINGS_MODULE"] = "postbacks_site.settings"
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    settings.ROOT_URLCONF = __name__
    return application


application = _application()
