"""Manifests and deploy: the kustomize tree parses, builds KServe client models with the required fields,
equals what gr2.serve.deploy renders; applying waits for Ready against a fake Kubernetes API."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes.client import models as kubernetes_models
from kubernetes.client.exceptions import ApiException

from gr2.serve.deploy import (
    MODEL_PVC,
    apply_and_wait,
    cluster_uri,
    deploy,
    render_inference_service,
)
from gr2.serve.kserve_import import kserve

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
PLACEHOLDER_URI = f"pvc://{MODEL_PVC}/bundles/latest"


PLAIN_TYPES = {"str", "int", "bool", "float", "object", "datetime"}


def client_model(data, klass: str):
    """`data` as the KServe / Kubernetes client model `klass`, refusing fields the model does not have (the
    clients' own deserializer silently drops them, and KServe's cannot build Kubernetes types)."""
    if data is None or klass in PLAIN_TYPES:
        return data
    if klass.startswith("list["):
        return [client_model(item, klass[5:-1]) for item in data]
    if klass.startswith("dict("):
        value_type = re.match(r"dict\(([^,]*), (.*)\)", klass).group(2)
        return {key: client_model(value, value_type) for key, value in data.items()}
    model = getattr(kserve.models, klass, None) or getattr(kubernetes_models, klass)
    unknown = set(data) - set(model.attribute_map.values())
    assert not unknown, f"{klass} has no field(s) {sorted(unknown)}"
    return model(
        **{
            attribute: client_model(data[key], attribute_type)
            for attribute, attribute_type in model.openapi_types.items()
            if (key := model.attribute_map[attribute]) in data
        }
    )


def as_kserve_model(isvc: dict):
    return client_model(isvc, "V1beta1InferenceService")


def manifest_documents() -> list[dict]:
    return [doc for path in sorted(MANIFESTS.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def check_required_fields(isvc: dict, overlay: str) -> None:
    model = as_kserve_model(isvc)
    assert model.api_version == "serving.kserve.io/v1beta1" and model.kind == "InferenceService"
    assert model.metadata.name
    predictor = model.spec.predictor
    if overlay == "gpu":
        assert predictor.model.model_format.name == "huggingface" and predictor.model.storage_uri
        assert predictor.model.resources.limits["nvidia.com/gpu"] == "1"
        probe = predictor.model.startup_probe
        assert probe.failure_threshold * probe.period_seconds >= 600  # sized for minutes of model loading
        assert predictor.node_selector and predictor.tolerations[0].key == "nvidia.com/gpu"
        transformer = model.spec.transformer.containers[0]
        assert transformer.args[transformer.args.index("--backend") + 1] == "remote"
    else:
        container = predictor.containers[0]
        assert container.name == "kserve-container" and container.image
        assert any(env.name == "STORAGE_URI" and env.value for env in container.env)
        assert container.resources.limits["memory"]


def test_every_manifest_parses_with_kind_and_name():
    documents = manifest_documents()
    assert {"InferenceService", "PersistentVolumeClaim", "Role", "RoleBinding", "ServiceAccount"} <= {
        doc.get("kind") for doc in documents if isinstance(doc, dict)
    }


def test_deployer_role_is_least_privilege():
    role = next(doc for doc in manifest_documents() if isinstance(doc, dict) and doc.get("kind") == "Role")
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["get", "create", "update"]}
    ]
    assert not any(isinstance(doc, dict) and doc.get("kind", "").startswith("Cluster") for doc in manifest_documents())


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_rendered_inference_services_have_the_required_fields(overlay):
    check_required_fields(render_inference_service("gs://bucket/bundles/run1", "gr2-demo", "team", overlay), overlay)


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kustomize_overlays_equal_the_rendered_service(overlay):
    built = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    isvc = next(doc for doc in yaml.safe_load_all(built) if doc["kind"] == "InferenceService")
    rendered = render_inference_service(PLACEHOLDER_URI, overlay=overlay)
    del rendered["metadata"]["namespace"]  # kustomize leaves it to `kubectl apply -n`
    assert isvc == rendered
    check_required_fields(isvc, overlay)


def test_storage_uris():
    assert cluster_uri("gs://b/run") == "gs://b/run"
    assert cluster_uri("minio://mlpipeline/v2/artifacts/bundle") == "s3://mlpipeline/v2/artifacts/bundle"
    assert cluster_uri("/tmp/runs/demo/kfp/model") == f"pvc://{MODEL_PVC}/bundles/model"
    with pytest.raises(ValueError, match="unsupported scheme 'http'"):
        cluster_uri("http://example/model")
    gpu = render_inference_service("gs://b/run", overlay="gpu")
    assert gpu["spec"]["transformer"]["containers"][0]["args"][3] == "gs://b/run"
    assert "volumes" not in gpu["spec"]["transformer"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "GR2"}, "DNS label"),
        ({"namespace": "-x"}, "namespace"),
        ({"overlay": "tpu"}, "overlay 'tpu'"),
    ],
)
def test_render_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        render_inference_service("gs://b/run", **arguments)


def test_local_deploy_writes_the_manifest_without_a_cluster(tmp_path):
    result = deploy("gs://b/run1", tmp_path / "isvc.yaml", name="gr2-demo", namespace="team")
    written = yaml.safe_load(Path(result["manifest"]).read_text())
    assert written == render_inference_service("gs://b/run1", "gr2-demo", "team")
    assert "url" not in result


class FakeCustomObjects:
    """The slice of CustomObjectsApi that apply_and_wait uses; Ready after `ready_after` polls."""

    def __init__(self, existing: dict | None = None, ready_after: int = 2):
        self.stored = existing
        self.polls = 0
        self.ready_after = ready_after
        self.calls: list[str] = []

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append("get")
        if self.stored is None:
            raise ApiException(status=404)
        self.polls += 1
        ready = "True" if self.polls > self.ready_after else "False"
        status = {"observedGeneration": self.stored["metadata"]["generation"], "url": "http://gr2.team.example"}
        return self.stored | {"status": status | {"conditions": [{"type": "Ready", "status": ready, "message": "m"}]}}

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append("create")
        self.stored = body | {"metadata": body["metadata"] | {"generation": 1, "resourceVersion": "1"}}
        return self.stored

    def replace_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append("replace")
        assert body["metadata"]["resourceVersion"] == self.stored["metadata"]["resourceVersion"]
        generation = self.stored["metadata"]["generation"] + 1
        self.stored = body | {"metadata": body["metadata"] | {"generation": generation}}
        return self.stored


def test_apply_creates_then_replaces_and_waits_for_ready():
    manifest = render_inference_service("gs://b/run1", "gr2", "team")
    api = FakeCustomObjects()
    assert apply_and_wait(manifest, timeout=5, api=api, poll_seconds=0)["status"]["url"] == "http://gr2.team.example"
    assert api.calls[:2] == ["get", "create"]
    api.polls, api.calls = 0, []
    apply_and_wait(manifest, timeout=5, api=api, poll_seconds=0)
    assert api.calls[:2] == ["get", "replace"] and api.stored["metadata"]["generation"] == 2


def test_apply_times_out_naming_the_conditions():
    api = FakeCustomObjects(ready_after=10**6)
    with pytest.raises(TimeoutError, match="team/gr2 not Ready after 0.2 s; conditions: Ready=False m"):
        apply_and_wait(render_inference_service("gs://b/run1", "gr2", "team"), timeout=0.2, api=api, poll_seconds=0.05)
