"""A planted credential never lands anywhere: not in any table, not in the logs, not on admin pages.

The test sends the secret every way impact.com could (header, `token` parameter, in a JSON body, in
another header), sends a wrong secret too, trips the throttle, then reads back every row of every
table (all columns, whatever the model), every log record, and the admin pages of every model.
"""

from __future__ import annotations

import json
import logging
import uuid
from urllib.parse import quote, quote_plus, urlencode

import pytest
from django.apps import apps
from django.db import connection

from events.models import Credential, Delivery
from tests.conftest import ENDPOINT, postback_params


@pytest.fixture
def planted(db, settings):
    settings.POSTBACK_REFUSAL_THROTTLE_RATE = "3/m"
    secret = f"planted-{uuid.uuid4().hex}"
    credential, _ = Credential.create_with_secret(label="planted", secret=secret)
    return credential, secret, f"wrong-{uuid.uuid4().hex}"


def everything_in_the_database() -> str:
    """Every row of every table, as text (bytes decoded both ways)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("latin-1")
                    chunks.append(str(value))
    return "\n".join(chunks)


def test_a_planted_secret_is_found_nowhere(client, admin_client, planted, caplog):
    credential, secret, wrong = planted
    caplog.set_level(logging.DEBUG)
    header = {credential.header_name: secret}
    responses = [
        client.get(f"{ENDPOINT}?{urlencode(postback_params('S1'))}", headers=header),
        client.get(f"{ENDPOINT}?{urlencode({**postback_params('S2'), 'token': secret})}"),
        client.get(f"{ENDPOINT}?{urlencode({**postback_params('S3'), 'SubId1': secret})}", headers=header),
        client.post(
            ENDPOINT,
            data=json.dumps({**postback_params("S4"), "Note": f"x{secret}x"}),
            content_type="application/json",
            headers={**header, "X-Other": f"Bearer {secret}", "Authorization": f"Token {secret}"},
        ),
        client.post(
            ENDPOINT,
            data=f"ActionId=S5&Amount={secret}",
            content_type="application/x-www-form-urlencoded",
            headers=header,
        ),  # fmt: skip  (invalid: the secret was in a money field)
    ]
    assert [r.status_code for r in responses] == [200] * 5, [r.content for r in responses]
    for _ in range(5):  # refused, then throttled
        client.get(
            f"{ENDPOINT}?{urlencode({**postback_params('W'), 'token': wrong})}", headers={"X-Postback-Token": wrong}
        )
    assert Delivery.objects.count() == 5

    pages = [admin_client.get("/admin/")]
    for model in apps.get_models():
        opts = model._meta
        changelist = admin_client.get(f"/admin/{opts.app_label}/{opts.model_name}/")
        if changelist.status_code != 200:
            continue  # not registered in admin
        pages.append(changelist)
        for pk in model.objects.values_list("pk", flat=True)[:20]:
            pages.append(admin_client.get(f"/admin/{opts.app_label}/{opts.model_name}/{pk}/change/"))
    pages.append(admin_client.get("/"))
    assert len(pages) > 20
    assert all(page.status_code == 200 for page in pages), [p.status_code for p in pages]

    written = {
        "database": everything_in_the_database(),
        "logs": caplog.text + "\n".join(str(r.__dict__) for r in caplog.records),
        "admin pages": "\n".join(page.content.decode() for page in pages),
        "responses": "\n".join(r.content.decode() for r in responses),
    }
    for place, text in written.items():
        assert secret not in text, f"the credential leaked into {place}"
        assert wrong not in text, f"the refused secret leaked into {place}"
    # the secret really was sent: its redaction marker is what is stored
    assert "[redacted]" in written["database"]
    assert credential.secret_hash in written["database"]


def encodings(secret: str) -> list[str]:
    """Ways a sender may write the secret: percent-encoded (each way), JSON-escaped (each way)."""
    return [
        quote(secret, safe=""),
        quote(secret, safe="").lower(),
        quote_plus(secret),
        "".join(f"%{byte:02X}" for byte in secret.encode()),
        json.dumps(secret)[1:-1],
        json.dumps(secret).replace("/", "\\/")[1:-1],
        "".join(f"\\u{ord(char):04x}" for char in secret),
    ]


def test_every_encoding_of_the_presented_secret_is_redacted(client, db):
    secret = f"planted/+ é&={uuid.uuid4().hex}"
    credential, _ = Credential.create_with_secret(label="odd", secret=secret)
    header = {credential.header_name: secret}
    for n, encoded in enumerate(encodings(secret)):
        query = urlencode(postback_params(f"E{n}")) + f"&SubId2={encoded}"
        assert client.get(f"{ENDPOINT}?{query}", headers={**header, "X-Echo": encoded}).status_code == 200
        body = f'{{"ActionId": "J{n}", "CampaignId": "1001", "Note": "{encoded}"}}'  # the secret has no quote
        response = client.post(ENDPOINT, data=body, content_type="application/json", headers=header)
        assert response.status_code == 200, response.content
    stored = everything_in_the_database()
    for encoded in [secret, *encodings(secret)]:
        assert encoded not in stored, encoded
    assert stored.count("[redacted]") >= 3 * len(encodings(secret))


def test_the_header_of_a_credential_switched_off_or_deleted_is_still_redacted(client, db):
    old, old_secret = Credential.create_with_secret(label="old", header_name="X-Old-Token")
    gone, gone_secret = Credential.create_with_secret(label="gone", header_name="X-Gone-Token")
    new, new_secret = Credential.create_with_secret(label="new")
    Credential.objects.filter(pk=old.pk).update(active=False)
    gone.delete()
    headers = {"X-Old-Token": old_secret, "X-Gone-Token": gone_secret, new.header_name: new_secret}
    assert client.get(f"{ENDPOINT}?{urlencode(postback_params())}", headers=headers).status_code == 200
    stored = Delivery.objects.get().headers
    assert stored["X-Old-Token"] == stored["X-Gone-Token"] == "[redacted]"
    assert old_secret not in everything_in_the_database() and gone_secret not in everything_in_the_database()
