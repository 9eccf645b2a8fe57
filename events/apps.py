"""The events app."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created

from events.common import pg_arrays


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Postbacks and actions"

    def ready(self):
        connection_created.connect(pg_arrays.register, dispatch_uid="events.pg_arrays")
