"""What is stored of a secret: credentials as keyed hashes with a 4-character hint, the impact.com
Auth Token encrypted; and the migration that converted what was stored before."""

from __future__ import annotations

import hashlib
import importlib
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from events.common import crypto
from events.models import Credential, ImpactAccount, hash_secret
from events.models.fields import UnreadableSecret
from tests.conftest import ENDPOINT, postback_params

migration = importlib.import_module("events.migrations.0006_hardening")
SECRET = "pasted-by-support-0123456789-wxyz"
TOKEN = "impact-auth-token-abcdefgh-LAST"


def stored_token(account) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM events_impactaccount WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def test_a_credential_hash_is_keyed_not_a_bare_sha256(db, settings):
    credential, _ = Credential.create_with_secret(label="x", secret=SECRET)
    assert credential.secret_hash != hashlib.sha256(SECRET.encode()).hexdigest()
    assert credential.secret_hash == hash_secret(SECRET)
    settings.CREDENTIAL_HASH_KEY = "another-key-" + "k" * 32
    assert hash_secret(SECRET) != credential.secret_hash


def test_the_hint_is_the_last_four_characters_and_only_for_long_secrets(db):
    credential, _ = Credential.create_with_secret(label="x", secret=SECRET)
    assert credential.secret_hint == "wxyz"
    assert str(credential) == "x (X-Postback-Token, …wxyz)"
    assert Credential.create_with_secret(label="short", secret="short-secret")[0].secret_hint == ""


def test_a_credential_stored_as_a_plain_digest_still_works_once_migrated(client, db):
    credential, _ = Credential.create_with_secret(label="old", secret=SECRET)
    Credential.objects.filter(pk=credential.pk).update(
        secret_hash=hashlib.sha256(SECRET.encode()).hexdigest(), secret_hint=SECRET[:4]
    )
    migration.key_credential_hashes(apps, None)
    credential.refresh_from_db()
    assert (credential.secret_hash, credential.secret_hint) == (hash_secret(SECRET), "")
    response = client.get(f"{ENDPOINT}?{urlencode(postback_params())}", headers={"X-Postback-Token": SECRET})
    assert response.status_code == 200, response.content


def test_the_auth_token_is_encrypted_at_rest_and_read_back_in_clear(db):
    account = ImpactAccount.objects.create(account_sid="IRabc", auth_token=TOKEN)
    raw = stored_token(account)
    assert TOKEN not in raw and crypto.decrypt(raw) == TOKEN
    assert ImpactAccount.objects.get().auth_token == TOKEN
    assert ImpactAccount.objects.get().token_hint == "…LAST"


def test_a_token_stored_in_clear_is_encrypted_by_the_migration(db):
    before = MigrationLoader(connection).project_state(("events", "0005_forwarding")).apps
    Plain = before.get_model("events", "ImpactAccount")
    account = Plain.objects.create(account_sid="IRabc", auth_token=TOKEN)
    assert stored_token(account) == TOKEN
    migration.encrypt_auth_tokens(before, None)
    assert crypto.decrypt(stored_token(account)) == TOKEN
    assert ImpactAccount.objects.get().auth_token == TOKEN


def test_keys_rotate_the_first_encrypts_and_every_one_decrypts(db, settings):
    old = settings.ENCRYPTION_KEYS[0]
    account = ImpactAccount.objects.create(account_sid="IRabc", auth_token=TOKEN)
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old]
    assert ImpactAccount.objects.get().auth_token == TOKEN
    account.save()
    settings.ENCRYPTION_KEYS = settings.ENCRYPTION_KEYS[:1]
    assert ImpactAccount.objects.get().auth_token == TOKEN


def test_a_token_no_key_can_read_is_asked_for_again_never_overwritten(admin_client, settings):
    account = ImpactAccount.objects.create(account_sid="IRabc", auth_token=TOKEN)
    ciphertext = stored_token(account)
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    account = ImpactAccount.objects.get()
    assert isinstance(account.auth_token, UnreadableSecret) and not account.auth_token
    assert "enter the token again" in account.token_hint
    with pytest.raises(ValueError, match="could not be decrypted"), transaction.atomic():
        account.save()
    url = f"/admin/events/impactaccount/{account.pk}/change/"
    assert "enter the token again" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"label": "impact.com", "account_sid": "IRabc", "token": "", "active": "on"})
    assert response.status_code == 200 and "The Auth Token is required." in response.content.decode()
    assert stored_token(account) == ciphertext
