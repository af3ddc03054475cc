"""The Kubernetes manifests (issue 16, point 7): every one passes kubernetes-validate (the API
schemas of a current Kubernetes), and every pod meets the Pod Security Standard "restricted"."""
import glob
import os
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = sorted(glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*", "*.yaml")))


def documents():
    for path in MANIFESTS:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    yield path, doc


def test_manifests_validate_against_the_kubernetes_api_schemas():
    assert MANIFESTS
    for path in MANIFESTS:
        # The Secret template has placeholders, but is still a valid Secret.
        result = subprocess.run(["kubernetes-validate", "--strict", path], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{path}: {result.stdout}{result.stderr}"


def test_pods_meet_the_restricted_pod_security_standard():
    pods = [(path, doc["spec"]["template"]["spec"]) for path, doc in documents() if doc.get("kind") in ("Deployment", "StatefulSet")]
    assert pods, "a workload to check"
    for path, pod in pods:
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, path
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", path
        for container in pod["containers"]:
            c = container.get("securityContext", {})
            assert c.get("allowPrivilegeEscalation") is False, path
            assert c.get("capabilities", {}).get("drop") == ["ALL"], path
            assert c.get("readOnlyRootFilesystem") is True, path
            assert c.get("seccompProfile", {}).get("type", security.get("seccompProfile", {}).get("type")) == "RuntimeDefault", path
            assert "limits" in container.get("resources", {}) and "requests" in container["resources"], path
            # Readiness and liveness on the worker's operations port.
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_one_consumer_group_runs_one_kind_of_workload():
    # Applying either overlay never starts two kinds of workload in one consumer group.
    for overlay in ["single-replica-sqlite", "replicas-postgres"]:
        kinds = [doc["kind"] for path, doc in documents() if f"/{overlay}/" in path and doc.get("kind") in ("Deployment", "StatefulSet")]
        assert kinds == ["Deployment"], f"{overlay}: {kinds}"
