"""The dashboard's URLs: every page by name, each served by its page family in `dashboard.views`."""

from django.urls import path, register_converter
from django.urls.converters import PathConverter

from .views import actions, alerts, brands, deliveries, forwarding, overview, reports, setup


class AnyTextConverter(PathConverter):
    """Like `path:`, and a line break too: an ActionId or CampaignId is whatever impact.com sent."""

    regex = r"[\s\S]+"


register_converter(AnyTextConverter, "anytext")

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("brands/", brands.brands, name="brands"),
    path("brands/<anytext:campaign_id>/", brands.brand_timeline, name="brand"),
    path("actions/<anytext:action_id>/", actions.action_detail, name="action"),
    path("deliveries/", deliveries.deliveries, name="deliveries"),
    path("deliveries/replay/", deliveries.replay, name="replay"),
    path("deliveries/refused/", deliveries.refused, name="refused"),
    path("locking/", reports.locking, name="locking"),
    path("performance/", reports.performance, name="performance"),
    path("search/", reports.search, name="search"),
    path("setup/", setup.setup, name="setup"),
    path("setup/test-postback/", setup.send_test_postback, name="setup-test-postback"),
    path("setup/test-postback/remove/", setup.remove_test_postback, name="setup-test-postback-remove"),
    path("alerts/", alerts.alert_list, name="alerts"),
    path("alerts/<int:pk>/", alerts.alert_detail, name="alert-detail"),
    path("alerts/<int:pk>/evidence.csv", alerts.alert_csv, name="alert-csv"),
    path("alerts/<int:pk>/acknowledge", alerts.alert_acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve", alerts.alert_resolve, name="alert-resolve"),
    path("forwarding/", forwarding.endpoints, name="forwarding"),
    path("forwarding/<int:pk>/", forwarding.endpoint_detail, name="forwarding-endpoint"),
    path("forwarding/<int:pk>/messages/", forwarding.endpoint_messages, name="forwarding-messages"),
    path("forwarding/<int:pk>/test", forwarding.endpoint_test, name="forwarding-test"),
    path("forwarding/<int:pk>/replay-failed", forwarding.endpoint_replay_failed, name="forwarding-replay-failed"),
    path("forwarding/<int:pk>/messages/<int:message_pk>/replay", forwarding.message_replay, name="forwarding-replay"),
]
