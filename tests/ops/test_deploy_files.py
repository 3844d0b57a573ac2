"""The ops kit under deploy/ and the production docker-compose.yml: checked with the real tools
(promtool) and schemas, and tied to the metrics the services really export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry

from agi.metrics import AGIMetrics
from callscreen.metrics import ScreeningMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "callscreen-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "callscreen.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt-get install "
                                                             "prometheus; `make test` installs it)")
# Exported at scrape time by collectors that read the store (blocklists.metrics, callscreen.metrics,
# dashboard.health): their names, as the code writes them.
COLLECTED = ("callscreen_registry_age_seconds", "callscreen_registry_records", "callscreen_registry_bad_lines",
             "callscreen_registry_stale", "callscreen_registry_store_up", "callscreen_complaints_open",
             "callscreen_complaints", "callscreen_retention_last_run_timestamp_seconds",
             "callscreen_retention_last_run_duration_seconds", "callscreen_retention_last_run_deleted",
             "callscreen_retention_store_up")


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    AGIMetrics(registry)
    ScreeningMetrics(registry)
    names = set(COLLECTED) | {"up"}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def series_in(expr: str) -> set[str]:
    """Metric names an expression reads (words followed by a selector, a range or an operator)."""
    words = set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\s*(?:\{|\[|\)|\s|$|>|<|/|\*)", expr))
    functions = {"sum", "by", "rate", "increase", "max", "min", "histogram_quantile", "time", "or", "and",
                 "le", "offset"}
    return {w for w in words if w.startswith(("callscreen", "up")) and w not in functions}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_script_test_command_checks_the_source_files_it_names() -> None:
    for path in (RULES, DASHBOARD, DEPLOY / "prometheus" / "prometheus.yml",
                 DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml",
                 DEPLOY / "grafana" / "provisioning" / "dashboards" / "callscreen.yml"):
        assert path.is_file(), path


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = subprocess.run([PROMTOOL, "test", "rules", "callscreen-rules.test.yml"], cwd=RULES.parent,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_alert_the_ops_team_asked_for_is_there_and_documented() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert {"CallscreenScreeningUnavailable", "CallscreenRegistryStale", "CallscreenBlockRateSpike",
            "CallscreenLogWriteFailures", "CallscreenDurabilityNotConfirmed", "CallscreenTargetDown"} <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name


def test_rules_and_dashboard_read_only_metrics_the_services_export() -> None:
    known = exported_names() | {rule["record"] for rule in rules() if "record" in rule}
    exprs = [rule["expr"] for rule in rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    unknown = {name for expr in exprs for name in series_in(expr)} - known
    assert unknown == set()


def test_the_grafana_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "callscreen" and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in panels}
    assert {"Decisions by result", "BLOCK reasons", "Decision latency", "Registry age", "Open complaints"} <= titles
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        for target in panel.get("targets", []):
            assert target["expr"].strip() and target["datasource"]["type"] == "prometheus"
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "callscreen.yml").read_text())
    assert provisioned["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_docker_compose_follows_the_compose_specification_and_the_production_layout() -> None:
    schema = json.loads((Path(__file__).with_name("compose-spec.json")).read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # The specification names its draft as http://json-schema.org/draft/2019-09/schema#, which
    # jsonschema does not recognise (it would guess the newest draft, with a warning): say it.
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    jsonschema.Draft201909Validator(schema).validate(compose)
    services = compose["services"]
    assert {"valkey", "agi", "dashboard", "prometheus", "grafana"} <= set(services)
    valkey = " ".join(services["valkey"]["command"])
    assert "--appendonly yes" in valkey and "--appendfsync always" in valkey
    for name in ("agi", "dashboard"):
        environment = services[name]["environment"]
        assert not any(k.endswith("_KEY") or k.endswith("_SECRET") for k in environment), name  # files only
        assert all(k.endswith("_FILE") for k in environment if "KEY" in k or "SECRET" in k)
    for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source


def test_the_dockerfile_builds_from_the_projects_own_files() -> None:
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    copied = [part for words in lines if words[0] == "COPY" for part in words[1:-1]]
    assert copied and all((ROOT / part).exists() for part in copied)
    assert not any(words[0] == "ADD" for words in lines)  # no remote downloads
    runs = " ".join(" ".join(words) for words in lines if words[0] == "RUN")
    assert "curl" not in runs and "wget" not in runs
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert packages <= {part.rstrip("/") for part in copied}, packages
