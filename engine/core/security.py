"""Secrets: API keys (shown once, stored hashed) and login passwords.

API keys are 32 random bytes, so a single SHA-256 is enough to store them (nothing to brute
force) and fast enough to check on every request. Passwords are human-chosen and get a slow,
salted hash (werkzeug's scrypt).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

API_KEY_PREFIX = "rpk"


def new_api_key() -> tuple[str, str, str]:
    """Return (full key to show once, lookup prefix, sha256 hex of the key)."""
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = f"{API_KEY_PREFIX}_{lookup}_{secret}"
    return key, lookup, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def split_api_key(key: str) -> str | None:
    """The lookup part of a well-formed key, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def api_key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    return generate_password_hash(password)


def password_matches(password: str, stored_hash: str) -> bool:
    return check_password_hash(stored_hash, password)
