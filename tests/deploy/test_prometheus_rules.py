"""deploy/prometheus/: the rules load in Prometheus' own checker and every alert has a unit test.

``promtool check rules`` and ``promtool test rules`` (Debian's ``prometheus`` package, installed by
``scripts/test``) are the tools Prometheus itself uses; each alert must be expected to fire in
some test group of ``tests*.yaml``, and its runbook link must name a heading of
docs/OPERATIONS.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"
TESTS = sorted(RULES.glob("tests*.yaml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: scripts/test installs Debian's prometheus package")
    return subprocess.run([exe, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load((RULES / "rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", *(t.name for t in TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    fired: set[str] = set()
    for path in TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    assert {str(a["alert"]) for a in alerts()} <= fired


def test_every_alert_links_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (ROOT / "docs" / "OPERATIONS.md").read_text().splitlines()
        if line.startswith("#")
    }
    for alert in alerts():
        runbook = str(alert["annotations"]["runbook"])  # type: ignore[index]
        assert runbook.startswith("docs/OPERATIONS.md#"), alert["alert"]
        assert runbook.split("#", 1)[1] in headings, f"{alert['alert']}: no heading for {runbook}"
