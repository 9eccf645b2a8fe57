from django.contrib import admin
from django.urls import include, path

from events.api import ImpactPostbackView
from events.state_api import ActionStateView

urlpatterns = [
    path("postbacks/impact/", ImpactPostbackView.as_view(), name="impact-postback"),
    path("api/actions/", ActionStateView.as_view(), name="api-actions"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("dashboard.urls")),
]
