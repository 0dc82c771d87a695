"""Encryption at rest for license keys (Fernet/MultiFernet).

Plain text leaves the vault only through ``reveal``; nothing here logs or echoes a key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class VaultKeyError(ValueError):
    """An encryption key is malformed, or the keys cannot decrypt a stored token."""


def parse_keys(raw: str) -> list[str]:
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise VaultKeyError("no encryption key given")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            # Never echo the key itself: it is a secret too.
            raise VaultKeyError(
                f"encryption key #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; `licensebot keys generate` makes one)"
            ) from None
    return keys


def load_or_create_key_file(path: Path) -> tuple[list[str], bool]:
    """Keys from ``path``; a new key is written there (mode 0600) if it does not exist.

    Returns the keys and whether the file was created now.
    """
    if path.exists():
        return parse_keys(path.read_text(encoding="ascii")), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    # O_EXCL: two processes starting at once must not both write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_keys(path.read_text(encoding="ascii")), False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return [key], True


class Vault:
    """Encrypts with the first key; decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise VaultKeyError("no encryption key given")
        fernets = [Fernet(k.encode()) for k in keys]
        self._first = fernets[0]
        self._fernet = MultiFernet(fernets)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def reveal(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise VaultKeyError(
                "a stored key cannot be decrypted with LICENSEBOT_ENCRYPTION_KEYS"
            ) from None

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is already encrypted under the first key (rotation skips it)."""
        try:
            self._first.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise VaultKeyError(
                "a stored key cannot be decrypted with LICENSEBOT_ENCRYPTION_KEYS"
            ) from None
