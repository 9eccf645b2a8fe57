from django.urls import path

from . import setup, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("setup/", setup.setup, name="setup"),
    path("setup/test-postback/", setup.send_test_postback, name="setup-test-postback"),
    path("setup/test-postback/remove/", setup.remove_test_postback, name="setup-test-postback-remove"),
]
