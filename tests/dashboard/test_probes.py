"""The dashboard's /healthz, /readyz and /metrics: no login, no personal data."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_the_dashboard_answers_probes_and_scrapes_without_a_login(app, path) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 200
    if path == "/metrics":
        text = response.get_data(as_text=True)
        assert "callscreen_complaints_open 0.0" in text and "callscreen_registry_store_up" in text
    else:
        assert response.is_json
