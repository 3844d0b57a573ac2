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


# Move a chain's key epoch (used by the decision log and the access journal): only from the
# epoch the caller saw; entries of the old key all have stream ids up to ``after`` (the newest
# entry now), entries of the new one come after it. KEYS: epoch, epochs, stream. ARGV: current
# epoch ('' if none yet), new key id, the key id in force before any rotation.
ROTATE_EPOCH_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then current = '' end
if current ~= ARGV[1] then return {0, current} end
if current == '' then redis.call('HSETNX', KEYS[2], ARGV[3], '0-0') end
local newest = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local after = '0-0'
if #newest > 0 then after = newest[1][1] end
redis.call('HSET', KEYS[2], ARGV[2], after)
redis.call('SET', KEYS[1], ARGV[2])
return {1, after}
"""


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


def _sid(stream_id: str) -> tuple[int, int]:
    first, _, second = stream_id.partition("-")
    return int(first), int(second or 0)


class EpochHistory:
    """Which key checks which stream entry: the key the entry names, if that key was the one in
    force where the entry stands. ``history`` is key id -> stream id after which it was in force."""

    def __init__(self, ring: Keyring, history: dict[str, str]) -> None:
        self.ring = ring
        self.history = sorted((_sid(after), kid) for kid, after in history.items())
        self.initial = self.history[0][1] if self.history else (ring.oldest if ring else "")

    def misplaced(self, kid: str, stream_id: str) -> str | None:
        """Why an entry MAC'd under ``kid`` ("" before epochs) cannot stand at ``stream_id``, or None."""
        kid = kid or self.initial
        if not self.history:
            return None if kid == self.initial else f"MAC'd under key {kid}, but no rotation to it is on record"
        position, in_force = _sid(stream_id), self.initial
        for after, epoch in self.history:
            if position > after:
                in_force = epoch
        return None if kid == in_force else f"MAC'd under key {kid}, not the key in force there ({in_force})"

    def key(self, kid: str) -> bytes | None:
        """The material of ``kid`` ("" means the key in force before any rotation), if configured."""
        try:
            return self.ring.get(kid or self.initial)
        except KeyringError:
            return None
