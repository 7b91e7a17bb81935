"""The Grafana dashboard and the Prometheus rules use only metrics Berth exports.

Every metric name in ``deploy/grafana/berth.json`` and ``deploy/prometheus/rules.yaml`` must be
in the ``/metrics`` text of a running Berth (the all-in-one app, every service's metrics) or be
a recording rule of rules.yaml; nothing is skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.berth_app import berth_app

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"(?<![\w:])(berth_[a-z0-9_]+|[a-z_]+:berth_[a-z0-9_]+:[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum")


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "berth.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]

    def walk(panels: list[dict[str, Any]]) -> list[str]:
        found: list[str] = []
        for panel in panels:
            found += [t["expr"] for t in panel.get("targets", [])]
            found += walk(panel.get("panels", []))
        return found

    return walk(dashboard["panels"])


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def exported(metrics_text: str) -> set[str]:
    """Metric family names of a scrape (``# TYPE`` lines), with their sample names."""
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            names |= {name, *(name + s for s in SUFFIXES)}
    return names


async def test_every_metric_in_the_dashboard_and_rules_is_exported() -> None:
    async with berth_app() as berth:
        metrics = (await berth.client.get("/metrics")).text
    names = exported(metrics)
    recorded = {r["record"] for r in rules() if "record" in r}
    expressions = dashboard_expressions() + [r["expr"] for r in rules()]
    assert len(dashboard_expressions()) >= 20
    used = {m for e in expressions for m in METRIC.findall(str(e))}
    unknown = sorted(m for m in used if m not in names and m not in recorded)
    assert not unknown, f"not exported by Berth: {unknown}"
