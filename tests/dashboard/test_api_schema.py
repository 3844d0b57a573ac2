"""The intake API keeps the promises of its OpenAPI document under generated traffic.

Schemathesis reads ``/api/v1/openapi.json`` from the running app (on the real embedded store)
and sends requests generated from it — bodies that fit the schema and bodies that break it —
to every operation, with a valid bearer token. Every answer must be documented for that
operation, match its schema and content type, and never be a 5xx. Generation is derandomized
and bounded, so the run is repeatable and takes seconds.

JSON Schema cannot say what a real phone number or an existing campaign is, so some generated
valid bodies get real ones swapped in (to reach the 2xx paths), and the check "a schema-valid body is
accepted" is left out: such a body may rightly get 400 for a number that does not exist.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from callscreen.models import Campaign
from tests.dashboard.conftest import NUMBER, build, calling_time

REAL = {
    "number": st.sampled_from([NUMBER, "+7 999 765-43-21", "8 (999) 111-22-33"]),
    "campaign_id": st.just("spring"),
    "numbers": st.lists(st.sampled_from([NUMBER, "+79997654321", "not a number"]), min_size=1, max_size=5),
    **{name: st.just(calling_time(1).isoformat()) for name in ("at", "call_at", "captured_at")},
}


@pytest.fixture
def api_app(settings, redis_client):
    app = build(settings, redis_client, config={"RATELIMIT_ENABLED": False})
    svc = app.extensions["callscreen"]
    svc.store.put_campaign(Campaign(id="spring", purpose="promotions", jurisdiction="RU", default_region="RU",
                                    timezone="Europe/Moscow", name="Spring"))
    app.config["SCHEMA_TEST_TOKEN"] = svc.tokens.add("crm")[1]
    app.config["SCHEMA_TEST_DECISION"] = svc.screener.screen(NUMBER, "spring", calling_time(), origin="test").id
    return app


def with_real_values(case: Any, data: st.DataObject, decision_id: str) -> None:
    """Sometimes replace generated values by ones that exist, so valid requests get through."""
    if isinstance(case.body, dict):
        for name, strategy in REAL.items():
            if name in case.body and data.draw(st.booleans()):
                case.body[name] = data.draw(strategy)
    if case.path_parameters and "decision_id" in case.path_parameters and data.draw(st.booleans()):
        case.path_parameters["decision_id"] = decision_id


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_answers_as_documented(api_app, mode):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    auth = {"Authorization": f"Bearer {api_app.config['SCHEMA_TEST_TOKEN']}"}
    statuses: set[int] = set()

    @given(case=schema.as_strategy(mode, headers=auth), data=st.data())
    @settings(max_examples=100, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:  # a negative case must stay invalid where it was made so
            with_real_values(case, data, api_app.config["SCHEMA_TEST_DECISION"])
        response = case.call_and_validate(headers=auth, excluded_checks=[positive_data_acceptance])
        statuses.add(response.status_code)

    answers_as_documented()
    assert 400 in statuses
    if mode is GenerationMode.POSITIVE:
        assert {200, 201} <= statuses  # the generated traffic reached the working paths too
