"""Secrets kept at rest: credentials as keyed hashes, the impact.com Auth Token encrypted.

- `credential_hash()`: HMAC-SHA256 with CREDENTIAL_HASH_KEY over the secret's SHA-256 digest. A
  stolen table cannot be checked against guesses without the key, and the plain digests stored
  before keys existed were converted without knowing a single secret (`keyed_hash()`).
- `encrypt()` / `decrypt()`: Fernet (AES-128-CBC and HMAC-SHA256) with ENCRYPTION_KEY. Several
  keys rotate: the first encrypts, every one decrypts.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class Undecryptable(ValueError):
    """Encrypted with a key that is not in ENCRYPTION_KEY any more (or not encrypted at all)."""


def keyed_hash(digest: str) -> str:
    return hmac.new(settings.CREDENTIAL_HASH_KEY.encode(), digest.encode(), hashlib.sha256).hexdigest()


def credential_hash(secret: str) -> str:
    return keyed_hash(hashlib.sha256(secret.encode()).hexdigest())


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.ENCRYPTION_KEYS])


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise Undecryptable("not readable with the keys in ENCRYPTION_KEY") from exc
