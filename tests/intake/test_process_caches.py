"""What a worker process keeps between postbacks (credentials, allow-list, last use) outlives a
change made elsewhere by at most AUTH_CONFIG_MAX_AGE (one second): every change below is made with a
queryset update, as another process (an admin in another worker) would, after this process has read
and kept the old state. Brands are read once per batch, so a brand changed meanwhile is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from django.utils import timezone

from events.models import (
    Action,
    ActionEvent,
    AllowedNetwork,
    Brand,
    Credential,
    DelayAlert,
    Delivery,
    hash_secret,
)


def test_a_credential_revoked_after_it_was_read_is_refused_within_a_second(send, credential, later):
    assert send(ActionId="A1").status_code == 200  # this process now keeps the credential
    Credential.create_with_secret(label="other")
    Credential.objects.filter(pk=credential.pk).update(active=False)
    assert send(ActionId="A2").status_code == 200  # its copy is at most AUTH_CONFIG_MAX_AGE old
    later()
    response = send(ActionId="A3")
    assert response.status_code == 401
    assert response.json()["reason"] == "invalid_credential"
    assert sorted(Delivery.objects.values_list("action_id", flat=True)) == ["A1", "A2"]


def test_a_secret_replaced_after_it_was_read_is_refused_and_the_new_one_accepted_at_once(send, credential, later):
    assert send(ActionId="A1").status_code == 200
    Credential.objects.filter(pk=credential.pk).update(secret_hash=hash_secret("the-new-secret-0123456789"))
    # The new secret is refused by this process's copy, so the refusal is decided again from a fresh read.
    assert send(ActionId="A2", headers={credential.header_name: "the-new-secret-0123456789"}).status_code == 200
    assert send(ActionId="A3").status_code == 401
    later()
    assert send(ActionId="A4").status_code == 401
    assert sorted(Delivery.objects.values_list("action_id", flat=True)) == ["A1", "A2"]


def test_a_credential_that_expired_after_it_was_read_is_refused_within_a_second(send, credential, later):
    assert send(ActionId="A1").status_code == 200
    Credential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    later()
    response = send(ActionId="A2")
    assert response.status_code == 401
    assert response.json()["reason"] == "expired_credential"


def test_a_credential_added_after_the_others_were_read_is_accepted_at_once(send, credential):
    assert send(ActionId="A1").status_code == 200
    _, secret = Credential.create_with_secret(label="added", header_name="X-Added")
    assert send(ActionId="A2", headers={"X-Added": secret}).status_code == 200


def test_an_allow_list_set_after_it_was_read_applies_within_a_second(send, credential, later):
    assert send(ActionId="A1").status_code == 200  # no allow-list yet: every address may send
    network = AllowedNetwork.objects.create(cidr="203.0.113.0/24")
    later()
    response = send(ActionId="A2")
    assert response.status_code == 403
    assert response.json()["reason"] == "address_not_allowed"
    AllowedNetwork.objects.filter(pk=network.pk).update(cidr="127.0.0.0/8")  # the test client's address
    assert send(ActionId="A3").status_code == 200  # a refusal is decided again from a fresh read
    assert sorted(Delivery.objects.values_list("action_id", flat=True)) == ["A1", "A3"]


def _delete_brand_and_its_history(campaign_id: str) -> int:
    brand = Brand.objects.get(campaign_id=campaign_id)
    brand_id = brand.pk
    Delivery.objects.update(event=None)
    DelayAlert.objects.filter(brand=brand).delete()  # the fixed CreationDate makes every postback late
    ActionEvent.objects.filter(brand=brand).delete()
    Action.objects.filter(brand=brand).delete()
    brand.delete()
    return brand_id


def test_a_brand_deleted_after_it_was_read_is_made_again(send):
    assert send(ActionId="A1", CampaignId="1001").status_code == 200  # this process now keeps brand 1001
    _delete_brand_and_its_history("1001")
    assert send(ActionId="A2", CampaignId="1001").delivery.outcome == "applied"
    assert Action.objects.get(action_id="A2").brand.campaign_id == "1001"


def test_a_brand_id_given_to_another_brand_is_not_mistaken_for_the_one_read(send):
    assert send(ActionId="A1", CampaignId="1001").status_code == 200
    old_id = _delete_brand_and_its_history("1001")
    Brand.objects.create(pk=old_id, campaign_id="2002", name="Another brand")  # SQLite may reuse an id
    assert send(ActionId="A2", CampaignId="1001").delivery.outcome == "applied"
    assert Action.objects.get(action_id="A2").brand.campaign_id == "1001"
    assert Brand.objects.get(pk=old_id).actions.count() == 0


def test_a_brand_renamed_by_a_postback_is_renamed(send):
    send(ActionId="A1", CampaignId="1001", CampaignName="Acme Shoes")
    send(ActionId="A2", CampaignId="1001", CampaignName="Acme Shoes & Boots")
    assert Brand.objects.get(campaign_id="1001").name == "Acme Shoes & Boots"
    send(ActionId="A3", CampaignId="1001", CampaignName="")  # an empty name changes nothing
    assert Brand.objects.get(campaign_id="1001").name == "Acme Shoes & Boots"


def test_last_use_is_written_at_most_once_a_minute(send, credential):
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        send(ActionId="A1")
    credential.refresh_from_db()
    assert credential.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        send(ActionId="A2")
    credential.refresh_from_db()
    assert credential.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        send(ActionId="A3")
    credential.refresh_from_db()
    assert credential.last_used_at == start + timedelta(seconds=61)
    assert credential.delivery_set.count() == 3
