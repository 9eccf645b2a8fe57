"""The postback endpoint runs its own middleware chain; every other URL runs the site's."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import RequestFactory

from events.models import Delivery
from postbacks_site.wsgi import application
from tests.conftest import ENDPOINT, postback_params


def call(path: str, headers: dict | None = None) -> tuple[str, dict, bytes]:
    """One request through the WSGI application gunicorn serves: (status, headers, body)."""
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = status, response_headers

    environ = RequestFactory().get(path, headers=headers or {}).environ
    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


def cookies(headers) -> list[str]:
    return [value.split("=", 1)[0].strip() for name, value in headers if name == "Set-Cookie"]


@pytest.mark.django_db(transaction=True)
def test_the_wsgi_application_stores_a_postback_and_serves_pages_with_the_sites_middleware(credential):
    status, headers, body = call(
        ENDPOINT + "?" + urlencode(postback_params("W1")), {credential.header_name: credential.secret}
    )
    assert status == "200 OK", body
    assert Delivery.objects.get().query_string.startswith("ActionId=W1")
    assert "Content-Security-Policy" in dict(headers)
    assert cookies(headers) == []

    status, headers, body = call(ENDPOINT + "?ActionId=W2", {credential.header_name: "wrong"})
    assert status == "401 Unauthorized"
    assert b'"reason"' in body
    assert Delivery.objects.count() == 1

    status, headers, _ = call("/accounts/login/")
    assert status == "200 OK"
    assert "csrftoken" in cookies(headers)  # the CSRF middleware ran


@pytest.mark.django_db
def test_the_endpoint_has_no_session_login_or_messages_and_the_pages_have_them(client, credential):
    response = client.get(
        ENDPOINT + "?" + urlencode(postback_params("W3")), headers={credential.header_name: credential.secret}
    )
    assert response.status_code == 200
    request = response.wsgi_request
    assert not hasattr(request, "session") and not hasattr(request, "_messages")

    request = client.get("/accounts/login/").wsgi_request
    assert hasattr(request, "session") and hasattr(request, "_messages") and hasattr(request, "user")
