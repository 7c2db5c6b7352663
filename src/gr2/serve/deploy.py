"""Deploying a model bundle as a KServe InferenceService: render, apply, wait for Ready.

The rendered objects equal what `kubectl kustomize manifests/overlays/{cpu,gpu}` builds (a test keeps
them equal); this module is what the pipeline's deploy step runs, the kustomize tree is for people and GitOps.
- `cpu`: the GR2 server is the predictor (local transformers backend); the bundle arrives through KServe's
  storage initializer (STORAGE_URI) at /mnt/models.
- `gpu`: KServe's huggingface runtime with the vLLM backend serves the bundle's checkpoint on a GPU node;
  the GR2 server is the transformer in front of it (remote backend: prompts, constrained ranking, fallback).
"""

from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path

import yaml

SERVE_IMAGE = os.environ.get("GR2_SERVE_IMAGE", "ghcr.io/gr2-kubeflow/gr2-serve:0.1.0")
OVERLAYS = ("cpu", "gpu")
MODEL_PVC = "gr2-model-cache"
MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
SERVER_COMMAND = ["python", "-m", "gr2.serve.server"]
GPU_NODE_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_SCHEMES = ("gs", "s3", "pvc")


def cluster_uri(model_uri: str) -> str:
    """The storage URI KServe can fetch the bundle from: gs://, s3:// and pvc:// as they are; KFP's minio://
    as s3:// (the service account needs MinIO's S3 endpoint and keys); a local path (a kfp.local run) as the
    same directory name under bundles/ on the model PVC, where it has to be copied before applying."""
    scheme, separator, rest = model_uri.partition("://")
    if separator and scheme in _CLUSTER_SCHEMES:
        return model_uri
    if separator and scheme == "minio":
        return f"s3://{rest}"
    if not separator:
        return f"pvc://{MODEL_PVC}/bundles/{Path(model_uri).name}"
    raise ValueError(f"model_uri {model_uri!r}: unsupported scheme {scheme!r}; use gs://, s3://, pvc:// or minio://")


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "gr2-kubeflow"}


def server_container(args: list[str], resources: dict, image: str) -> dict:
    return {
        "name": "kserve-container",
        "image": image,
        "command": list(SERVER_COMMAND),
        "args": ["--host", "0.0.0.0", *args],
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "GR2_MODEL_CACHE", "value": "/tmp/gr2-cache"}],
        "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": resources,
    }


def base_inference_service(name: str, storage_uri: str, image: str) -> dict:
    """The CPU predictor every overlay starts from (manifests/base/inferenceservice.yaml)."""
    container = server_container(
        ["--model", MODEL_MOUNT, "--port", str(HTTP_PORT), "--name", name],
        {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        image,
    )
    container["env"].append({"name": "STORAGE_URI", "value": storage_uri})
    container["readinessProbe"] = {"httpGet": {"path": f"/v1/models/{name}", "port": HTTP_PORT}, "periodSeconds": 5}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "containers": [container]}},
    }


def cpu_overlay(isvc: dict) -> dict:
    """More CPU and memory, and a timeout that leaves room for CPU decoding (manifests/overlays/cpu)."""
    container = isvc["spec"]["predictor"]["containers"][0]
    container["args"] += ["--set", "device=cpu", "--set", "timeout_seconds=120"]
    container["resources"] = {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}}
    return isvc


def transformer_model_source(storage_uri: str) -> tuple[str, list[dict], list[dict]]:
    """How the GPU overlay's transformer (which KServe gives no storage initializer) reads the bundle:
    (its --model, volumes, volume mounts). A PVC is mounted read-only; a bucket is read with fsspec, weights
    left out (the transformer needs the tokenizer, SID map and catalogue only)."""
    scheme, _, rest = storage_uri.partition("://")
    if scheme != "pvc":
        return storage_uri, [], []
    claim, _, path = rest.partition("/")
    volume = {"name": "model-store", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
    mount = {"name": "model-store", "mountPath": "/mnt/pvc", "readOnly": True}
    return f"/mnt/pvc/{path}", [volume], [mount]


def gpu_overlay(isvc: dict) -> dict:
    """vLLM predictor on a GPU node, GR2 server as its transformer (manifests/overlays/gpu)."""
    name = isvc["metadata"]["name"]
    base = isvc["spec"]["predictor"]
    storage_uri = next(e["value"] for e in base["containers"][0]["env"] if e["name"] == "STORAGE_URI")
    image = base["containers"][0]["image"]
    gpu = {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"}
    isvc["spec"]["predictor"] = {
        "minReplicas": 1,
        "maxReplicas": 1,
        "nodeSelector": dict(GPU_NODE_SELECTOR),
        "tolerations": copy.deepcopy(GPU_TOLERATIONS),
        "model": {
            "modelFormat": {"name": "huggingface"},
            "storageUri": storage_uri,
            "args": [f"--model_name={name}-llm", "--backend=vllm", "--dtype=bfloat16", "--max_model_len=4096"],
            "resources": {"requests": gpu, "limits": dict(gpu)},
            # an 8B checkpoint takes minutes to copy and load; liveness and readiness wait for this probe
            "startupProbe": {
                "httpGet": {"path": "/", "port": HTTP_PORT},
                "initialDelaySeconds": 30,
                "periodSeconds": 10,
                "failureThreshold": 90,
            },
        },
    }
    model, volumes, mounts = transformer_model_source(storage_uri)
    container = server_container(
        ["--model", model, "--backend", "remote", "--set", f"remote_model={name}-llm", "--set", "concurrency=16"],
        {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        image,
    )
    if mounts:
        container["volumeMounts"] = mounts
    transformer = {"minReplicas": 1, "maxReplicas": 1, "containers": [container]}
    if volumes:
        transformer["volumes"] = volumes
    isvc["spec"]["transformer"] = transformer
    return isvc


def render_inference_service(
    model_uri: str, name: str = "gr2", namespace: str = "default", overlay: str = "cpu", image: str = SERVE_IMAGE
) -> dict:
    """The InferenceService serving the bundle at `model_uri` (see `cluster_uri`) as `name` in `namespace`."""
    if not _DNS_LABEL.match(name):
        raise ValueError(f"name {name!r}: an InferenceService name is a DNS label (a-z, 0-9, '-'; at most 63)")
    if not _DNS_LABEL.match(namespace):
        raise ValueError(f"namespace {namespace!r}: not a valid Kubernetes namespace name")
    if overlay not in OVERLAYS:
        raise ValueError(f"overlay {overlay!r}: expected one of {OVERLAYS}")
    isvc = base_inference_service(name, cluster_uri(model_uri), image)
    isvc["metadata"]["namespace"] = namespace
    return cpu_overlay(isvc) if overlay == "cpu" else gpu_overlay(isvc)


def write_manifest(manifest: dict, path: str | Path) -> Path:
    from gr2.storage.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(manifest, sort_keys=False))
    return Path(path)


def is_ready(isvc: dict, generation: int | None) -> bool:
    status = isvc.get("status") or {}
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def conditions_summary(isvc: dict) -> str:
    conditions = (isvc.get("status") or {}).get("conditions") or []
    return "; ".join(f"{c.get('type')}={c.get('status')} {c.get('message', '')}".strip() for c in conditions) or "none"


def custom_objects_api():
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def apply(manifest: dict, api) -> dict:
    """Create the InferenceService, or replace the existing one (the RBAC allows get, create, update)."""
    from kubernetes.client.exceptions import ApiException

    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status != 404:
            raise
        return api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    body = copy.deepcopy(manifest)
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    return api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)


def apply_and_wait(manifest: dict, timeout: float, api=None, poll_seconds: float = 5.0) -> dict:
    """Apply the InferenceService and wait until KServe reports it Ready for this generation; returns it
    (status.url is its address). TimeoutError names the conditions it was stuck on."""
    api = api or custom_objects_api()
    applied = apply(manifest, api)
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    generation = applied.get("metadata", {}).get("generation")
    deadline = time.monotonic() + timeout
    while True:
        isvc = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        if is_ready(isvc, generation):
            return isvc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"InferenceService {namespace}/{name} not Ready after {timeout:g} s; conditions: "
                f"{conditions_summary(isvc)}"
            )
        time.sleep(min(poll_seconds, max(deadline - time.monotonic(), 0)))


def deploy(
    model_uri: str,
    manifest_path: str | Path,
    name: str = "gr2",
    namespace: str = "default",
    overlay: str = "cpu",
    apply_to_cluster: bool = False,
    timeout: float = 1800.0,
) -> dict:
    """The pipeline's deploy step: render (always written to `manifest_path`), and on a cluster apply and
    wait. Returns {"manifest": path, "storage_uri": ..., "url": ... (on a cluster)}."""
    manifest = render_inference_service(model_uri, name, namespace, overlay)
    result = {"manifest": str(write_manifest(manifest, manifest_path)), "storage_uri": cluster_uri(model_uri)}
    if apply_to_cluster:
        result["url"] = (apply_and_wait(manifest, timeout).get("status") or {}).get("url", "")
    return result
