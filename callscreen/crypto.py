"""Keyed hashing and encryption of phone numbers.

Invariants: the store never sees a number in clear. Lookup keys use
HMAC-SHA256 under ``hash_key`` (a plain hash of a ten-digit space is reversible by
brute force); a number that must be shown again is sealed with AES-256-GCM under
``encryption_key``, bound to its digest as associated data so a ciphertext cannot be
moved to another number's record.
"""

from __future__ import annotations

import base64
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DIGEST_HEX_CHARS = 32  # 128 bits: collision-free for any realistic number space
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed number could not be opened: wrong key, or the data was altered."""


class NumberVault:
    """Derives lookup digests and seals/opens numbers; holds the keys, nothing else."""

    def __init__(self, hash_key: bytes, encryption_key: bytes) -> None:
        if len(hash_key) < 32:
            raise ValueError("hash_key must be at least 32 bytes")
        if len(encryption_key) != 32:
            raise ValueError("encryption_key must be exactly 32 bytes")
        self._hash_key = hash_key
        self._aead = AESGCM(encryption_key)

    def digest(self, e164: str) -> str:
        """The keyed hash that names every per-number key (lower-case hex)."""
        return hmac.digest(self._hash_key, e164.encode("ascii"), "sha256").hex()[:DIGEST_HEX_CHARS]

    def seal(self, e164: str) -> str:
        """Encrypt ``e164``; the result is url-safe base64 of nonce + ciphertext."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, e164.encode("ascii"), self.digest(e164).encode("ascii"))
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, digest: str) -> str:
        """Decrypt a sealed number, checking that it belongs to ``digest``."""
        try:
            blob = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise SealError("sealed number is not base64") from exc
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, digest.encode("ascii")).decode("ascii")
        except InvalidTag as exc:
            raise SealError("sealed number does not verify (wrong key or altered data)") from exc
