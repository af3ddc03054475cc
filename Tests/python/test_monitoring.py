"""Monitoring shipped in deploy/ (issue 16, point 5): the Prometheus alert rules pass
`promtool check rules` and their unit tests (`promtool test rules`); the Grafana dashboard's
queries are valid PromQL over metrics the worker exports (the help catalogue in
WorkerMetrics.swift, which the /metrics test checks against a running worker)."""
import json
import os
import re
import subprocess
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.test.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "duo-lifecycle.json")
CATALOGUE = os.path.join(ROOT, "Sources", "LifecycleWorker", "WorkerMetrics.swift")


def exported_metrics():
    with open(CATALOGUE) as f:
        return set(re.findall(r'^\s+"((?:duo_lifecycle|kafka)_\w+)": "', f.read(), re.M))


def referenced_metrics(expr):
    names = set(re.findall(r"\b((?:duo_lifecycle|kafka)_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) if n.endswith(("_bucket", "_count", "_sum")) and "seconds" in n else n for n in names}


def promtool(*args):
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def test_alert_rules_pass_promtool_check():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass():
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_the_operational_risks():
    with open(RULES) as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    for wanted in ["DuoLifecycleLeaverLockoutSlow", "DuoLifecycleDeadLettersGrowing", "DuoLifecycleCircuitBreakerOpen", "DuoLifecycleOutboxStale"]:
        assert wanted in names
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        unknown = referenced_metrics(rule["expr"]) - exported_metrics()
        assert not unknown, f"{rule['alert']} uses metrics the worker does not export: {unknown}"


def test_dashboard_queries_are_valid_promql_over_exported_metrics():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    panels = dashboard["panels"]
    assert len(panels) >= 10 and len({p["id"] for p in panels}) == len(panels)
    exprs = [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
    text = " ".join(e for _, e in exprs)
    for metric in ["duo_lifecycle_lockout_seconds", "kafka_consumer_lag", "duo_lifecycle_dead_letters_total",
                   "duo_lifecycle_circuit_breaker_open", "duo_lifecycle_outbox_oldest_age_seconds"]:
        assert metric in text, f"the dashboard shows {metric}"
    for title, expr in exprs:
        unknown = referenced_metrics(expr) - exported_metrics()
        assert not unknown, f"panel {title!r} uses metrics the worker does not export: {unknown}"
    # promtool parses PromQL in recording rules: Grafana's variables replaced by what they become.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$job", ".*")}
        for i, (_, expr) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(rules, f)
    try:
        result = promtool("check", "rules", f.name)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        os.unlink(f.name)
