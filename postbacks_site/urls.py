from django.contrib import admin
from django.urls import include, path

from events.api import ImpactPostbackView

urlpatterns = [
    path("postbacks/impact/", ImpactPostbackView.as_view(), name="impact-postback"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("dashboard.urls")),
]
