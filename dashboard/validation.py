"""Field-by-field validation shared by the web forms and the JSON API.

Invariant: every value that reaches the store has been checked for type, length and
characters here; anything wrong produces one clear message per field (collected, not
first-failure-only) and nothing is written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callscreen.numbers import InvalidNumber, PhoneNumber, normalize

_CONTROL_SINGLE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_CONTROL_MULTI = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SKEW = timedelta(minutes=5)  # clock difference tolerated for "not in the future"
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class ValidationError(ValueError):
    """One or more fields are wrong; ``errors`` maps field name to message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class Fields:
    """Reads typed values out of a form or a JSON object, collecting errors per field."""

    def __init__(self, data: Any, *, prefix: str = "", errors: dict[str, str] | None = None) -> None:
        self.errors: dict[str, str] = {} if errors is None else errors
        self.prefix = prefix
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self.errors[prefix.rstrip(".") or "body"] = "must be an object"

    def _name(self, name: str) -> str:
        return self.prefix + name

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(self._name(name), message)

    def only(self, allowed: Iterable[str]) -> None:
        """Reject fields we do not know, so a misspelt field is not silently ignored."""
        allowed = set(allowed)
        for key in self.data:
            if key not in allowed:
                self.errors.setdefault(self._name(str(key)[:64]), "unknown field")

    def _raw(self, name: str) -> Any:
        value = self.data.get(name)
        return None if value == "" else value

    def text(self, name: str, *, required: bool = False, max_len: int = 200, multiline: bool = False,
             default: str = "") -> str:
        value = self._raw(name)
        if value is None:
            if required:
                self.fail(name, "required")
            return default
        if not isinstance(value, str):
            self.fail(name, "must be text")
            return default
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(name, "is not valid Unicode text")
            return default
        value = unicodedata.normalize("NFC", value.strip())
        if multiline:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        pattern = _CONTROL_MULTI if multiline else _CONTROL_SINGLE
        if pattern.search(value):
            self.fail(name, "contains control characters" + ("" if multiline else " (line breaks included)"))
            return default
        if len(value) > max_len:
            self.fail(name, f"at most {max_len} characters")
            return default
        if required and not value:
            self.fail(name, "required")
        return value

    def token(self, name: str, *, required: bool = False, default: str = "") -> str:
        """An identifier: letters, digits, ``. _ : -``, at most 64 characters."""
        value = self.text(name, required=required, max_len=64, default=default)
        if value and not _TOKEN.match(value):
            self.fail(name, "letters, digits, '.', '_', ':' and '-' only")
            return default
        return value

    def choice(self, name: str, choices: Iterable[str], *, required: bool = False,
               default: str = "") -> str:
        choices = tuple(choices)
        value = self.text(name, required=required, max_len=64, default=default)
        if value and value not in choices:
            self.fail(name, "must be one of: " + ", ".join(choices))
            return default
        return value

    def when(self, name: str, *, required: bool = False, local_zone: str | None = None,
             not_future: bool = False) -> datetime | None:
        """An ISO 8601 time. Without an offset it is read in ``local_zone`` (forms); the API
        passes no zone and so demands an explicit offset or ``Z``."""
        value = self.text(name, required=required, max_len=40)
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(name, "not an ISO 8601 date and time (e.g. 2026-05-01T14:30:00+03:00)")
            return None
        if moment.tzinfo is None:
            if local_zone is None:
                self.fail(name, "needs a UTC offset or Z (e.g. 2026-05-01T14:30:00+03:00)")
                return None
            moment = moment.replace(tzinfo=ZoneInfo(local_zone))
        moment = moment.astimezone(UTC)
        if not_future and moment > datetime.now(UTC).replace(microsecond=0) + _SKEW:
            self.fail(name, "is in the future")
            return None
        if moment.year < 1990:
            self.fail(name, "is implausibly old")
            return None
        return moment

    def number(self, name: str, default_region: str, *, required: bool = True) -> PhoneNumber | None:
        value = self.text(name, required=required, max_len=64)
        if not value:
            return None
        try:
            return normalize(value, default_region)
        except InvalidNumber as exc:
            self.fail(name, str(exc))
            return None

    def strings(self, name: str, *, required: bool = False, max_items: int = 20,
                pattern: re.Pattern[str] = _TOKEN) -> tuple[str, ...]:
        value = self.data.get(name)
        if value in (None, [], ""):
            if required:
                self.fail(name, "required")
            return ()
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, "must be a list of text")
            return ()
        if len(value) > max_items:
            self.fail(name, f"at most {max_items} items")
            return ()
        bad = [v for v in value if not pattern.match(v)]
        if bad:
            self.fail(name, f"not an identifier: {bad[0][:40]!r}")
            return ()
        return tuple(dict.fromkeys(value))

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("on", "true", "1", "yes"):
            return True
        if isinstance(value, str) and value in ("off", "false", "0", "no"):
            return False
        self.fail(name, "must be true or false")
        return default

    def nested(self, name: str) -> Fields:
        value = self.data.get(name, {})
        return Fields(value if value is not None else {}, prefix=self._name(name) + ".", errors=self.errors)

    def check(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


