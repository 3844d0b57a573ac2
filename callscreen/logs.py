"""Process logging: plain text for a terminal, JSON lines for a log pipeline.

``log_format = "json"`` writes one JSON object per line with ``time``, ``level``, ``logger``,
``message`` and the record's structured fields: a screening's line carries ``decision_id``,
``result``, ``reason``, ``campaign`` and ``ms``, so a log search leads straight to the decision
record (``callscreen log tail``, the dashboard). No phone number is ever logged, in either format.
``log_level = "info"`` adds one line per answered screening; the default (``warning``) costs the
decision path nothing.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from callscreen.config import ConfigError, Settings

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                             datefmt="%Y-%m-%dT%H:%M:%S%z")
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send the ``callscreen`` loggers to ``stream`` (stderr) in the configured format and level."""
    if settings.log_format not in FORMATS:
        raise ConfigError(f"log_format: {settings.log_format!r} is not one of {', '.join(FORMATS)}")
    if settings.log_level.lower() not in LEVELS:
        raise ConfigError(f"log_level: {settings.log_level!r} is not one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger("callscreen")
    for old in [h for h in root.handlers if getattr(h, "_callscreen", False)]:
        root.removeHandler(old)
    handler._callscreen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    return handler
