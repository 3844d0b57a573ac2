"""A real Prometheus process scrapes a running `callscreen serve` and the dashboard, and the
production alert rules evaluate against what they export."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from asterisk_client import AsteriskClient, header_bytes
from werkzeug.serving import make_server

from callscreen.models import Campaign
from tests_support import callscreen_env, free_port, start_serve

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "callscreen-rules.yml"
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian: apt-get install "
                                                             "prometheus; `make test` installs it)")


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as response:
        return json.loads(response.read())["data"]


def wait_for(condition, seconds: float = 40.0):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_prometheus_scrapes_both_services_and_the_alert_rules_fire_on_live_data(settings, store, redis_client,
                                                                                tmp_path) -> None:
    from dashboard import create_app

    store.put_campaign(Campaign("nowhere", "promotions", "ZZ", "RU", "UTC"))  # no policy pack: fails closed
    serve, agi_port = None, 0
    metrics_port, dashboard_port, prometheus_port = free_port(), free_port(), free_port()
    dashboard = make_server("127.0.0.1", dashboard_port,
                            create_app(settings, client=redis_client, secure_cookies=False), threaded=True)
    threading.Thread(target=dashboard.serve_forever, daemon=True).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: callscreen-agi
    static_configs: [{{targets: ["127.0.0.1:{metrics_port}"]}}]
  - job_name: callscreen-dashboard
    static_configs: [{{targets: ["127.0.0.1:{dashboard_port}"]}}]
""")
    prometheus = None
    try:
        serve, agi_port = start_serve(callscreen_env(str(settings.redis_url), tmp_path), "--metrics-port",
                                      str(metrics_port))
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def both_up() -> bool:
            try:
                targets = api(prometheus_port, "targets")["activeTargets"]
            except OSError:
                return False
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)

        assert wait_for(both_up), "Prometheus did not scrape both services"
        time.sleep(1.5)  # one more scrape: the failure below is then an increase, as in production
        answered = AsteriskClient("127.0.0.1", agi_port).run(header_bytes(args=["nowhere", "+79991234567"]))
        assert answered.reason == "screening_unavailable"

        def alerts() -> dict[str, str]:
            return {a["labels"]["alertname"]: a["state"] for a in api(prometheus_port, "alerts")["alerts"]}

        fired = wait_for(lambda: alerts().get("CallscreenScreeningUnavailable") == "firing" and alerts())
        assert fired, alerts()
        assert fired.get("CallscreenRegistryStale") == "pending"  # required registries never loaded (for: 5m)
        result = api(prometheus_port, "query?query=callscreen_complaints_open")["result"]
        assert [r["metric"]["job"] for r in result] == ["callscreen-dashboard"]
    finally:
        for process in (prometheus, serve):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        dashboard.shutdown()
