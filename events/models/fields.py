"""Model fields of the project's own: text kept encrypted at rest."""

from __future__ import annotations

from django.db import models

from events.common import crypto


class UnreadableSecret(str):
    """What an encrypted value reads as when no key in ENCRYPTION_KEY decrypts it: empty (falsy),
    so forms ask for it again, and never saved back over the value it stands for."""

    def __new__(cls):
        return super().__new__(cls, "")


class EncryptedTextField(models.TextField):
    """Text encrypted with ENCRYPTION_KEY in the database (events.common.crypto), clear in Python."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return crypto.decrypt(value)
        except crypto.Undecryptable:
            return UnreadableSecret()

    def get_prep_value(self, value):
        if isinstance(value, UnreadableSecret):
            raise ValueError(f"{self.name} could not be decrypted with ENCRYPTION_KEY: enter it again")
        value = super().get_prep_value(value)
        return crypto.encrypt(value) if value else value
