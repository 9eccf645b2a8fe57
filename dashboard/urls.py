from django.urls import path

from . import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("brands/", views.brands, name="brands"),
    path("brands/<path:campaign_id>/", views.brand_timeline, name="brand"),
    path("actions/<path:action_id>/", views.action_detail, name="action"),
    path("deliveries/", views.deliveries, name="deliveries"),
    path("deliveries/replay/", views.replay, name="replay"),
    path("deliveries/refused/", views.refused, name="refused"),
]
