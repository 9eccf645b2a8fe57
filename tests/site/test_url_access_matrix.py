"""Every URL pattern, walked as an anonymous visitor, a plain (non-staff) user, and staff without
permissions; every admin view as staff with view permissions only.

Each name must be classified below: a new URL without an access decision fails the test.
Login is required everywhere except the postback endpoint, /healthz, the OpenAPI schema,
/metrics (its own token) and Django's login/password-reset pages. Every change (STAFF_POSTS)
needs staff and a Django model permission, refused on the server whatever the page shows: staff
without it change nothing, on the dashboard or in admin.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver

from events.models import Delivery

PUBLIC = {
    "impact-postback": {401},  # a credential, not a login
    "api-actions": {401, 403},  # staff session or a credential
    "api-schema": {200},
    "metrics": {401, 403},  # METRICS_TOKEN or an allowed address
    "healthz": {200, 503},  # 503 until the watcher has run
    "login": {200},
    "logout": {405},  # POST only
    # Served only where mail is delivered: the tests' in-memory backend is not (tests/accounts).
    "password_reset": {404},
    "password_reset_done": {404},
    "password_reset_confirm": {404},
    "password_reset_complete": {404},
}
LOGIN_PAGES = {"overview", "brands", "brand", "action", "deliveries", "refused", "alerts", "alert-detail", "alert-csv"}
LOGIN_PAGES |= {"password_change", "password_change_done", "locking", "performance", "search"}
STAFF_PAGES = {"setup", "forwarding", "forwarding-endpoint", "forwarding-messages"}
STAFF_POSTS = {"replay", "setup-test-postback", "setup-test-postback-remove", "alert-acknowledge", "alert-resolve"}
STAFF_POSTS |= {"forwarding-test", "forwarding-replay", "forwarding-replay-failed"}
EXAMPLE = {"pk": "1", "campaign_id": "1001", "action_id": "A1", "uidb64": "MQ", "token": "set-password"}
EXAMPLE |= {"message_pk": "1"}


def _walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            yield namespace + (pattern.name or ""), prefix + str(pattern.pattern)


def site_urls() -> dict[str, str]:
    """Name -> a concrete path for every pattern outside admin."""
    urls = {}
    for name, route in _walk(get_resolver().url_patterns):
        if name.startswith("admin:"):
            continue
        urls[name] = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: EXAMPLE[m.group(1)], route)
    return urls


def admin_urls() -> list[str]:
    """Every admin view: index, each app, and each registered model's list, add, change, history, delete."""
    urls = ["/admin/", "/admin/password_change/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls += [base, base + "add/", base + "1/change/", base + "1/history/", base + "1/delete/"]
        urls.append(f"/admin/{model._meta.app_label}/")
    return sorted(set(urls))


def test_every_url_pattern_has_an_access_decision():
    assert set(site_urls()) == set(PUBLIC) | LOGIN_PAGES | STAFF_PAGES | STAFF_POSTS


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(site_urls()))
def test_anonymous_visitors_reach_only_public_urls(client, name):
    path = site_urls()[name]
    response = client.get(path)
    if name in PUBLIC:
        assert response.status_code in PUBLIC[name], (path, response.status_code)
    elif name in STAFF_POSTS:
        assert response.status_code in (302, 405), (path, response.status_code)
        response = client.post(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
    else:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(LOGIN_PAGES | STAFF_PAGES | STAFF_POSTS))
def test_a_plain_user_sees_pages_but_no_staff_action(client, django_user_model, name):
    client.force_login(django_user_model.objects.create_user("viewer", password="not-staff-1234"))
    path = site_urls()[name]
    if name in STAFF_POSTS:
        assert client.post(path).status_code == 403, path
    elif name in STAFF_PAGES:
        assert client.get(path).status_code == 403, path
    else:
        # Detail pages of objects that do not exist answer 404; nothing answers 5xx or redirects to login.
        assert client.get(path).status_code in (200, 404), path


@pytest.mark.django_db
@pytest.mark.parametrize("path", admin_urls())
def test_admin_needs_a_staff_login(client, django_user_model, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path
    client.force_login(django_user_model.objects.create_user("viewer", password="not-staff-1234"))
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(LOGIN_PAGES | STAFF_PAGES | STAFF_POSTS))
def test_staff_without_permissions_see_pages_but_change_nothing(client, django_user_model, name):
    client.force_login(django_user_model.objects.create_user("staff", password="staff-no-perms-1", is_staff=True))
    path = site_urls()[name]
    if name in STAFF_POSTS:
        assert client.post(path).status_code == 403, path
    else:
        assert client.get(path).status_code in (200, 404), path


def view_only_staff(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="staff-view-only-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


@pytest.mark.django_db
@pytest.mark.parametrize("path", [p for p in admin_urls() if p.endswith(("/add/", "/change/", "/delete/"))])
def test_staff_with_view_permissions_only_change_nothing_in_admin(client, django_user_model, path):
    client.force_login(view_only_staff(django_user_model))
    assert client.post(path, {}).status_code == 403, path


@pytest.mark.django_db
def test_the_admin_replay_action_needs_the_replay_permission(client, django_user_model):
    failed = Delivery.objects.create(method="GET", path="/postbacks/impact/", outcome="failed", reason="boom")
    client.force_login(view_only_staff(django_user_model))
    changelist = "/admin/events/delivery/"
    assert "replay_deliveries" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "replay_deliveries", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert (failed.outcome, failed.attempts) == ("failed", 0)
