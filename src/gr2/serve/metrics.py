"""Prometheus metrics of the GR2 server, in the default registry that KServe exposes on /metrics.

Module-level because a Prometheus collector may be registered only once per process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

REQUEST_LATENCY = Histogram(
    "gr2_request_latency_seconds",
    "Wall time of a request, validation and queueing included, by route (v1, v2, chat).",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
RANKED_INSTANCES = Counter("gr2_ranked_instances_total", "Instances answered (fallbacks included).")
FALLBACKS = Counter("gr2_fallbacks_total", "Instances answered with the incoming order, by reason.", ["reason"])
GENERATED_TOKENS = Counter(
    "gr2_generated_tokens_total", "Tokens generated, by phase (reasoning, ranking, chat).", ["phase"]
)
INVALID_REQUESTS = Counter("gr2_invalid_requests_total", "Requests refused with a 4xx, by route.", ["route"])
