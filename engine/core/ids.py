"""Public ids: prefixed random strings. Integer keys never leave the process."""
from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_public_id(prefix: str, length: int = 20) -> str:
    if not prefix.isalpha():
        raise ValueError("prefix must be letters, e.g. 'mer'")
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))
