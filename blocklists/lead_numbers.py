"""A lead list's numbers located for the scrub: E.164 and geography, as :func:`normalize` answers.

NANP validity, time zones and geocoding depend only on the first six national digits outside the
few area codes :func:`callscreen.nanp.deep_areas` names, so each area code + exchange is answered
once, by :class:`callscreen.nanp.NanpExchanges` (``normalize``'s answer from the compiled
metadata, without a full parse), and reused for the other numbers: a table of the exchanges seen
(kept between runs in a file, see :func:`exchange_table_path`). Numbers of the deep area codes go
through :func:`normalize` one by one.

Invariants:

- :meth:`LeadNumbers.locate_batch` gives, for every raw number, what :func:`normalize` gives
  (E.164, region, time zones, subdivision), or nothing where it raises; a test compares them
  over every area code in many spellings, one by one and as one batch;
- plainly spelled NANP numbers (``+1`` and ten digits, or ten digits, with or without the
  leading 1, in a NANP campaign; ASCII separators removed) are read with numpy over the whole
  batch; every other spelling goes through :func:`normalize` one by one;
- a geography is named by a small integer, stable for the life of the object (:attr:`geographies`):
  what a scrub remembers decisions by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from callscreen.files import write_atomically
from callscreen.nanp import Exchange, NanpExchanges, deep_areas
from callscreen.numbers import MAX_INPUT_LENGTH, SEPARATORS, InvalidNumber, PhoneNumber, normalize

Geography = tuple[str, tuple[str, ...], str | None]  # region, time zones, subdivision: all a decision reads

_ASCII_SEPARATORS = bytes(c for c in range(128) if SEPARATORS.fullmatch(chr(c)))  # the ASCII part of them
_NANP_REGIONS = frozenset(COUNTRY_CODE_TO_REGION_CODE[1])  # the regions sharing +1
_UNSEEN, _INVALID, _DEEP = -1, -2, -3  # in the exchange index: not looked up yet; not valid; not by exchange
_POWERS = 10 ** np.arange(9, -1, -1, dtype=np.int64)
_TEN = np.arange(10)


def is_nanp_region(region: str) -> bool:
    return region.upper() in _NANP_REGIONS


def exchange_table_path(folder: Path) -> Path:
    """Where the NANP exchange table is kept; the name carries the phonenumbers version, so an
    upgrade of its metadata starts a new table."""
    return folder / f"nanp-exchanges-{phonenumbers.__version__}.json"


def load_exchanges(path: Path) -> dict[str, Exchange]:
    """The persisted exchange table ({} if missing or unreadable: it is only a cache)."""
    try:
        data = json.loads(path.read_text())
        return {k: None if v is None else (v[0], tuple(v[1]), v[2]) for k, v in data.items()}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return {}


def save_exchanges(path: Path, table: dict[str, Exchange]) -> None:
    """Write the table atomically (temp file + rename); OSError if it cannot be written."""
    write_atomically(path, json.dumps({k: None if v is None else [v[0], list(v[1]), v[2]] for k, v in table.items()},
                                      separators=(",", ":")))


@dataclass(slots=True)
class Located:
    """The raw numbers of a batch that are numbers: their places in the batch (ascending), E.164
    and geography (an index into :attr:`LeadNumbers.geographies`)."""

    rows: np.ndarray
    e164s: list[str]
    geographies: np.ndarray


class LeadNumbers:
    """:func:`normalize` for a scrub's batches (see the module's invariants)."""

    def __init__(self, default_region: str, known: dict[str, Exchange] | None = None) -> None:
        self.default_region = default_region
        self.nanp_default = is_nanp_region(default_region)
        self.geographies: list[Geography] = []
        self._geography_ids: dict[Geography, int] = {}
        self._index = np.full(10**6, _UNSEEN, dtype=np.int32)  # area code + exchange -> geography
        for prefix, entry in (known or {}).items():
            if len(prefix) == 6 and prefix.isdigit() and prefix.isascii():
                self._index[int(prefix)] = _INVALID if entry is None else self._geography_id(entry)
        for area in deep_areas():  # (a table kept by an earlier version may hold their exchanges)
            self._index[area * 1000:(area + 1) * 1000] = _DEEP
        self.learned: dict[str, Exchange] = {}  # exchanges resolved here (to persist)
        self._exchanges: NanpExchanges | None = None

    def __call__(self, raw: str) -> PhoneNumber:
        located = self.locate_batch([raw])
        if not len(located.rows):
            raise InvalidNumber(f"not a valid number: {raw!r}")
        return PhoneNumber(located.e164s[0], *self.geographies[int(located.geographies[0])])

    def locate_batch(self, raws: Sequence[str]) -> Located:
        """The numbers among ``raws`` (see :class:`Located`)."""
        count = len(raws)
        texts = _without_separators(raws)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=count)
        chars = np.array(texts, dtype="U12").view(np.uint32).reshape(count, 12).astype(np.int64) - 48
        digit = (chars >= 0) & (chars <= 9)
        plus_one = (lengths == 12) & (chars[:, 0] == ord("+") - 48) & (chars[:, 1] == 1) & digit[:, 1:].all(axis=1)
        fast = plus_one
        start = np.where(plus_one, 2, 0)
        if self.nanp_default:
            ten = (lengths == 10) & digit[:, :10].all(axis=1)
            eleven = (lengths == 11) & (chars[:, 0] == 1) & digit[:, :11].all(axis=1)
            fast = plus_one | ten | eleven
            start[eleven] = 1
        raw_lengths = np.fromiter(map(len, raws), dtype=np.int64, count=count)
        places = np.flatnonzero(fast & (raw_lengths <= MAX_INPUT_LENGTH))  # normalize refuses longer input
        national = np.take_along_axis(chars[places], start[places, None] + _TEN, axis=1) @ _POWERS
        geographies = self._geographies_of(national)
        valid = geographies >= 0
        rows = places[valid].tolist()
        e164s = [f"+1{n:010d}" for n in national[valid].tolist()]
        found = geographies[valid].tolist()
        slow = np.flatnonzero(~fast).tolist() + places[geographies == _DEEP].tolist()
        if slow:
            for place in slow:
                number = self._normalized(raws[place])
                if number is not None:
                    rows.append(place)
                    e164s.append(number.e164)
                    found.append(self._geography_id((number.region, number.timezones, number.subdivision)))
            order = sorted(range(len(rows)), key=rows.__getitem__)
            rows, e164s, found = [rows[k] for k in order], [e164s[k] for k in order], [found[k] for k in order]
        return Located(np.array(rows, dtype=np.intp), e164s, np.array(found, dtype=np.int64))

    def _geographies_of(self, national: np.ndarray) -> np.ndarray:
        """The geography of each ten-digit national number's area code + exchange (negative: not
        a valid number, or :data:`_DEEP`: not answered by exchange); an exchange not seen yet is
        learned from its first number."""
        exchanges = national // 10**4
        found = self._index[exchanges]
        unseen = found == _UNSEEN
        if unseen.any():
            new, first = np.unique(exchanges[unseen], return_index=True)
            self._learn(new, [f"{number:010d}" for number in national[unseen][first].tolist()])
            found = self._index[exchanges]
        return found

    def _learn(self, exchanges: np.ndarray, nsns: list[str]) -> None:
        """Answer ``exchanges`` (area code + exchange; ``nsns`` holds a number of each) and keep the answers."""
        if self._exchanges is None:
            self._exchanges = NanpExchanges.shared()
        entries = self._exchanges.exchanges(nsns)
        self.learned.update(zip([nsn[:6] for nsn in nsns], entries, strict=True))
        geography_id = self._geography_id
        self._index[exchanges] = [_INVALID if entry is None else geography_id(entry) for entry in entries]

    def _geography_id(self, geography: Geography) -> int:
        found = self._geography_ids.get(geography)
        if found is None:
            found = self._geography_ids[geography] = len(self.geographies)
            self.geographies.append(geography)
        return found

    def _normalized(self, raw: str) -> PhoneNumber | None:
        try:
            return normalize(raw, self.default_region)
        except InvalidNumber:
            return None


def _without_separators(raws: Sequence[str]) -> list[str]:
    """Each raw number with its separators removed; ASCII spellings for the whole batch at once."""
    joined = "\0".join(raws)
    if joined.isascii() and joined.count("\0") == len(raws) - 1:
        return joined.encode().translate(None, _ASCII_SEPARATORS).decode().split("\0")
    return [raw.encode().translate(None, _ASCII_SEPARATORS).decode() if raw.isascii()
            else SEPARATORS.sub("", raw.strip()) for raw in raws]
