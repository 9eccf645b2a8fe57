"""Every URL: the postback endpoint, the actions API, schema, metrics, health, admin, accounts, pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from events.intake.actions_api import ActionStateView
from events.intake.endpoint import ImpactPostbackView
from events.reporting import health, metrics

urlpatterns = [
    path("postbacks/impact/", ImpactPostbackView.as_view(), name="impact-postback"),
    path("api/actions/", ActionStateView.as_view(), name="api-actions"),
    # OpenAPI description of the endpoint, public (it describes a public endpoint, holds no secret).
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("", include("dashboard.urls")),
]
