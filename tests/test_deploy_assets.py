"""Deployment assets stay in step with the exporter: every metric an alert or panel uses must exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from keeper.daemon.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names |= {sample.name for sample in family.samples}
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in _SUFFIXES}
    return names


def used_names(expr: str) -> set[str]:
    return set(re.findall(r"\bkeeper_[a-z0-9_]+", expr))


def test_every_alert_expression_uses_exported_metrics() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert len(rules) >= 9
    exported = exported_names()
    for rule in rules:
        used = used_names(rule["expr"])
        assert used or "up{" in rule["expr"], rule["alert"]
        missing = {n for n in used if n not in exported and n.removesuffix("_total") not in exported}
        assert not missing, f"{rule['alert']}: {missing}"
        assert rule["annotations"]["runbook"].startswith("README.md#")


def test_every_alert_has_a_runbook_section() -> None:
    readme = (DEPLOY.parent / "README.md").read_text().lower()
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert f"### {rule['alert'].lower()}" in readme, rule["alert"]


def test_dashboard_queries_use_exported_metrics() -> None:
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "keeper.json").read_text())
    exported = exported_names()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            for name in used_names(target["expr"]):
                base = name
                for suffix in _SUFFIXES:
                    base = base.removesuffix(suffix)
                assert name in exported or base in exported, f"{panel['title']}: {name}"


# position: a configured LYF position name (pattern-checked, one per configured position)
BOUNDED_LABELS = {"vault", "asset", "trigger", "result", "endpoint", "reason", "error", "version", "position", "job"}


def test_metric_names_follow_conventions() -> None:
    metrics = Metrics()
    for collector in list(metrics.registry._collector_to_names):
        labels = set(getattr(collector, "_labelnames", ()))
        assert labels <= BOUNDED_LABELS, labels
    for family in metrics.registry.collect():
        assert family.name.startswith("keeper_"), family.name
        unit_ok = family.type != "gauge" or not family.name.endswith(("_ms", "_gwei", "_eth", "_minutes"))
        assert unit_ok, f"{family.name}: use base units"


def test_k8s_rules_equal_prometheus_rules_and_grace_exceeds_shutdown_bound() -> None:
    from keeper.daemon.schedule import Timing

    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    rule = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == alerts
    deployment = yaml.safe_load((DEPLOY / "k8s" / "base" / "deployment.yaml").read_text())
    spec = deployment["spec"]
    assert spec["strategy"]["type"] == "Recreate" and spec["replicas"] == 1
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > Timing().grace_seconds
    container = spec["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
