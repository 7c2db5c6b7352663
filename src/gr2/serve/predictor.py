"""The GR2 predictor: a `kserve.Model` answering the v1 and v2 protocols with `Reranker`."""

from __future__ import annotations

import time
import uuid

from gr2.serve.backends import Backend, LocalBackend, RemoteBackend
from gr2.serve.bundle import Bundle, load_bundle, resolve_bundle
from gr2.serve.config import ServeConfig
from gr2.serve.kserve_import import InferOutput, InferRequest, InferResponse, InvalidInput, kserve
from gr2.serve.metrics import INVALID_REQUESTS, REQUEST_LATENCY
from gr2.serve.reranker import RankResult, Reranker
from gr2.serve.validation import Limits, RequestError, v1_requests, v2_request


def make_backend(config: ServeConfig, bundle: Bundle) -> Backend:
    if config.backend == "remote":
        return RemoteBackend.from_checkpoint(
            bundle.path, config.remote_url, config.remote_model or config.name, config.remote_api_key_env
        )
    return LocalBackend.from_checkpoint(bundle.path, config.device, config.dtype)


def v2_outputs(result: RankResult) -> list[InferOutput]:
    outputs = [
        InferOutput("ranking", [len(result.ranking)], "BYTES", list(result.ranking)),
        InferOutput("fallback", [1], "BOOL", [result.fallback]),
        InferOutput("fallback_reason", [1], "BYTES", [result.fallback_reason or ""]),
    ]
    if result.explanation is not None:
        outputs.append(InferOutput("explanation", [1], "BYTES", [result.explanation]))
    return outputs


class GR2Model(kserve.Model):
    """Loads a bundle (`ServeConfig.model`) and re-ranks candidates. `backend` replaces the configured one
    (tests, benchmarks)."""

    def __init__(self, config: ServeConfig, backend: Backend | None = None):
        super().__init__(config.name)
        self.config = config
        self.backend = backend
        self.reranker: Reranker | None = None

    def load(self) -> bool:
        from gr2.lm.vocab import sid_token_ids

        bundle = load_bundle(resolve_bundle(self.config.model, weights=self.config.backend == "local"))
        backend = self.backend or make_backend(self.config, bundle)
        sid_token_ids(backend.tokenizer, bundle.sid_map)  # a bundle without the SID vocabulary fails here
        self.reranker = Reranker(bundle, backend, self.config)
        self.ready = True
        return self.ready

    @property
    def limits(self) -> Limits:
        return Limits(
            max_candidates=self.reranker.decoding.max_candidates,
            max_history=self.config.max_history,
            max_instances=self.config.max_instances,
            max_item_id_chars=self.config.max_item_id_chars,
            reject_unknown=self.config.unknown_items == "reject",
        )

    def get_input_types(self) -> list[dict]:
        return [
            {"name": "history", "datatype": "BYTES", "shape": [-1]},
            {"name": "candidates", "datatype": "BYTES", "shape": [-1]},
            {"name": "explain", "datatype": "BOOL", "shape": [1]},
        ]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": "ranking", "datatype": "BYTES", "shape": [-1]},
            {"name": "fallback", "datatype": "BOOL", "shape": [1]},
            {"name": "fallback_reason", "datatype": "BYTES", "shape": [1]},
            {"name": "explanation", "datatype": "BYTES", "shape": [1]},
        ]

    async def predict(self, payload, headers=None, response_headers=None):
        route = "v2" if isinstance(payload, InferRequest) else "v1"
        started = time.perf_counter()
        try:
            try:
                if route == "v2":
                    requests = v2_request(payload, self.limits, self.reranker.rankable)
                else:
                    requests = v1_requests(payload, self.limits, self.reranker.rankable)
            except RequestError as error:
                INVALID_REQUESTS.labels(route).inc()
                raise InvalidInput(str(error)) from error
            results = await self.reranker.rank(requests)
        finally:
            REQUEST_LATENCY.labels(route).observe(time.perf_counter() - started)
        if route == "v2":
            return InferResponse(payload.id or str(uuid.uuid4()), self.name, v2_outputs(results[0]))
        return {"predictions": [result.to_json() for result in results]}
