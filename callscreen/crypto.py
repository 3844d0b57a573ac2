"""Keyed hashing, keyed ids and envelope encryption of personal data.

Invariants:
- The store never sees a number in clear. Lookup keys use HMAC-SHA256 under ``hash_key``
  (a plain hash of a ten-digit space is reversible by brute force).
- No identifier is derived from personal data without a key: :meth:`NumberVault.keyed_id`
  is HMAC-SHA256 under a subkey of ``hash_key``, so an id made from a number and the fields
  shown beside it cannot be brute-forced by anyone without the key.
- Every personal field is sealed (AES-256-GCM) under its *subject's data key*: a random
  256-bit key per number digest. The data key is stored only *wrapped* by the master
  ``encryption_key`` (AES-256-GCM, the digest as associated data, the master key's id in
  the clear prefix so rotation knows which master key wrapped it). Deleting a subject's
  wrapped key makes every copy of that subject's personal data unreadable, wherever it
  lies (hashes, streams, AOF files, backups): crypto-shredding.
- A ciphertext is bound to its digest and to the field it holds (associated data), so it
  cannot be moved to another number's record or into another field.

Token formats (url-safe base64 bodies; the prefixes never occur in base64 output):
- wrapped data key  ``w1.<key id>.<b64(nonce ‖ AES-GCM(master, data key))>``
- sealed field      ``s1.<b64(nonce ‖ AES-GCM(data key, text))>``
- legacy sealed number (before per-subject keys): ``<b64(nonce ‖ AES-GCM(master, e164))>``,
  readable with :meth:`NumberVault.open` until ``callscreen migrate`` re-seals it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SHA256_BLOCK = 64
DIGEST_HEX_CHARS = 32  # 128 bits: collision-free for any realistic number space
KEYED_ID_HEX_CHARS = 24  # 96 bits: ids are unique per keyed content, not secrets themselves
NONCE_BYTES = 12
DATA_KEY_BYTES = 32
WRAPPED_PREFIX = "w1."
SEALED_PREFIX = "s1."


class SealError(ValueError):
    """A sealed value could not be opened: wrong key, erased subject, or altered data."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SealError(f"{what} is not base64") from exc


def _subkey(key: bytes, label: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"callscreen/" + label).derive(key)


def key_id(encryption_key: bytes) -> str:
    """Public fingerprint of a master key (8 hex): names the key that wrapped a data key."""
    return hmac.digest(encryption_key, b"callscreen/key-id", "sha256").hex()[:8]


def wrapped_key_id(wrapped: str) -> str:
    """The id of the master key that wrapped ``wrapped`` (for rotation)."""
    if not wrapped.startswith(WRAPPED_PREFIX) or wrapped.count(".") != 2:
        raise SealError("not a wrapped data key")
    return wrapped.split(".")[1]


def is_subject_sealed(token: str) -> bool:
    """True for a value sealed under a subject's data key (as opposed to a legacy seal)."""
    return token.startswith(SEALED_PREFIX)


class MasterKeySource(Protocol):
    """Where a vault learns, during a rotation, which master key is in force (first) and which
    master keys may still unwrap (see :class:`callscreen.rotation.MasterKeys`)."""

    def current(self) -> tuple[bytes, tuple[bytes, ...]]: ...


class HashKeySource(Protocol):
    """Where a vault learns, during a hash key rotation, the hash key in force, the one being
    retired (None when no rotation is under way), and the retired keys kept only to find the
    erasure markers of erased persons (see :class:`callscreen.rotation.HashKeys`)."""

    def current(self) -> tuple[bytes, bytes | None, tuple[bytes, ...]]: ...


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the inner and outer HMAC pads of ``key`` (RFC 2104): HMAC of a
    message = outer(inner(message)), the same bytes as ``hmac.digest(key, message, "sha256")``."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return hashlib.sha256(key.translate(hmac.trans_36)), hashlib.sha256(key.translate(hmac.trans_5C))


def digest_under(hash_key: bytes, e164: str) -> str:
    """A number's digest under one hash key."""
    return hmac.digest(hash_key, e164.encode("ascii"), "sha256").hex()[:DIGEST_HEX_CHARS]


class NumberVault:
    """Holds the keys and does every keyed operation on personal data; no I/O.

    ``previous_encryption_keys`` are retired master keys still accepted for unwrapping (so
    data keys wrapped before a rotation stay readable until they are re-wrapped).
    """

    def __init__(self, hash_key: bytes, encryption_key: bytes,
                 previous_encryption_keys: Sequence[bytes] = (), *, masters: MasterKeySource | None = None,
                 hashes: HashKeySource | None = None) -> None:
        if len(hash_key) < 32:
            raise ValueError("hash_key must be at least 32 bytes")
        for key in (encryption_key, *previous_encryption_keys):
            if len(key) != 32:
                raise ValueError("encryption_key must be exactly 32 bytes")
        self._hash_key = hash_key
        self._pads: dict[bytes, tuple[Any, Any]] = {}
        self._id_key = _subkey(hash_key, b"keyed-id")
        self._aead = AESGCM(encryption_key)  # legacy seals only
        self.masters = masters
        self.hashes = hashes
        self._seen: tuple[bytes, tuple[bytes, ...]] | None = None
        self._use_masters(encryption_key, (*previous_encryption_keys, encryption_key))

    def _use_masters(self, active: bytes, readable: Sequence[bytes]) -> None:
        for key in readable:
            if len(key) != 32:
                raise ValueError("encryption_key must be exactly 32 bytes")
        wrappers = {key_id(k): AESGCM(_subkey(k, b"wrap")) for k in readable if k != active}
        wrappers[key_id(active)] = AESGCM(_subkey(active, b"wrap"))
        self._wrappers, self.key_id = wrappers, key_id(active)

    def _sync_masters(self) -> None:
        """Follow a rotation: wrap under the master key in force, unwrap only with keys not retired."""
        if self.masters is None:
            return
        current = self.masters.current()
        if current != self._seen:
            self._use_masters(*current)
            self._seen = current

    # --- keyed hashes and ids ---------------------------------------------------------------

    def digest(self, e164: str) -> str:
        """The keyed hash that names every per-number key (lower-case hex), under the hash key
        in force."""
        return digest_under(self._hash_key_in_force(), e164)

    def _hash_key_in_force(self) -> bytes:
        return self._hash_key if self.hashes is None else self.hashes.current()[0]

    def digests(self, e164s: Sequence[str]) -> list[str]:
        """:meth:`digest` of many numbers: the hash key in force is read once, and its HMAC pads
        are hashed once (RFC 2104), not once per number."""
        active = self._hash_key_in_force()
        pads = self._pads.get(active)
        if pads is None:
            pads = self._pads[active] = _hmac_pads(active)
        inner_copy, outer_copy = pads[0].copy, pads[1].copy
        size = DIGEST_HEX_CHARS // 2
        out = []
        for e164 in e164s:
            inner = inner_copy()
            inner.update(e164.encode("ascii"))
            outer = outer_copy()
            outer.update(inner.digest())
            out.append(outer.digest()[:size].hex())
        return out

    def previous_digest(self, e164: str) -> str | None:
        """While the hash key is being rotated, the number's digest under the key being retired
        (facts are read under both); None otherwise."""
        previous = None if self.hashes is None else self.hashes.current()[1]
        return None if previous is None else digest_under(previous, e164)

    def erasure_digests(self, e164: str) -> tuple[str, ...]:
        """Digests under retired hash keys that still name erased persons (see docs/privacy.md)."""
        kept = () if self.hashes is None else self.hashes.current()[2]
        return tuple(digest_under(key, e164) for key in kept)

    def keyed_id(self, prefix: str, *parts: str) -> str:
        """A stable id for content that may include personal data: ``<prefix>-<24 hex>``.

        Same parts, same id (re-imports stay idempotent); without ``hash_key`` the parts
        cannot be recovered from the id, however few the candidates."""
        text = "\x1f".join(parts).encode("utf-8")
        return f"{prefix}-{hmac.digest(self._id_key, text, 'sha256').hex()[:KEYED_ID_HEX_CHARS]}"

    def alias(self, old_id: str) -> str:
        """Keyed name under which a retired id is remembered (the old id itself is not stored)."""
        return hmac.digest(self._id_key, b"alias\x00" + old_id.encode("utf-8"), "sha256").hex()[:32]

    # --- subject data keys --------------------------------------------------------------------

    def new_data_key(self) -> bytes:
        return os.urandom(DATA_KEY_BYTES)

    def wrap_key(self, digest: str, data_key: bytes) -> str:
        """Wrap a subject's data key under the current master key, bound to ``digest``."""
        self._sync_masters()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._wrappers[self.key_id].encrypt(nonce, data_key, b"subject-key\x00" + digest.encode())
        return f"{WRAPPED_PREFIX}{self.key_id}.{_b64(nonce + sealed)}"

    def unwrap_key(self, digest: str, wrapped: str) -> bytes:
        """The data key inside ``wrapped``; SealError if no known master key opens it."""
        self._sync_masters()
        kid = wrapped_key_id(wrapped)
        wrapper = self._wrappers.get(kid)
        if wrapper is None:
            raise SealError(f"data key wrapped by unknown master key {kid}")
        blob = _unb64(wrapped.split(".", 2)[2], "wrapped data key")
        try:
            return wrapper.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"subject-key\x00" + digest.encode())
        except InvalidTag as exc:
            raise SealError("wrapped data key does not verify (wrong key or altered data)") from exc

    def rewrap_key(self, digest: str, wrapped: str) -> str:
        """``wrapped`` re-wrapped under the current master key (unchanged if it already is)."""
        self._sync_masters()
        if wrapped_key_id(wrapped) == self.key_id:
            return wrapped
        return self.wrap_key(digest, self.unwrap_key(digest, wrapped))

    # --- fields sealed under a data key -------------------------------------------------------

    @staticmethod
    def seal_with(data_key: bytes, digest: str, field: str, text: str) -> str:
        """Seal ``text`` (one personal field named ``field``) under a subject's data key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, text.encode("utf-8"), f"{digest}\x00{field}".encode())
        return SEALED_PREFIX + _b64(nonce + sealed)

    @staticmethod
    def open_with(data_key: bytes, digest: str, field: str, token: str) -> str:
        if not is_subject_sealed(token):
            raise SealError("not a subject-sealed value")
        blob = _unb64(token[len(SEALED_PREFIX):], "sealed value")
        try:
            plain = AESGCM(data_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{digest}\x00{field}".encode())
        except InvalidTag as exc:
            raise SealError("sealed value does not verify (wrong key or altered data)") from exc
        return plain.decode("utf-8")

    # --- legacy seals (master key directly) ---------------------------------------------------

    def seal(self, e164: str) -> str:
        """Legacy format: ``e164`` under the master key. Kept for tests of the migration only."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, e164.encode("ascii"), self.digest(e164).encode("ascii"))
        return _b64(nonce + sealed)

    def open(self, token: str, digest: str) -> str:
        """Decrypt a legacy sealed number, checking that it belongs to ``digest``."""
        blob = _unb64(token, "sealed number")
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, digest.encode("ascii")).decode("ascii")
        except InvalidTag as exc:
            raise SealError("sealed number does not verify (wrong key or altered data)") from exc
