"""Shared builders. Tests talk to the real endpoint through Django's client or real HTTP."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.db import DatabaseError, connection
from django.db.models import Q
from django.test import Client
from django.test.client import ClientHandler

from events.intake import credentials
from events.models import Credential, Delivery
from events.processing import process_next_batch, process_pending
from postbacks_site.handlers import EndpointChain, for_endpoint

ENDPOINT = "/postbacks/impact/"


class EndpointClientHandler(EndpointChain, ClientHandler):
    pass


class SiteClient(Client):
    """Django's test client, sending the postback endpoint's requests through the endpoint's own
    middleware chain as postbacks_site.wsgi does: every test of the endpoint runs the chain
    production runs."""

    def __init__(self, enforce_csrf_checks=False, *args, **kwargs):
        super().__init__(enforce_csrf_checks, *args, **kwargs)
        site, endpoint = self.handler, EndpointClientHandler(enforce_csrf_checks)
        self.handler = lambda environ: (endpoint if for_endpoint(environ) else site)(environ)


@pytest.fixture
def client():
    return SiteClient()


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    from django.db import connections

    if connections["default"].vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test starts as a new worker would: the database is rolled back between tests (and
    SQLite then hands out the same ids again), so nothing a process remembers may carry over."""
    credentials.forget_cached()
    yield
    credentials.forget_cached()


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """Tests render templates without running collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def later(monkeypatch):
    """Moves this worker's monotonic clock forward by hand: `later(seconds)`."""
    now = [1000.0]
    monkeypatch.setattr(credentials, "clock", lambda: now[0])

    def _later(seconds: float = credentials.AUTH_CONFIG_MAX_AGE + 0.01) -> None:
        now[0] += seconds

    return _later


@pytest.fixture
def credential(db):
    """An active credential; `credential.secret` is the plain secret."""
    cred, secret = Credential.create_with_secret(label="test")
    cred.secret = secret
    return cred


def postback_params(action_id="A1", **overrides) -> dict[str, str]:
    """Parameters as impact.com fills the recommended GET template for a tracked action."""
    params = {
        "ActionId": action_id,
        "CampaignId": "1001",
        "CampaignName": "Acme Shoes",
        "ActionTrackerId": "7",
        "ActionTrackerName": "Online Sale",
        "Status": "PENDING",
        "Amount": "100.00",
        "Payout": "10.00",
        "Currency": "USD",
        "CreationDate": "2026-11-20T14:03:11-08:00",
        "EventDate": "2026-11-20T14:00:00-08:00",
    }
    params.update({k: v for k, v in overrides.items() if v is not None})
    for k in [k for k, v in overrides.items() if v is None]:
        params.pop(k, None)
    return params


@pytest.fixture
def store(client, credential):
    """Send one postback through the real endpoint (GET), and only that: it stays `received` until
    a processor applies it. Returns the response."""

    def _store(params=None, **overrides):
        params = params if params is not None else postback_params(**overrides)
        response = client.get(ENDPOINT + "?" + urlencode(params), headers={credential.header_name: credential.secret})
        assert response.json()["outcome"] == "received", response.content
        return response

    return _store


@pytest.fixture
def send(client, credential):
    """Send one postback through the real endpoint, then apply what is pending as a processor
    would; returns the response, with the stored delivery as it ended as `response.delivery`
    (None when nothing was stored)."""

    def _send(params=None, *, method="get", body=None, content_type=None, headers=None, **overrides):
        params = params if params is not None else postback_params(**overrides)
        headers = {credential.header_name: credential.secret} if headers is None else headers
        if method == "get":
            response = client.get(ENDPOINT + "?" + urlencode(params), headers=headers)
        elif method == "post-json":
            response = client.post(ENDPOINT, data=json.dumps(params), content_type="application/json", headers=headers)
        elif method == "post-form":
            response = client.post(
                ENDPOINT, data=urlencode(params), content_type="application/x-www-form-urlencoded", headers=headers
            )
        else:
            response = client.generic(
                method.upper(), ENDPOINT, data=body or b"", content_type=content_type, headers=headers
            )
        return processed(response)

    return _send


# Every change the dashboard offers needs one of these (dashboard/access.py).
OPERATOR_PERMISSIONS = (
    "events.replay_delivery",
    "events.acknowledge_delayalert",
    "events.add_credential",
    "events.delete_action",
    "events.delete_delivery",
    "events.replay_message",
    "events.send_test_message",
)


def grant(user, *perms: str) -> None:
    """Give `user` these permissions (`app_label.codename`)."""
    wanted = Q(pk__in=[])
    for perm in perms:
        app_label, codename = perm.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(wanted))
    assert len(found) == len(perms), perms
    user.user_permissions.add(*found)


@pytest.fixture
def processor():
    """A processor running beside the test (its own thread and connection), as `make run` starts
    one beside gunicorn: whatever is stored gets applied. Like `process_deliveries`, it carries on
    after a database error (on SQLite, a table the live server holds is "locked" at once)."""
    stop = threading.Event()

    def run():
        try:
            while not stop.is_set():
                try:
                    if process_next_batch(50) is None:
                        stop.wait(0.05)
                except DatabaseError:
                    connection.close()
                    stop.wait(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def processed(response):
    """Apply what is pending (as the processor does), and attach the response's delivery as it ended."""
    process_pending()
    stored = response.status_code == 200 and "delivery" in response.json()
    response.delivery = Delivery.objects.get(pk=response.json()["delivery"]) if stored else None
    return response


@pytest.fixture
def staff_client(client, django_user_model):
    """Logged in as staff with the operators' permissions, without hashing a password (fast)."""
    user = django_user_model(username="staff", is_staff=True)
    user.set_unusable_password()
    user.save()
    grant(user, *OPERATOR_PERMISSIONS)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def user_client(client, django_user_model):
    """Logged in as a non-staff user."""
    user = django_user_model(username="viewer")
    user.set_unusable_password()
    user.save()
    client.force_login(user)
    return client
