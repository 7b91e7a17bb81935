"""deploy/k8s/: two topologies of plain manifests, valid and shaped as an operator needs them.

Every manifest passes ``kubernetes-validate --strict`` (the API's own schemas, offline; PyPI);
the topologies are plain files, applied with ``kubectl apply -f deploy/k8s/<topology>/`` — no
renderer is needed (deploy/k8s/README.md says why). The routing table is checked in
tests/unit/test_deploy_files.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_deploy_files import TOPOLOGIES, k8s_documents, k8s_kind

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_manifest_validates_strictly(topology: str) -> None:
    files = sorted(str(f) for f in (K8S / topology).glob("*.yaml"))
    result = subprocess.run(
        [str(VALIDATE), "--strict", "--quiet", *files], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def containers(topology: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(owner, pod spec, container)`` of every Deployment and Job."""
    found = []
    for doc in k8s_documents(topology):
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            found += [(doc["metadata"]["name"], pod, c) for c in pod["containers"]]
    return found


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_pods_run_non_root_with_limits_and_no_privileges(topology: str) -> None:
    for owner, pod, container in containers(topology):
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert pod["automountServiceAccountToken"] is False, owner
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"], owner
        assert security["capabilities"]["drop"] == ["ALL"], owner
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), owner
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), owner


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_secrets_are_referenced_never_shipped(topology: str) -> None:
    """Only secrets.example.yaml holds Secrets; the rest names them (env or volume)."""
    for path in (K8S / topology).glob("*.yaml"):
        if path.name != "secrets.example.yaml":
            assert "kind: Secret" not in path.read_text(), path
    config = k8s_kind("ConfigMap", topology)["berth-config"]["data"]
    assert not any("PASSWORD" in key or key.endswith("_URL") for key in config)
    for owner, _, container in containers(topology):
        refs = {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
        if owner != "berth-ui":
            assert "BERTH_DATABASE_URL" in refs, owner


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_migrations_run_as_a_job_before_services_start(topology: str) -> None:
    (job,) = k8s_kind("Job", topology).values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert k8s_kind("ConfigMap", topology)["berth-config"]["data"]["BERTH_MIGRATE_ON_START"] == "false"


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_ingress_streams_large_layers(topology: str) -> None:
    notes = k8s_kind("Ingress", topology)["berth"]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "proxy-body-size"] == "0"
    assert notes[prefix + "proxy-request-buffering"] == "off"
    assert notes[prefix + "proxy-buffering"] == "off"
    assert int(notes[prefix + "proxy-read-timeout"]) >= 600 <= int(notes[prefix + "proxy-send-timeout"])


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_network_policies_deny_by_default(topology: str) -> None:
    deny = k8s_kind("NetworkPolicy", topology)["berth-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}


def test_single_node_keeps_blobs_on_a_volume() -> None:
    (claim,) = k8s_kind("PersistentVolumeClaim", "single-node").values()
    for name in ("berth-blob", "berth-gc"):
        volumes = k8s_kind("Deployment", "single-node")[name]["spec"]["template"]["spec"]["volumes"]
        assert {"claimName": claim["metadata"]["name"]} in [v.get("persistentVolumeClaim") for v in volumes]
    assert k8s_kind("ConfigMap", "single-node")["berth-config"]["data"]["BERTH_STORAGE__KIND"] == "filesystem"


def test_scaled_runs_replicas_on_s3_with_autoscaling_and_budgets() -> None:
    deployments = k8s_kind("Deployment", "scaled")
    assert deployments["berth-gc"]["spec"]["replicas"] == 1
    assert deployments["berth-gc"]["spec"]["strategy"]["type"] == "Recreate"
    assert (
        deployments["berth-auth"]["spec"]["replicas"] >= 2
        and deployments["berth-ui"]["spec"]["replicas"] >= 2
    )
    scalers = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in k8s_kind("HorizontalPodAutoscaler").values()
    }
    assert set(scalers) == {"berth-api", "berth-blob"}
    for name, spec in scalers.items():
        assert spec["minReplicas"] >= 2 and "replicas" not in deployments[name]["spec"]
    budgets = {
        b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for b in k8s_kind("PodDisruptionBudget").values()
    }
    assert budgets == {"berth-api", "berth-blob", "berth-auth", "berth-ui"}
    assert k8s_kind("ConfigMap")["berth-config"]["data"]["BERTH_STORAGE__KIND"] == "s3"
    assert not k8s_kind("PersistentVolumeClaim")


def test_scaled_reads_the_s3_keys_from_the_secret() -> None:
    """The ConfigMap names key files inside the ``berth-s3`` Secret's mount in the blob and gc
    pods (the only ones that touch the store); the example Secret has both keys; no key value
    is in the ConfigMap."""
    data = k8s_kind("ConfigMap")["berth-config"]["data"]
    assert not any(k.endswith(("ACCESS_KEY", "SECRET_KEY")) for k in data)
    (secret,) = [s for s in k8s_kind("Secret").values() if s["metadata"]["name"] == "berth-s3"]
    for option in ("ACCESS_KEY_FILE", "SECRET_KEY_FILE"):
        folder, key = data[f"BERTH_STORAGE__{option}"].rsplit("/", 1)
        assert key in secret["stringData"]
        for name in ("berth-blob", "berth-gc"):
            pod = k8s_kind("Deployment")[name]["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["mountPath"]: m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
            assert folder in mounts, name
            assert volumes[mounts[folder]]["secret"]["secretName"] == "berth-s3", name
