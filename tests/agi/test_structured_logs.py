"""JSON logs: one line per answered screening at info level, carrying its decision id, never the number."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace

import pytest
from agi_env import AGIEnv
from test_fastagi_reasons import RU_NUMBER, campaign, consent, screen

from callscreen.config import ConfigError
from callscreen.logs import configure_logging


@pytest.fixture
def json_log(settings):
    stream = io.StringIO()
    handler = configure_logging(replace(settings, log_format="json", log_level="info"), stream)
    yield stream
    logging.getLogger("callscreen").removeHandler(handler)
    logging.getLogger("callscreen").setLevel(logging.WARNING)


def test_each_answer_is_one_json_line_with_its_decision_id_and_no_number(agi: AGIEnv, json_log) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    session = screen(agi, "spring")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    answered = [line for line in lines if line["message"].startswith("answered")]
    assert len(answered) == 1
    entry = answered[0]
    assert entry["decision_id"] == session.variables["SCREEN_ID"] and entry["decision_id"].startswith("d-")
    assert (entry["result"], entry["reason"], entry["campaign"], entry["level"]) == ("ALLOW", "consent", "spring",
                                                                                      "INFO")
    assert entry["logger"] == "callscreen.agi" and entry["time"]
    digits = RU_NUMBER.lstrip("+")
    assert all(digits not in raw and digits[1:] not in raw for raw in json_log.getvalue().splitlines())


def test_an_unknown_log_format_fails_loudly_naming_the_setting(settings) -> None:
    with pytest.raises(ConfigError, match="log_format"):
        configure_logging(replace(settings, log_format="xml"))
