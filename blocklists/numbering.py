"""Where a registry number lives: shard and bit offset, derived from its digits alone.

A number is split into its country calling code (``cc``) and national significant number
(``nsn``, leading zeros kept). The last ``tail`` digits of the nsn give the bit offset; the
digits before them name the shard, so one shard is a bitmap of ``10**tail`` numbers:

- NANP (``+1``): shard = area code, offset = the 7-digit exchange + line, minus 2,000,000
  because exchanges start at 200 — 8 million bits (1 MB) per area code.
- everyone else: shard = all but the last 6 digits (the first 4 digits of a 10-digit UK
  nsn), offset = the last 6 digits — at most 10**6 bits (125 kB) per shard.

Invariant: the mapping is a bijection between valid nsns and (shard, offset), because the
integer ``key = int("1" + nsn)`` keeps the nsn's length and leading zeros, and
``shard_id = key // 10**tail`` and ``offset = key % 10**tail - base``.
Registry numbers are public list data: they are stored as bit positions, not hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

_CALLING_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
NO_SHARD = "-"  # a shard name no registry ever writes: reading it answers "not listed"


class BadNumber(ValueError):
    """A registry line does not hold a number of the registry's country."""


@dataclass(frozen=True, slots=True)
class Scheme:
    """How the numbers of one country calling code are sharded."""

    cc: str
    tail: int  # nsn digits that form the bit offset
    base: int  # smallest valid offset value (NANP exchanges start at 200)
    min_len: int
    max_len: int
    trunk: str  # national trunk prefix written before the nsn in national format

    @property
    def shard_bits(self) -> int:
        return 10**self.tail - self.base

    def key(self, nsn: str) -> int:
        return int("1" + nsn)

    def shard_name(self, shard_id: int) -> str:
        return f"{self.cc}:{str(shard_id)[1:]}"

    def shard_id(self, name: str) -> int:
        cc, _, prefix = name.partition(":")
        if cc != self.cc or not prefix.isdigit():
            raise ValueError(f"shard {name!r} does not belong to +{self.cc}")
        return int("1" + prefix)

    def locate(self, nsn: str) -> tuple[str, int]:
        key = self.key(nsn)
        shard_id, rest = divmod(key, 10**self.tail)
        return self.shard_name(shard_id), rest - self.base

    def e164(self, shard_id: int, offset: int) -> str:
        key = shard_id * 10**self.tail + offset + self.base
        return f"+{self.cc}{str(key)[1:]}"

    def check_nsn(self, nsn: str) -> str:
        """Return ``nsn`` if it can be a number of this scheme, else raise BadNumber."""
        if not nsn.isdigit() or not nsn.isascii():
            raise BadNumber("not digits")
        if not self.min_len <= len(nsn) <= self.max_len:
            raise BadNumber(f"{len(nsn)} digits; a +{self.cc} number has {self.min_len}-{self.max_len}")
        if self.cc == "1":
            if nsn[0] in "01":
                raise BadNumber("area code must start with 2-9")
            if nsn[3] in "01":
                raise BadNumber("exchange must start with 2-9")
        elif self.trunk == "0" and nsn[0] == "0":
            raise BadNumber("national number must not start with 0")
        return nsn

    def nsn_from_digits(self, digits: str, international: bool = False) -> str:
        """Turn a spelled number (separators already removed) into this scheme's nsn.

        Accepted: ``+<cc><nsn>`` (``international``), ``00<cc><nsn>``, ``<trunk><nsn>``,
        ``<nsn>`` and ``<cc><nsn>`` — the first reading that has a valid length wins.
        """
        cc = self.cc
        if international:
            if not digits.startswith(cc):
                raise BadNumber(f"not a +{cc} number")
            return self.check_nsn(digits[len(cc):])
        fits = range(self.min_len, self.max_len + 1)
        if digits.startswith("00" + cc) and len(digits) - 2 - len(cc) in fits:
            return self.check_nsn(digits[2 + len(cc):])
        if self.trunk and digits.startswith(self.trunk) and len(digits) - len(self.trunk) in fits:
            return self.check_nsn(digits[len(self.trunk):])
        if len(digits) in fits:
            return self.check_nsn(digits)
        if digits.startswith(cc) and len(digits) - len(cc) in fits:
            return self.check_nsn(digits[len(cc):])
        raise BadNumber(f"{len(digits)} digits is not a +{cc} number")


NANP = Scheme(cc="1", tail=7, base=2_000_000, min_len=10, max_len=10, trunk="1")
GB = Scheme(cc="44", tail=6, base=0, min_len=7, max_len=10, trunk="0")
_KNOWN = {"1": NANP, "44": GB}


@lru_cache(maxsize=512)
def scheme_for_cc(cc: str) -> Scheme:
    if cc in _KNOWN:
        return _KNOWN[cc]
    if cc not in _CALLING_CODES:
        raise ValueError(f"+{cc} is not a country calling code")
    region = phonenumbers.region_code_for_country_code(int(cc))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = (metadata.national_prefix or "") if metadata else ""
    return Scheme(cc=cc, tail=6, base=0, min_len=7, max_len=15 - len(cc), trunk=trunk)


def scheme_for_country(country: str) -> Scheme:
    """The scheme of an ISO 3166 country (``US``, ``GB``…); raises ValueError if unknown."""
    code = phonenumbers.country_code_for_region(country.upper())
    if not code:
        raise ValueError(f"{country!r} is not a country with a calling code")
    return scheme_for_cc(str(code))


def split_e164(e164: str) -> tuple[str, str]:
    """``+442079460958`` -> (``44``, ``2079460958``); raises ValueError for non-E.164 text."""
    if not e164.startswith("+") or not e164[1:].isdigit():
        raise ValueError("not E.164")
    for size in (1, 2, 3):
        if e164[1:1 + size] in _CALLING_CODES:
            return e164[1:1 + size], e164[1 + size:]
    raise ValueError("unknown country calling code")


def locate_e164(e164: str) -> tuple[str, int]:
    """(shard name, bit offset) of a number, or (NO_SHARD, 0) when no registry can hold it."""
    try:
        cc, nsn = split_e164(e164)
        scheme = scheme_for_cc(cc)
        return scheme.locate(scheme.check_nsn(nsn))
    except ValueError:
        return NO_SHARD, 0
