"""What the privacy tests look for: every spelling of a number, the plain hashes a careless id
would be made of, and everything a Redis server holds, as text."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable

import phonenumbers
import redis

SEPARATORS = ("|", ",", ";", ":", " ", "", "\t", "\n", "-", "_")


def spellings(e164: str) -> list[str]:
    """E.164 with and without ``+``, national with trunk prefix 8 and 0, national digits only."""
    national = str(phonenumbers.parse(e164).national_number)
    digits = e164.lstrip("+")
    return list(dict.fromkeys([e164, digits, "8" + national, "0" + national, national]))


def plain_hashes(e164: str, shown_fields: Iterable[str]) -> set[str]:
    """MD5, SHA-1 and SHA-256 (hex) of every spelling, alone and joined with the fields the UI
    shows next to an id (every choice of up to four of them, in the order given, and all of
    them), with common separators, the number first or last."""
    fields = [f for f in shown_fields if f]
    groups = [list(c) for size in range(1, 5) for c in itertools.combinations(fields, size)] + [fields]
    texts = set()
    for spelling in spellings(e164):
        texts.add(spelling)
        for group in groups:
            for sep in SEPARATORS:
                texts.add(sep.join([spelling, *group]))
                texts.add(sep.join([*group, spelling]))
    found = set()
    for text in texts:
        data = text.encode()
        for algorithm in ("md5", "sha1", "sha256"):
            found.add(hashlib.new(algorithm, data).hexdigest())
    return found


def hash_hits(hashes: set[str], haystack: str, prefix: int = 12) -> list[str]:
    """Hashes whose first ``prefix`` hex digits occur in ``haystack`` (ids often truncate)."""
    windows = set()
    for run in re.findall(rf"[0-9a-f]{{{prefix},}}", haystack.lower()):
        windows.update(run[i:i + prefix] for i in range(len(run) - prefix + 1))
    return sorted(h for h in hashes if h[:prefix] in windows)


def keyspace_text(client: redis.Redis) -> str:
    """Every key name and every value in the server, as one text."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(key.decode(errors="replace"))
        if kind == "string":
            parts.append(client.get(key).decode(errors="replace"))
        elif kind == "hash":
            parts.extend(f"{k.decode(errors='replace')}={v.decode(errors='replace')}"
                         for k, v in client.hgetall(key).items())
        elif kind == "set":
            parts.extend(m.decode(errors="replace") for m in client.smembers(key))
        elif kind == "zset":
            parts.extend(m.decode(errors="replace") for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == "list":
            parts.extend(m.decode(errors="replace") for m in client.lrange(key, 0, -1))
        elif kind == "stream":
            for entry_id, fields in client.xrange(key):
                parts.append(entry_id.decode())
                parts.extend(f"{k.decode(errors='replace')}={v.decode(errors='replace')}" for k, v in fields.items())
    return "\n".join(parts)
