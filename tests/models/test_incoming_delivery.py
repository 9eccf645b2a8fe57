"""IncomingDelivery: the endpoint's narrow view of the delivery table, kept in step with Delivery."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from events.models import Credential, Delivery, IncomingDelivery


def columns(model) -> dict[str, tuple]:
    return {f.column: (f.db_type(connection), f.null) for f in model._meta.concrete_fields}


def test_its_columns_are_deliverys_with_the_same_types():
    incoming, delivery = columns(IncomingDelivery), columns(Delivery)
    assert IncomingDelivery._meta.db_table == Delivery._meta.db_table
    assert incoming == {column: delivery[column] for column in incoming}


def test_every_column_it_leaves_out_has_a_database_default_or_may_be_null():
    # A field added to Delivery without one would make every postback fail to store.
    written = set(columns(IncomingDelivery))
    left_out = [f for f in Delivery._meta.concrete_fields if f.column not in written]
    assert left_out
    assert [f.name for f in left_out if not (f.null or f.has_db_default())] == []


def test_a_stored_row_is_a_received_delivery_with_deliverys_defaults(db):
    credential, _ = Credential.create_with_secret(label="impact")
    now = timezone.now()
    incoming = IncomingDelivery.objects.create(
        received_at=now,
        method="GET",
        path="/postbacks/impact/",
        query_string="ActionId=A1",
        content_type="",
        body=b"",
        headers={"Host": "example.com"},
        remote_addr="127.0.0.1",
        credential=credential,
    )
    stored = Delivery.objects.get(pk=incoming.pk)
    fresh = Delivery()  # the Python defaults Delivery would have written itself
    for name in ("outcome", "reason", "traceback", "processed_at", "attempts", "action_id", "event_id"):
        assert getattr(stored, name) == getattr(fresh, name), name
    assert (stored.processing_ms, stored.pruned_at) == (None, None)
    assert (stored.received_at, stored.headers, stored.credential) == (now, {"Host": "example.com"}, credential)
    assert list(Delivery.objects.pending()) == [stored]
