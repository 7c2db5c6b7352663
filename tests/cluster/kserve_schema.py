"""The InferenceService's JSON Schema for the pinned KServe, kept in manifests/schemas/.

KServe publishes its CRDs in its repository, not in a package: the schema here is written from the API models
of the pinned `kserve` package on PyPI (images/requirements-serve.in), which KServe generates from the same Go
types as its CRDs, and from the Kubernetes types those models embed (the `kubernetes` package, the version
pyproject pins). Every object refuses the fields its type does not have, as the API server's strict field
validation does. Rewrite it after changing the pin:

    python -m tests.cluster.kserve_schema
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^kserve==(\S+)$", re.MULTILINE)
PLAIN_TYPES = {
    "str": {"type": "string"},
    "datetime": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "object": {},  # int-or-string and free-form values
}
# types the models name but neither package defines
QUANTITY = {"type": ["string", "number"]}
UNDEFINED_TYPES = {"V1Time": {"type": "string"}, "ResourceQuantity": QUANTITY, "V1beta1MetricQuantity": QUANTITY}


def pinned_kserve() -> str:
    requirements = REPO / "images" / "requirements-serve.in"
    match = PIN.search(requirements.read_text())
    if match is None:
        raise ValueError(f"{requirements}: no `kserve==VERSION` line")
    return match[1]


def schema_path(version: str) -> Path:
    return REPO / "manifests" / "schemas" / f"inferenceservice-kserve-{version}.json"


def type_schema(type_name: str, definitions: dict[str, dict]) -> dict:
    """The schema of one model attribute type as the client models spell it: `str`, `list[V1Container]`,
    `dict(str, str)`, `V1beta1PredictorSpec`."""
    if type_name in PLAIN_TYPES:
        return PLAIN_TYPES[type_name]
    if type_name.startswith("list["):
        return {"type": "array", "items": type_schema(type_name[5:-1], definitions)}
    if type_name.startswith("dict("):
        value_type = re.fullmatch(r"dict\(str, (.*)\)", type_name)[1]
        return {"type": "object", "additionalProperties": type_schema(value_type, definitions)}
    add_definition(type_name, definitions)
    return {"$ref": f"#/definitions/{type_name}"}


def model_class(model_name: str):
    """The client model named `model_name`, or None where neither package defines it (a Knative status
    type, or a Kubernetes type newer than the client)."""
    from kserve import models as kserve_models
    from kubernetes.client import models as kubernetes_models

    # KServe names a few Kubernetes types by their path: K8sIoApiAppsV1DeploymentStrategy is V1DeploymentStrategy
    kubernetes_name = re.sub(r"^K8sIoApi[A-Z][a-z]+", "", model_name)
    return getattr(kserve_models, model_name, None) or getattr(kubernetes_models, kubernetes_name, None)


def add_definition(model_name: str, definitions: dict[str, dict]) -> None:
    if model_name in definitions:
        return
    definitions[model_name] = {}  # reserved first: the types refer to each other
    model = model_class(model_name)
    if model is None:
        definitions[model_name] = UNDEFINED_TYPES.get(model_name, {"$comment": "not defined by the models: open"})
        return
    types = model.openapi_types.items()
    properties = {model.attribute_map[name]: type_schema(kind, definitions) for name, kind in types}
    definitions[model_name] = {"type": "object", "properties": properties, "additionalProperties": False}


def inference_service_schema() -> dict:
    definitions: dict[str, dict] = {}
    root = type_schema("V1beta1InferenceService", definitions)
    versions = {name: importlib.metadata.version(name) for name in ("kserve", "kubernetes")}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": (
            f"serving.kserve.io/v1beta1 InferenceService, written by tests/cluster/kserve_schema.py from the API "
            f"models of kserve {versions['kserve']} and kubernetes {versions['kubernetes']} (PyPI, both "
            "Apache-2.0); unknown fields are refused"
        ),
        **root,
        "definitions": dict(sorted(definitions.items())),
    }


def main() -> int:
    version, installed = pinned_kserve(), importlib.metadata.version("kserve")
    if installed != version:
        print(f"kserve {installed} is installed; images/requirements-serve.in pins {version}", file=sys.stderr)
        return 1
    path = schema_path(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(inference_service_schema(), indent=1) + "\n")
    print(f"{path.relative_to(REPO)}: {len(inference_service_schema()['definitions'])} types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
