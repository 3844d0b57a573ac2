"""Key rings: several versions of one secret, so a key can be rotated while screening goes on.

A secret (``CALLSCREEN_HASH_KEY``, ``CALLSCREEN_ENCRYPTION_KEY``, ``CALLSCREEN_LOG_KEY`` or the
file their ``*_FILE`` names) holds one key or a ring: entries separated by commas or new lines,
each ``ID:KEY`` (hex or base64; ``#`` starts a comment line), oldest first. A bare key's id is its
fingerprint. Which key is *active* is not configuration but state in Redis, moved only by
``callscreen keys rotate`` (see ``docs/privacy.md``): until then the oldest key of the ring is
active, so adding a key to every process's ring changes nothing by itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KeyringError(ValueError):
    """A key ring is malformed (bad entry, duplicate id) or lacks the key asked for."""


def fingerprint(material: bytes) -> str:
    """A short public name for a key (not reversible to the key)."""
    return "k" + hashlib.sha256(b"callscreen key id\n" + material).hexdigest()[:10]


def parse_key(name: str, text: str) -> bytes:
    """Hex or base64 key material."""
    text = text.strip()
    try:
        if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{name}: not hex or base64 key material") from exc


@dataclass(frozen=True)
class Keyring:
    """Versions of one secret, oldest first; ids are unique."""

    name: str
    entries: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self) -> None:
        ids = [kid for kid, _ in self.entries]
        if len(set(ids)) != len(ids):
            raise KeyringError(f"{self.name}: the same key id appears twice")

    @classmethod
    def single(cls, name: str, material: bytes) -> Keyring:
        return cls(name, ((fingerprint(material), material),) if material else ())

    @classmethod
    def parse(cls, name: str, text: str) -> Keyring:
        entries = []
        for raw in re.split(r"[,\n]", text):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            kid, sep, material = entry.partition(":")
            if not sep:
                key = parse_key(name, kid)
                entries.append((fingerprint(key), key))
                continue
            if not KEY_ID.match(kid.strip()):
                raise KeyringError(f"{name}: key id {kid.strip()!r} must be 1-32 of A-Z a-z 0-9 _ . -")
            entries.append((kid.strip(), parse_key(f"{name} key {kid.strip()}", material)))
        return cls(name, tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __contains__(self, kid: object) -> bool:
        return any(k == kid for k, _ in self.entries)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return iter(self.entries)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.entries)

    @property
    def oldest(self) -> str:
        if not self.entries:
            raise KeyringError(f"{self.name}: no key configured")
        return self.entries[0][0]

    @property
    def newest(self) -> str:
        if not self.entries:
            raise KeyringError(f"{self.name}: no key configured")
        return self.entries[-1][0]

    def get(self, kid: str) -> bytes:
        for k, material in self.entries:
            if k == kid:
                return material
        raise KeyringError(f"{self.name}: key {kid!r} is not in this process's key ring")

    def format(self) -> str:
        """The ring as a secret's text (one ``ID:hex`` line per key)."""
        return "".join(f"{kid}:{material.hex()}\n" for kid, material in self.entries)
