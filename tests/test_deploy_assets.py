"""Deployment assets stay in step with the code: the image, compose, Kubernetes, alerts, dashboard, runbook.

No container engine runs here, so the Dockerfile, the manifests and the compose file are checked by
parsing them; alert rules by promtool where it is on PATH (`promtool check` and the unit tests in
deploy/prometheus/alerts.test.yaml), and always by a parser test: every metric an alert or a panel uses is
registered in keeper/daemon/metrics.py and set somewhere in keeper/.
"""

from __future__ import annotations

import argparse
import copy
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from keeper.config import KeeperSettings, MetricsSettings, ScheduleSettings, load_config
from keeper.daemon.metrics import Metrics
from keeper.daemon.schedule import FORCE_MARGIN_SECONDS, Timing

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "keeper.json"
_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total", "_info")

# --- shared readers ------------------------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert(name: str) -> dict[str, Any]:
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == name]
    return rule


def used_names(expr: str) -> set[str]:
    return set(re.findall(r"\bkeeper_[a-z0-9_]+", expr))


def family_of(name: str) -> str:
    """`keeper_x_total` / `keeper_x_bucket` → `keeper_x` (prometheus_client's family name)."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def registered_attributes() -> dict[str, str]:
    """Family name → the `Metrics` attribute that holds it."""
    return {
        value._name: attr
        for attr, value in vars(Metrics()).items()
        if isinstance(getattr(value, "_name", None), str)
    }


def is_registered(name: str, families: dict[str, str]) -> bool:
    return name in families or family_of(name) in families


_SOURCES = [p for p in (ROOT / "keeper").rglob("*.py") if p != ROOT / "keeper" / "daemon" / "metrics.py"]


def is_set_somewhere(attr: str) -> bool:
    """Some module outside metrics.py calls `.set(`, `.inc(`, `.observe(`, `.labels(` on `<obj>.<attr>`."""
    pattern = re.compile(rf"\.{re.escape(attr)}\s*\.\s*(set|inc|dec|observe|labels|info|set_to_current_time)\(")
    return any(pattern.search(path.read_text()) for path in _SOURCES)


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return panels


def grace_bound() -> float:
    """The daemon's hard shutdown bound (seconds after SIGTERM) with the default configuration."""
    return max(Timing().grace_seconds, ScheduleSettings().grace_seconds) + FORCE_MARGIN_SECONDS


# --- Dockerfile ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    base: str
    instructions: tuple[tuple[str, str], ...]

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    def text(self) -> str:
        return "\n".join(f"{kw} {arg}" for kw, arg in self.instructions)


def dockerfile_stages(text: str | None = None) -> list[Stage]:
    """Instructions per stage: comments dropped, `\\` continuations joined, keywords upper-cased."""
    logical: list[str] = []
    pending = ""
    for raw in (text if text is not None else (ROOT / "Dockerfile").read_text()).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in arg.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else str(len(stages))
            stages.append(Stage(name, words[0], ()))
        else:
            last = stages[-1]
            stages[-1] = Stage(last.name, last.base, (*last.instructions, (keyword, arg.strip())))
    return stages


def test_dockerfile_parser_joins_continuations_and_drops_comments() -> None:
    stages = dockerfile_stages("FROM a:1 AS one\n# c\nRUN x \\\n  # inside\n  y\nFROM one\nUSER 1\n")
    assert [(s.name, s.base) for s in stages] == [("one", "a:1"), ("1", "one")]
    assert stages[0].instructions == (("RUN", "x y"),) and stages[1].args("USER") == ["1"]


def stage_named(stages: list[Stage], name: str) -> Stage:
    (stage,) = [s for s in stages if s.name == name]
    return stage


def ancestry(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stage, the stages it is built FROM, and (recursively) those it COPYs --from."""
    names = {s.name: s for s in stages}
    seen: list[Stage] = []
    todo = [stage]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        if current.base in names:
            todo.append(names[current.base])
        for arg in current.args("COPY"):
            match = re.search(r"--from=(\S+)", arg)
            if match and match.group(1) in names:
                todo.append(names[match.group(1)])
    return seen


_BUILD_TOOLS = re.compile(r"\b(node|nodejs|npm|npx|gcc|g\+\+|build-essential|make|apt-get|apk)\b")


def test_runtime_is_the_last_stage_and_has_no_build_tools_or_node() -> None:
    stages = dockerfile_stages()
    runtime = stages[-1]
    assert runtime.name == "runtime", "`docker build .` builds the last stage: it must be the production image"
    assert re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]+)?", runtime.base), runtime.base
    names = [s.name for s in stages]
    assert "devnet" in names and names.index("devnet") < names.index("runtime")
    for stage in ancestry(stages, runtime):
        for kw, arg in stage.instructions:
            if kw == "RUN" and stage is runtime:
                assert not _BUILD_TOOLS.search(arg), f"runtime RUN installs/uses build tools: {arg}"
            if kw == "RUN":
                assert not re.search(r"\b(nodejs|npm)\b", arg), f"{stage.name} (in runtime's ancestry): {arg}"
    runtime_copies = " ".join(runtime.args("COPY"))
    assert "node_modules" not in runtime_copies and "package" not in runtime_copies


def test_runtime_runs_keeper_run_as_non_root_in_exec_form() -> None:
    runtime = dockerfile_stages()[-1]
    users = runtime.args("USER")
    assert users, "runtime has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    keywords = [kw for kw, _ in runtime.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    (entrypoint,) = runtime.args("ENTRYPOINT")
    (cmd,) = runtime.args("CMD")
    entry, command = json.loads(entrypoint), json.loads(cmd)  # exec form: JSON arrays
    assert entry[0] == "keeper"
    assert (entry + command)[1] == "run"
    config = (entry + command)[(entry + command).index("--config") + 1]
    assert config == "/etc/keeper/keeper.toml"
    uid = re.search(r"--uid (\d+)", runtime.text())
    assert uid is not None and int(uid.group(1)) != 0


def test_image_builds_from_the_lockfile_with_uv_frozen() -> None:
    stages = dockerfile_stages()
    text = "\n".join(s.text() for s in stages)
    syncs = re.findall(r"RUN .*\buv sync\b.*", text)
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, sync
    assert text.index("uv.lock") < text.index("uv sync")
    runtime_venv = [s for s in ancestry(stages, stages[-1]) if "uv sync" in s.text() and "--no-editable" in s.text()]
    assert runtime_venv, "the runtime virtualenv must hold keeper as a wheel (--no-editable), not a source link"


def test_devnet_stage_finds_anvil_per_platform_without_an_override() -> None:
    stages = dockerfile_stages()
    text = "\n".join(s.text() for s in stages)  # instructions only, comments dropped
    assert "KEEPER_ANVIL_BIN" not in text and not re.search(r"anvil-(linux|darwin|win32)-", text)
    devnet = stage_named(stages, "devnet")
    assert any("npm ci" in run for run in devnet.args("RUN"))
    assert "package-lock.json" in " ".join(devnet.args("COPY"))
    # keeper/devnet/anvil.py looks for node_modules next to the keeper package: both must live in WORKDIR.
    (workdir,) = devnet.args("WORKDIR")
    assert any(re.search(r"\s\./keeper$", c) for c in devnet.args("COPY")), "keeper is not copied into WORKDIR"
    assert "anvil_binary()" in " ".join(devnet.args("RUN")), "the build should prove the binary resolves"
    assert workdir == "/app"
    assert json.loads(devnet.args("ENTRYPOINT")[0]) == ["keeper"]


def _healthcheck_command() -> list[str]:
    (healthcheck,) = dockerfile_stages()[-1].args("HEALTHCHECK")
    command: list[str] = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    return command



class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def _serve(status: int) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(params=[200, 503], ids=["healthy", "unhealthy"])
def health_server(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    status: int = request.param
    for port in _serve(status):
        yield status, port


def test_healthcheck_probes_healthz_on_the_configured_metrics_port(health_server: tuple[int, int]) -> None:
    status, port = health_server
    command = _healthcheck_command()
    assert command[0] == "python" and "/healthz" in " ".join(command)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER_")} | {"KEEPER_METRICS__PORT": str(port)}
    done = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=120)
    assert (done.returncode == 0) == (status == 200), done.stderr.decode()[-500:]


def test_healthcheck_default_port_is_the_metrics_default() -> None:
    default = str(MetricsSettings().port)
    code = " ".join(_healthcheck_command())
    assert f"'KEEPER_METRICS__PORT', '{default}'" in code
    assert dockerfile_stages()[-1].args("EXPOSE") == [default]


# --- alert rules ---------------------------------------------------------------------------------------------

# The issue's list → (alert, metrics its expression must use).
ISSUE_ALERTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "keeper down": ("KeeperDown", ('up{job="keeper"}',)),
    "keeper not ready": ("KeeperNotReady", ("keeper_ready",)),
    "no successful rebalance past the vault's deadline": (
        "KeeperRebalanceOverdue",
        ("keeper_last_successful_rebalance_timestamp_seconds", "keeper_rebalance_deadline_seconds"),
    ),
    "the deadline alert's timestamp missing while the keeper is up": (
        "KeeperRebalanceTimestampMissing",
        ("absent(keeper_last_successful_rebalance_timestamp_seconds)", 'up{job="keeper"}'),
    ),
    "health factor near liquidation": ("KeeperHealthFactorNearLiquidation", ("keeper_health_factor",)),
    "oracle guard tripped": ("KeeperOracleGuardTripped", ("keeper_oracle_guard_tripped",)),
    "a transaction pending too long": (
        "KeeperTransactionPendingTooLong", ("keeper_oldest_pending_transaction_age_seconds",)
    ),
    "fee-cap waiting": ("KeeperFeeCapWaiting", ("keeper_fee_cap_waiting",)),
    "signer balance runway low": (
        "KeeperSignerBalanceRunwayLow",
        ("keeper_signer_balance_wei", "keeper_signer_balance_min_wei", "keeper_gas_spent_wei_total"),
    ),
    "leadership flapping": ("KeeperLeadershipFlapping", ("keeper_leadership_changes_total",)),
}


@pytest.mark.parametrize("concept", sorted(ISSUE_ALERTS))
def test_the_issue_alert_list_is_covered(concept: str) -> None:
    name, needles = ISSUE_ALERTS[concept]
    rule = alert(name)
    expr = " ".join(rule["expr"].split())
    for needle in needles:
        assert needle in expr, f"{name} ({concept}) does not use {needle}: {expr}"
    assert rule["labels"]["severity"] in ("page", "warning")


def test_overdue_alert_uses_the_vault_deadline_not_a_constant() -> None:
    expr = alert("KeeperRebalanceOverdue")["expr"]
    assert not re.search(r"\d+\s*\*\s*3600|\b\d{5,}\b", expr), expr


def test_every_alert_metric_is_registered_and_set_by_the_keeper() -> None:
    families = registered_attributes()
    unregistered: dict[str, set[str]] = {}
    never_set: dict[str, set[str]] = {}
    for rule in alert_rules():
        used = used_names(rule["expr"])
        assert used or 'up{job="keeper"}' in rule["expr"], rule["alert"]
        for name in used:
            if not is_registered(name, families):
                unregistered.setdefault(rule["alert"], set()).add(name)
            elif not is_set_somewhere(families.get(name) or families[family_of(name)]):
                never_set.setdefault(rule["alert"], set()).add(name)
        assert rule["annotations"]["runbook"] == f"README.md#{rule['alert'].lower()}"
    assert not unregistered, f"not registered in keeper/daemon/metrics.py: {unregistered}"
    assert not never_set, f"registered but never set/incremented in keeper/: {never_set}"


def test_k8s_rules_equal_prometheus_rules() -> None:
    alerts = yaml.safe_load(ALERTS.read_text())
    rule = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == alerts


def test_every_alert_fires_in_a_promtool_unit_test() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    firing: dict[str, list[dict[str, str]]] = {}
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            for expected in check["exp_alerts"]:
                firing.setdefault(check["alertname"], []).append(expected["exp_labels"])
    for rule in alert_rules():
        assert rule["alert"] in firing, f"{rule['alert']} has no promtool test in which it fires"
        for labels in firing[rule["alert"]]:
            assert labels["severity"] == rule["labels"]["severity"]


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus); "
                    "the parser tests above still check the rules")
def test_promtool_checks_the_rules_the_config_and_runs_the_unit_tests(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ALERTS)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for args in (
        ["check", "rules", str(ALERTS)],
        ["check", "config", str(tmp_path / "prometheus.yml")],
        ["test", "rules", str(ALERT_TESTS)],
    ):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


# --- dashboard -----------------------------------------------------------------------------------------------

# What the issue asks the dashboard to show → (title pattern, a metric one of its queries must use).
DASHBOARD_CONTENT: dict[str, tuple[str, str]] = {
    "vault books": (r"(?i)vault books.*equity", "keeper_vault_equity_usd"),
    "drift": (r"(?i)drift", "keeper_delta_drift_ratio"),
    "health factor": (r"(?i)health factor", "keeper_health_factor"),
    "triggers": (r"(?i)triggers", "keeper_triggers_fired_total"),
    "rebalances": (r"(?i)rebalances", "keeper_rebalances_total"),
    "gas per vault": (r"(?i)gas.*per vault", "keeper_gas_spent_wei_total"),
    "fees per vault": (r"(?i)fees.*per vault", "keeper_fees_paid_total"),
    "rpc errors": (r"(?i)rpc", "keeper_rpc_errors_total"),
    "rpc latency": (r"(?i)rpc", "keeper_rpc_latency_seconds_bucket"),
    "rpc head lag": (r"(?i)rpc", "keeper_rpc_head_lag_blocks"),
    "pending transactions": (r"(?i)pending transactions", "keeper_pending_transactions"),
    "rebalance deadline": (r"(?i)last successful rebalance", "keeper_rebalance_deadline_seconds"),
}


@pytest.mark.parametrize("concept", sorted(DASHBOARD_CONTENT))
def test_dashboard_has_the_issue_panels(concept: str) -> None:
    title, metric = DASHBOARD_CONTENT[concept]
    matching = [p for p in dashboard_panels() if re.search(title, p["title"])]
    assert any(metric in used_names(t["expr"]) for p in matching for t in p["targets"]), (concept, title, metric)


def test_per_vault_panels_group_by_vault() -> None:
    for panel in dashboard_panels():
        if "per vault" in panel["title"]:
            assert all("by (vault" in t["expr"] for t in panel["targets"]), panel["title"]


def test_dashboard_queries_use_registered_metrics_that_are_set() -> None:
    families = registered_attributes()
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in used_names(target["expr"]):
                assert is_registered(name, families), f"{panel['title']}: {name} is not registered"
                attr = families.get(name) or families[family_of(name)]
                assert is_set_somewhere(attr), f"{panel['title']}: {name} is never set"


def test_dashboard_layout_and_datasource() -> None:
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    (source,) = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert {p["datasource"]["uid"] for p in panels} == {source["uid"]}


# --- metric conventions --------------------------------------------------------------------------------------

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


# --- Kubernetes ----------------------------------------------------------------------------------------------

Resources = dict[tuple[str, str], dict[str, Any]]


def _load_kustomization(folder: Path) -> Resources:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    resources: Resources = {}
    for entry in kustomization["resources"]:
        path = folder / entry
        if path.is_dir():
            resources |= _load_kustomization(path)
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            resources[(doc["kind"], doc["metadata"]["name"])] = doc
    for patch in kustomization.get("patches", []):
        target = (patch["target"]["kind"], patch["target"]["name"])
        body = yaml.safe_load(patch["patch"])
        if isinstance(body, dict) and body.get("$patch") == "delete":
            del resources[target]
        else:
            resources[target] = json_patch(resources[target], body)
    return resources


def json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove, as kustomize applies them (enough for the overlays here)."""
    result = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            if op["op"] == "add":
                node.insert(len(node) if last == "-" else int(last), op["value"])
            elif op["op"] == "replace":
                node[int(last)] = op["value"]
            else:
                del node[int(last)]
        elif op["op"] == "remove":
            del node[last]
        else:
            assert op["op"] == "add" or last in node, f"replace of a missing {op['path']}"
            node[last] = op["value"]
    return result


def test_json_patch_applies_add_replace_remove() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "add", "path": "/b/d~1e", "value": 4},
        {"op": "remove", "path": "/a/0"},
    ])
    assert out == {"a": [2, 3], "b": {"c": 2, "d/e": 4}} and doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(AssertionError):
        json_patch(doc, [{"op": "replace", "path": "/b/x", "value": 1}])


def _pod(resources: Resources) -> dict[str, Any]:
    pod: dict[str, Any] = resources[("Deployment", "keeper")]["spec"]["template"]["spec"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _mount_for(pod: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (volumeMount, volume) whose mountPath is `path`."""
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == path]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def _configmap_settings(resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeeperSettings:
    for key in [k for k in os.environ if k.startswith("KEEPER_")]:
        monkeypatch.delenv(key)
    (toml,) = resources[("ConfigMap", "keeper-config")]["data"].values()
    (tmp_path / "keeper.toml").write_text(toml)
    tomllib.loads(toml)
    return load_config(tmp_path / "keeper.toml")


@pytest.fixture(params=["base", "ha"])
def overlay(request: pytest.FixtureRequest) -> tuple[str, Resources]:
    name: str = request.param
    return name, _load_kustomization(DEPLOY / "k8s" / name)


def test_k8s_shared_wiring(overlay: tuple[str, Resources], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, resources = overlay
    deployment = resources[("Deployment", "keeper")]
    pod = _pod(resources)
    (container,) = pod["containers"]
    env = _env(container)
    assert pod["terminationGracePeriodSeconds"] > grace_bound(), name
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # config: a ConfigMap mounted where --config points, and it validates
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mount, volume = _mount_for(pod, str(config_path.parent))
    assert volume["configMap"]["name"] == "keeper-config" and mount.get("readOnly") is True
    assert config_path.name in resources[("ConfigMap", "keeper-config")]["data"]
    settings = _configmap_settings(resources, tmp_path, monkeypatch)
    # keys: the keystore and its password come from a Secret mount that is also the secrets dir
    assert settings.signer.kind == "keystore"
    assert settings.signer.keystore_file is not None and settings.signer.password_file is not None
    secrets_dir = settings.signer.keystore_file.parent
    assert settings.signer.password_file.parent == secrets_dir
    mount, volume = _mount_for(pod, str(secrets_dir))
    assert "secret" in volume and mount.get("readOnly") is True and volume["secret"]["defaultMode"] == 0o400
    assert env["KEEPER_SECRETS_DIR"]["value"] == str(secrets_dir)
    # no secret value in the manifest's environment
    for var in env.values():
        assert not re.search(r"(?i)postgres(ql)?://|0x[0-9a-f]{64}", str(var.get("value", ""))), var
    # metrics: the port the daemon listens on is the container port the Service and ServiceMonitor use
    assert env["KEEPER_METRICS__HOST"]["value"] == "0.0.0.0"
    (port,) = container["ports"]
    assert int(env["KEEPER_METRICS__PORT"]["value"]) == port["containerPort"]
    service = resources[("Service", "keeper")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    monitor = resources[("ServiceMonitor", "keeper")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"
    # the alerts select job="keeper": the ServiceMonitor's job label is the Service's name
    assert service["metadata"]["name"] == "keeper" and "jobLabel" not in monitor["spec"]
    assert ("PrometheusRule", "keeper") in resources
    # the image's user
    uid = re.search(r"--uid (\d+)", dockerfile_stages()[-1].text())
    assert uid is not None and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True


def _configmap_settings_state_dir(resources: Resources) -> Path:
    (toml,) = resources[("ConfigMap", "keeper-config")]["data"].values()
    return Path(tomllib.loads(toml)["state_dir"])


def test_k8s_base_is_one_replica_recreate_on_a_volume() -> None:
    resources = _load_kustomization(DEPLOY / "k8s" / "base")
    spec = resources[("Deployment", "keeper")]["spec"]
    assert spec["strategy"]["type"] == "Recreate" and spec["replicas"] == 1
    pod = _pod(resources)
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    state_dir = str(_configmap_settings_state_dir(resources))
    _, volume = _mount_for(pod, state_dir)
    assert volume["persistentVolumeClaim"]["claimName"] in {n for k, n in resources if k == "PersistentVolumeClaim"}
    assert "KEEPER_STORE__DATABASE_URL" not in _env(pod["containers"][0])


def test_k8s_ha_overlay_two_replicas_with_the_database_url_from_a_secret() -> None:
    resources = _load_kustomization(DEPLOY / "k8s" / "ha")
    spec = resources[("Deployment", "keeper")]["spec"]
    assert spec["replicas"] == 2
    pod = _pod(resources)
    (container,) = pod["containers"]
    url = _env(container)["KEEPER_STORE__DATABASE_URL"]
    assert "value" not in url and url["valueFrom"]["secretKeyRef"]["name"] and url["valueFrom"]["secretKeyRef"]["key"]
    # the journal is in PostgreSQL: no PVC that only one node can mount
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in resources)
    _, volume = _mount_for(pod, str(_configmap_settings_state_dir(resources)))
    assert "emptyDir" in volume
    # replicas apart
    affinity = pod["affinity"]["podAntiAffinity"]
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or [
        t["podAffinityTerm"] for t in affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    ]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" for t in terms)


def test_k8s_ha_readiness_cannot_stall_a_rollout_and_is_documented() -> None:
    resources = _load_kustomization(DEPLOY / "k8s" / "ha")
    spec = resources[("Deployment", "keeper")]["spec"]
    path = _pod(resources)["containers"][0]["readinessProbe"]["httpGet"]["path"]
    if path == "/readyz":  # only the leader is Ready: the rollout must be allowed to replace every pod at once
        strategy = spec["strategy"]
        assert strategy["type"] == "Recreate" or strategy["rollingUpdate"]["maxUnavailable"] in ("100%", 2)
    else:
        assert path == "/healthz"
    ha_doc = " ".join((ROOT / "docs" / "ha.md").read_text().split())
    assert f"readiness probe is `{path}`" in ha_doc
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"readiness probe is `{path}`" in readme


# --- compose -------------------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", text)
    assert match, text
    return int(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2)]


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path (bind mounts relative to deploy/)."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            out[target] = (DEPLOY / source).resolve()
    return out


def test_compose_builds_devnet_and_the_runtime_image() -> None:
    services = _compose()["services"]
    assert {"devnet", "keeper", "prometheus", "grafana"} <= set(services)
    stages = [s.name for s in dockerfile_stages()]
    assert services["devnet"]["build"]["target"] == "devnet" in stages
    assert services["keeper"]["build"].get("target", stages[-1]) == stages[-1] == "runtime"
    assert (DEPLOY / services["keeper"]["build"]["context"]).resolve() == ROOT
    keeper = services["keeper"]
    assert keeper["depends_on"]["devnet"]["condition"] == "service_healthy"
    assert keeper["command"][0] == "run"
    assert _seconds(keeper["stop_grace_period"]) > grace_bound()


def test_compose_prometheus_scrapes_the_keeper_and_loads_the_rules() -> None:
    services = _compose()["services"]
    keeper, prometheus = services["keeper"], services["prometheus"]
    port = keeper["environment"]["KEEPER_METRICS__PORT"]
    assert keeper["environment"]["KEEPER_METRICS__HOST"] == "0.0.0.0"
    assert f"{port}:{port}" in keeper["ports"]
    mounts = _mounts(prometheus)
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text())
    rule_files = [mounts[path] for path in config["rule_files"]]
    assert rule_files == [ALERTS.resolve()]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "keeper"]  # the alerts use job="keeper"
    targets = [t for c in job["static_configs"] for t in c["targets"]]
    assert targets == [f"keeper:{port}"]


def test_compose_grafana_is_provisioned_with_the_dashboard() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "keeper.yaml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "keeper.json").resolve() == DASHBOARD.resolve()
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "9090:9090" in services["prometheus"]["ports"]


# --- README: Production and Runbook --------------------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def inline_code(markdown: str) -> list[str]:
    """The `inline code` spans, fenced blocks left out (their backticks would pair wrongly)."""
    return re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S))


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    runbook = readme_section("Runbook")
    sections = set(re.findall(r"^### (\S+)$", runbook, flags=re.M))
    assert sections == {rule["alert"] for rule in alert_rules()}


def _known_path(parts: list[str]) -> bool:
    model: Any = KeeperSettings
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = fields[part].annotation
    return True


def test_settings_named_in_production_and_runbook_exist() -> None:
    text = readme_section("Production") + readme_section("Runbook")
    literal_env = set(re.findall(r'"(KEEPER_[A-Z_]+)"', "".join(p.read_text() for p in _SOURCES)))
    checked = 0
    for span in inline_code(text):
        for env in re.findall(r"\bKEEPER_[A-Z0-9_]+", span):
            checked += 1
            name = env.removeprefix("KEEPER_").split("=")[0]
            assert env in literal_env or _known_path(name.lower().split("__")), f"README names {env}: no such setting"
        for section, field in re.findall(r"^([a-z_]+)(?:\.|__)([a-z_]+)\b", span):
            if section in KeeperSettings.model_fields:
                checked += 1
                assert _known_path([section, field]), f"README names {section}.{field}: no such setting"
    assert checked >= 10


def test_commands_in_production_and_runbook_parse() -> None:
    from keeper.cli import build_parser

    text = readme_section("Production") + readme_section("Runbook")
    commands = [span for span in inline_code(text) if span.startswith("keeper ")]
    assert "keeper ack-halt --config FILE --list" in commands
    assert "keeper ack-halt --config FILE KEY" in commands
    parser = build_parser()
    (subcommands,) = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for command in commands:
        argv = shlex.split(command)[1:]
        assert argv[0] in subcommands, f"README names {command}: no such subcommand"
        if len(argv) > 1:  # a full command line: it must parse (argparse exits 2 on an error)
            try:
                parser.parse_args(argv)
            except SystemExit as exc:
                pytest.fail(f"README command does not parse: {command} (exit {exc.code})")


def test_production_section_covers_images_modes_and_secrets() -> None:
    text = " ".join(readme_section("Production").split())
    assert "docker build -t keeper ." in text and "--target devnet" in text
    assert "`runtime`" in text and "default target" in text
    assert "Embedded (one replica)" in text and "Two replicas (PostgreSQL lease)" in text
    for name in ("signer__key", "store__database_url", "KEEPER_SECRETS_DIR", "keystore", "password"):
        assert name in text, name
