"""Every URL: the postback endpoint, the actions API, schema, metrics, health, admin, accounts, pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from events.intake.actions_api import ActionStateView
from events.intake.endpoint import ImpactPostbackView
from events.reporting import health, metrics

from . import accounts

# Django's auth URLs (same names and paths), with the lockout-aware login page and the password
# reset pages served only where mail is delivered (postbacks_site.accounts).
account_urls = [
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password_reset/", accounts.needs_mail(accounts.PasswordResetView.as_view()), name="password_reset"),
    path(
        "password_reset/done/",
        accounts.needs_mail(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        accounts.needs_mail(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        accounts.needs_mail(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
]

# The admin's login asks for the one-time code too, and says nothing more than a wrong password would.
admin.site.login_form = accounts.AdminLoginForm
admin.site.login_template = "admin/login_with_code.html"

urlpatterns = [
    path("postbacks/impact/", ImpactPostbackView.as_view(), name="impact-postback"),
    path("api/actions/", ActionStateView.as_view(), name="api-actions"),
    # OpenAPI description of the endpoint, public (it describes a public endpoint, holds no secret).
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include(account_urls)),
    path("healthz", health.healthz, name="healthz"),
    path("", include("dashboard.urls")),
]
