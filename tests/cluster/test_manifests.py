"""The manifests as a cluster would take them: `kubectl kustomize` builds every overlay, the built-in kinds
pass Kubernetes' own schemas strictly (kubernetes-validate, offline), and the InferenceService passes the
schema of the pinned KServe (manifests/schemas/, see tests/cluster/kserve_schema.py), unknown fields refused."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.cluster.kserve_schema import inference_service_schema, pinned_kserve, schema_path
from tests.conftest import REPO

OVERLAYS = sorted(path.parent.name for path in (REPO / "manifests" / "overlays").glob("*/kustomization.yaml"))
# kubernetes<31 in pyproject: the client speaks 1.30; a cluster that old must still accept the manifests
KUBERNETES_VERSION = "1.30.0"
KUSTOMIZE = shutil.which("kubectl")


def kustomize_build(overlay: str) -> list[dict]:
    if KUSTOMIZE is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed: install the kubectl package")
    built = subprocess.run(
        [KUSTOMIZE, "kustomize", str(REPO / "manifests" / "overlays" / overlay)], capture_output=True, text=True
    )
    assert built.returncode == 0, f"kubectl kustomize manifests/overlays/{overlay}: {built.stderr}"
    return list(yaml.safe_load_all(built.stdout))


def strict_kubernetes_errors(document: dict) -> str | None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed: pip install kubernetes-validate==1.37.0"
    )
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{document['kind']}/{document['metadata']['name']}: {error.message} at {list(error.path)}"
    return None


def kserve_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(schema_path(pinned_kserve()).read_text()))
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def inference_service(documents: list[dict]) -> dict:
    [service] = [document for document in documents if document["kind"] == "InferenceService"]
    return service


def test_there_are_overlays_to_check():
    assert {"cpu", "gpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_in_kinds_pass_kubernetes_strict_schemas(overlay):
    built_in = [document for document in kustomize_build(overlay) if document["kind"] != "InferenceService"]
    assert {document["kind"] for document in built_in} >= {"PersistentVolumeClaim", "Role", "RoleBinding"}
    assert [error for error in map(strict_kubernetes_errors, built_in) if error] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inference_service_passes_the_pinned_kserve_schema(overlay):
    assert kserve_errors(inference_service(kustomize_build(overlay))) == []


def test_a_field_kubernetes_does_not_know_fails():
    claim = next(document for document in kustomize_build("cpu") if document["kind"] == "PersistentVolumeClaim")
    claim["spec"]["accessMode"] = ["ReadWriteOnce"]  # the field is accessModes
    assert "accessMode" in strict_kubernetes_errors(claim)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("spec", "predictor"), "minReplica"),
        (("spec", "predictor", "containers", 0), "readinesProbe"),
        (("spec",), "predicter"),
    ],
)
def test_a_field_kserve_does_not_know_fails(where, field):
    service = copy.deepcopy(inference_service(kustomize_build("cpu")))
    node = service
    for key in where:
        node = node[key]
    node[field] = 1
    errors = kserve_errors(service)
    assert len(errors) == 1 and f"'{field}' was unexpected" in errors[0], errors


def test_a_wrong_type_fails():
    service = inference_service(kustomize_build("cpu"))
    service["spec"]["predictor"]["maxReplicas"] = "one"
    assert kserve_errors(service) == ["spec.predictor.maxReplicas: 'one' is not of type 'integer'"]


def test_the_kept_schema_is_the_pinned_kserve_s():
    installed, pinned = importlib.metadata.version("kserve"), pinned_kserve()
    if installed != pinned:
        pytest.skip(f"kserve {installed} is installed, images/requirements-serve.in pins {pinned}")
    kept = json.loads(schema_path(pinned).read_text())
    assert kept == inference_service_schema(), "rewrite it: python -m tests.cluster.kserve_schema"
