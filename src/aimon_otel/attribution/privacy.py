"""Identities that must not leave the process as they are: ``user.id`` and the API key.

``user.id`` is hashed before it leaves the process (``AIMON_USER_ID_HASH=hmac-sha256``, ``AIMON_USER_ID_KEY``).

The same id always gives the same value, so per-user spend, budgets and dashboards still work,
while spans, metrics, logs and ledger keys never carry the raw id. The key is a secret of the
deployment: without it the hash cannot be reversed by trying likely ids (e-mail addresses).
``user_id_hasher(settings)("alice@example.com")`` gives what aimon-otel records for that user,
so an operator can look one up (``aimon-otel budgets status --user`` does it for you).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from aimon_otel.config import Settings

HASHED_CHARS = 16
"""Hex characters kept (64 bits): unique across any realistic number of users, short on metric labels."""
_CACHE_SIZE = 10_000


def user_id_hasher(settings: Settings) -> Callable[[str], str | None] | None:
    """What ``user.id`` values become under ``settings`` (None: left out); None when they are recorded as they are."""
    if settings.user_id_hash is None:
        return None
    if not settings.user_id_key:
        return _left_out
    key = settings.user_id_key.encode()
    cache: dict[str, str] = {}

    def hashed(user_id: str) -> str:
        found = cache.get(user_id)
        if found is None:
            found = hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:HASHED_CHARS]
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[user_id] = found
        return found

    return hashed


KEY_ID_CHARS = 12
"""Hex characters of an API key's fingerprint (48 bits): enough to tell a deployment's keys apart."""
_KEY_CACHE_SIZE = 64


def key_fingerprint(key: str, salt: str) -> str:
    """``aimon.api_key.id`` of ``key``: HMAC-SHA256 keyed with the deployment's salt, first 12 hex characters.

    The salt keeps the fingerprint from being checked against a leaked key list by anyone without it;
    ``aimon-otel key-id`` computes the same value so an operator can find a key's spend.
    """
    return hmac.new(salt.encode(), key.encode(), hashlib.sha256).hexdigest()[:KEY_ID_CHARS]


def key_fingerprinter(settings: Settings) -> Callable[[str], str] | None:
    """What the keys of calls are recorded as (``aimon.api_key.id``); None without ``AIMON_KEY_SALT``."""
    salt = settings.key_salt
    if not salt:
        return None
    cache: dict[str, str] = {}

    def fingerprint(key: str) -> str:
        found = cache.get(key)
        if found is None:
            found = key_fingerprint(key, salt)
            if len(cache) >= _KEY_CACHE_SIZE:
                cache.clear()
            cache[key] = found
        return found

    return fingerprint


def _left_out(user_id: str) -> None:
    """Hashing was asked for without a key: the id is not recorded at all (never raw)."""
    return None
