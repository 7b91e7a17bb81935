"""A Helm chart stored and fetched the way ``helm push`` / ``helm pull`` do (OCI registries).

Helm 3.8+ keeps a chart in an OCI registry as an image-manifest with its own media types (Helm
docs, "Use OCI-based registries"): the config is the chart's metadata as JSON
(``application/vnd.cncf.helm.config.v1+json``) and the one layer is the packaged chart
(``application/vnd.cncf.helm.chart.content.v1.tar+gzip``), tagged with the chart version.
The helm binary itself is not in the test environment (Debian 12 and PyPI do not ship it), so
this drives the same wire exchange with the ``oras`` client: the manifest must keep helm's media
types and the chart must come back byte for byte.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import oras.client
import pytest

from tests.e2e.conftest import Registry
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.e2e

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
CHART_YAML = "apiVersion: v2\nname: berthdemo\nversion: 0.1.0\ndescription: a chart for the e2e test\n"


def package_chart(folder: Path) -> Path:
    """``helm package``'s output for a minimal chart: ``berthdemo-0.1.0.tgz`` with
    ``berthdemo/Chart.yaml``, ``values.yaml`` and one template."""
    files = {
        "berthdemo/Chart.yaml": CHART_YAML,
        "berthdemo/values.yaml": "replicas: 1\n",
        "berthdemo/templates/configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
            "data:\n  replicas: {{ .Values.replicas | quote }}\n"
        ),
    }
    chart = folder / "berthdemo-0.1.0.tgz"
    with tarfile.open(chart, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return chart


def test_helm_chart_round_trip(registry: Registry, tmp_path: Path) -> None:
    repo = registry.new_repo("charts/berthdemo")
    target = f"{registry.host}/{repo}:0.1.0"
    chart = package_chart(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"apiVersion": "v2", "name": "berthdemo", "version": "0.1.0"}))

    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    if registry.kind == "berth":
        client.auth.set_basic_auth(ADMIN_USER, ADMIN_PASSWORD)
    client.push(
        target=target,
        files=[f"{chart}:{HELM_CHART}"],
        manifest_config=f"{config}:{HELM_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )
    manifest = client.get_manifest(target)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == HELM_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [HELM_CHART]

    out = tmp_path / "pulled"
    files = client.pull(target=target, outdir=str(out))
    assert [Path(f).name for f in files] == [chart.name]
    assert Path(files[0]).read_bytes() == chart.read_bytes()
    with tarfile.open(files[0]) as tar:
        chart_yaml = tar.extractfile("berthdemo/Chart.yaml")
        assert chart_yaml is not None and chart_yaml.read().decode() == CHART_YAML
