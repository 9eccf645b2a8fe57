"""The dashboard's Django app: its template tags and URLs, no models of its own."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
