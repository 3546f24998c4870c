"""Alert rules and the dashboard: valid PromQL, and only metrics the code really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, Summary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "prometheus_rule.yaml"
DASHBOARD = ROOT / "config" / "grafana" / "gong-webhooks-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
METRIC = re.compile(r"\b(gong_[a-z0-9_]+)\b")


def exported_metric_names() -> set[str]:
    """Every sample name (with _total/_bucket/_count/_sum) the app's and the operator's metrics expose."""
    from gong_operator import metrics as operator_metrics
    from webhook_app.metrics import Metrics

    names: set[str] = set()
    for obj in [*vars(operator_metrics).values(), *vars(Metrics()).values()]:
        if isinstance(obj, Counter):
            names.add(obj._name + "_total")
        elif isinstance(obj, Histogram):
            names.update(obj._name + s for s in ("_bucket", "_count", "_sum"))
        elif isinstance(obj, Summary):
            names.update(obj._name + s for s in ("_count", "_sum"))
        elif isinstance(obj, Gauge):
            names.add(obj._name)
    return names


def rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in doc["spec"]["groups"] for r in g["rules"]]


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/bootstrap installs Debian's prometheus package"
    doc = yaml.safe_load(RULES.read_text())
    plain = tmp_path / "rules.yaml"
    plain.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    proc = subprocess.run([promtool, "check", "rules", str(plain)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in proc.stdout


def test_every_required_alert_exists_with_summary_description_and_runbook() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["spec"]["groups"] for r in g["rules"]]
    runbook = RUNBOOK.read_text().lower()
    for r in rules:
        ann = r["annotations"]
        assert ann.get("summary") and ann.get("description"), r["alert"]
        anchor = r["alert"].lower()
        assert ann["runbook_url"].endswith(f"#{anchor}"), r["alert"]
        assert f"## {anchor}" in runbook, f"docs/runbook.md has no section for {r['alert']}"
    assert len(rules) >= 9


@pytest.mark.parametrize(("alert", "expr"), rule_exprs())
def test_alert_uses_only_exported_metrics(alert: str, expr: str) -> None:
    used = set(METRIC.findall(expr))
    assert used, f"{alert} uses no project metric"
    missing = used - exported_metric_names()
    assert not missing, f"{alert} uses metrics nobody exports: {sorted(missing)}"


def test_dashboard_panels_use_only_exported_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exported = exported_metric_names()
    assert len(dash["panels"]) >= 7
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used = set(METRIC.findall(target["expr"]))
            assert used, panel["title"]
            assert not used - exported, (panel["title"], sorted(used - exported))


def test_promtool_unit_tests_fire_the_dlq_not_ready_budget_and_operator_unhealthy_alerts(tmp_path: Path) -> None:
    """The rules do what they say on synthetic series (promtool's rule unit tests)."""
    promtool = shutil.which("promtool")
    assert promtool
    doc = yaml.safe_load(RULES.read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'gong_webhook_dlq_depth{namespace="sales",service="gong"}', "values": "0 0 3x10"},
                {"series": 'gong_operator_gongwebhook_ready{gongwebhook_namespace="sales",gongwebhook="gong"}',
                 "values": "1 0x15"},
                # Two pods: one has spent the budget at 2m, the other never asked (NaN), then sees 0 at 10m.
                {"series": 'gong_webhook_gong_api_daily_budget_remaining{namespace="sales",service="gong",pod="a"}',
                 "values": "5 1 0x30"},
                {"series": 'gong_webhook_gong_api_daily_budget_remaining{namespace="sales",service="gong",pod="b"}',
                 "values": " ".join(["NaN"] * 10) + " 0x30"},
                {"series": 'gong_webhook_gong_api_daily_budget_remaining{namespace="ops",service="gong",pod="c"}',
                 "values": "9 3 0 4x30"},
                # Operator pods: a stays unhealthy from 2m; b is healthy; c fails for 3m, then the kubelet's
                # restart brings it back (no alert).
                {"series": 'gong_operator_healthy{namespace="gong-system",pod="op-a",job="x"}',
                 "values": "1 1 0x20"},
                {"series": 'gong_operator_healthy{namespace="gong-system",pod="op-b",job="x"}', "values": "1x22"},
                {"series": 'gong_operator_healthy{namespace="gong-system",pod="op-c",job="x"}',
                 "values": "1 0 0 0 1x18"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "GongWebhookDeadLetterNotEmpty", "exp_alerts": []},
                {"eval_time": "9m", "alertname": "GongWebhookDeadLetterNotEmpty", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "sales", "service": "gong"},
                    "exp_annotations": {k: v.replace("{{ $value }}", "3").replace("{{ $labels.namespace }}", "sales")
                                        for k, v in _annotations("GongWebhookDeadLetterNotEmpty").items()},
                }]},
                {"eval_time": "5m", "alertname": "GongWebhookNotReady", "exp_alerts": []},
                # sales: 0 from 2m on (pod b's NaN ignored), firing after 15m; ops recovered: never.
                {"eval_time": "16m", "alertname": "GongWebhookGongApiDailyBudgetSpent", "exp_alerts": []},
                {"eval_time": "18m", "alertname": "GongWebhookGongApiDailyBudgetSpent", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "sales", "service": "gong"},
                    "exp_annotations": {k: v.replace("{{ $labels.namespace }}", "sales")
                                        for k, v in _annotations("GongWebhookGongApiDailyBudgetSpent").items()},
                }]},
                # op-a is 0 from 2m: pending until 7m, firing after; op-b and op-c never.
                {"eval_time": "6m", "alertname": "GongWebhookOperatorUnhealthy", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "GongWebhookOperatorUnhealthy", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "gong-system", "pod": "op-a"},
                    "exp_annotations": {
                        k: v.replace("{{ $labels.namespace }}", "gong-system").replace("{{ $labels.pod }}", "op-a")
                        for k, v in _annotations("GongWebhookOperatorUnhealthy").items()},
                }]},
                {"eval_time": "12m", "alertname": "GongWebhookNotReady", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "gongwebhook_namespace": "sales", "gongwebhook": "gong"},
                    "exp_annotations": {
                        k: v.replace("{{ $labels.gongwebhook_namespace }}", "sales").replace(
                            "{{ $labels.gongwebhook }}", "gong")
                        for k, v in _annotations("GongWebhookNotReady").items()},
                }]},
            ],
        }],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fire_the_gong_auth_and_missing_tables_alerts(tmp_path: Path) -> None:
    """Refused Gong credentials (issue 10 #6b) and missing Snowflake tables (#3) page someone: both
    last until a person fixes them, and meanwhile enrichment / loading waits."""
    promtool = shutil.which("promtool")
    assert promtool
    doc = yaml.safe_load(RULES.read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))

    def expected(alert: str, namespace: str, severity: str) -> dict[str, object]:
        return {"exp_labels": {"severity": severity, "namespace": namespace, "service": "gong"},
                "exp_annotations": {k: v.replace("{{ $labels.namespace }}", namespace)
                                    for k, v in _annotations(alert).items()}}

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # sales: pod a refused from 2m on, pod b never asked Gong; ops: refused for 5m, then fixed.
                {"series": 'gong_webhook_gong_api_auth_failing{namespace="sales",service="gong",pod="a"}',
                 "values": "0 0 1x30"},
                {"series": 'gong_webhook_gong_api_auth_failing{namespace="sales",service="gong",pod="b"}',
                 "values": "0x32"},
                {"series": 'gong_webhook_gong_api_auth_failing{namespace="ops",service="gong",pod="c"}',
                 "values": "1x5 0x27"},
                # sales: the events table missing from 1m on; ops: migrate ran after 3m.
                {"series": 'gong_webhook_snowflake_missing_tables{namespace="sales",service="gong",pod="a"}',
                 "values": "0 1x30"},
                {"series": 'gong_webhook_snowflake_missing_tables{namespace="ops",service="gong",pod="c"}',
                 "values": "1 1 1 0x29"},
            ],
            "alert_rule_test": [
                {"eval_time": "11m", "alertname": "GongWebhookGongApiAuthFailing", "exp_alerts": []},
                {"eval_time": "13m", "alertname": "GongWebhookGongApiAuthFailing",
                 "exp_alerts": [expected("GongWebhookGongApiAuthFailing", "sales", "warning")]},
                {"eval_time": "5m", "alertname": "GongWebhookSnowflakeTablesMissing", "exp_alerts": []},
                {"eval_time": "7m", "alertname": "GongWebhookSnowflakeTablesMissing",
                 "exp_alerts": [expected("GongWebhookSnowflakeTablesMissing", "sales", "critical")]},
            ],
        }],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _annotations(alert: str) -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["spec"]["groups"]:
        for r in g["rules"]:
            if r["alert"] == alert:
                return dict(r["annotations"])
    raise KeyError(alert)
