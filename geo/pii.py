"""Personal data at rest: ID numbers are stored so that a database dump alone reveals nothing.

Each ID number is kept three ways: AES-GCM ciphertext (read back by those allowed to), an
HMAC-SHA256 digest (to find a person by ID number without decrypting every row) and a masked
form (``310106********123X``) for roles that may know a number exists but not read it. Both keys
are derived from the settings' secret key with HKDF: rotating that key means re-encrypting.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE = 12


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gridmap", info=purpose).derive(
        secret.encode()
    )


class Vault:
    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(_derive(secret, b"id-number encryption"))
        self._mac = _derive(secret, b"id-number digest")

    def seal(self, value: str) -> tuple[bytes, bytes, str]:
        """(ciphertext, digest, masked form) of an ID number."""
        nonce = os.urandom(NONCE)
        return (
            nonce + self._aead.encrypt(nonce, value.encode(), None),
            self.digest(value),
            mask_id(value),
        )

    def open(self, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], None).decode()

    def digest(self, value: str) -> bytes:
        return hmac.new(self._mac, value.strip().upper().encode(), hashlib.sha256).digest()


def mask_id(value: str) -> str:
    """``310106199001011234`` → ``310106********1234``: region kept, birth date hidden."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]
