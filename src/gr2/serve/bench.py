"""Serving benchmark: the real server over HTTP on this machine, beside plain `model.generate`.

    python -m gr2.serve.bench --base tiny-random --out runs/serve-bench/tiny-random.json
    python -m gr2.serve.bench --base smollm2-135m --requests 20 --out runs/serve-bench/smollm2-135m.json
    python -m gr2.serve.bench --base smollm2-135m --mode direct --out runs/serve-bench/smollm2-135m-direct.json

Test examples: Office users' last item with their 20 previous items, and K = 10 candidates (the held-out
item and the 9 most popular items the user has not bought, shuffled with a seed) or, with --examples, a
prerank stage's examples (split `test`). The SIDs are random codes: latency and validity do not depend on
what the codes mean. Measured: p50/p95 latency of sequential requests, requests/s with --clients concurrent
clients, generated tokens/s of the server (both phases) and of plain greedy `model.generate` on the same
prompts and token counts, and the fallback rate by reason. `--mode direct` serves the bundle in direct mode
(one prefill, no generated tokens) with the prompt the `beauty-cpu` preset configures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from gr2.data.loading import load_interactions
from gr2.rank.constrained import ANSWER_OPEN

REPO = Path(__file__).resolve().parents[3]
OFFICE = REPO / "data" / "amazon-office-2014"


def popular_candidate_examples(data: Path, count: int, history: int, k: int, seed: int) -> list[dict]:
    dataset = load_interactions(data)
    popularity = Counter(item for sequence in dataset.sequences.values() for item in sequence)
    popular = [item for item, _ in popularity.most_common(k + history + 1)]
    rng = random.Random(seed)
    examples = []
    for sequence in dataset.sequences.values():
        if len(sequence) < history + 1:
            continue
        past, target = sequence[-history - 1 : -1], sequence[-1]
        candidates = [target, *[item for item in popular if item not in sequence][: k - 1]]
        rng.shuffle(candidates)
        examples.append({"history": past, "candidates": candidates})
        if len(examples) == count:
            break
    return examples


def prerank_examples(folder: Path, count: int, history: int) -> list[dict]:
    from gr2.prerank.candidates import read_examples

    chosen = read_examples(folder, "test")[:count]
    return [{"history": list(e.history[-history:]), "candidates": list(e.candidates)} for e in chosen]


def build_bundle(base: str, data: Path, work: Path, reasoning_tokens: int, seed: int, mode: str) -> Path:
    from gr2.data.split import LeaveOneOutSplit
    from gr2.lm.base import prepare_base_model
    from gr2.lm.config import BaseModelConfig
    from gr2.serve.bundle import write_bundle
    from gr2.serve.config import DecodingConfig
    from gr2.sid.sidmap import SidMap
    from gr2.traces.collaborative import CollaborativeCounts
    from gr2.traces.config import PromptConfig

    interactions = load_interactions(data)
    items = interactions.items
    rng = random.Random(seed)
    codes = rng.sample(range(256**3), len(items))  # unique 3-level prefixes, a 4th level of 0
    sid_map = SidMap(
        4, 256, {item: (c // 65536, c // 256 % 256, c % 256, 0) for item, c in zip(items, codes, strict=True)}
    )
    prepare_base_model(BaseModelConfig(name=base), sid_map, work / "base")
    from gr2.config import load_preset

    prompt = load_preset("beauty-cpu").prompt if mode == "direct" else PromptConfig(history_items=20)
    prompt = prompt.model_copy(update={"max_prompt_tokens": 4096})
    if mode == "direct" and prompt.direct_evidence:
        train = LeaveOneOutSplit(interactions.sequences, max_history=50).train_sequences()
        CollaborativeCounts.from_sequences(train).save(work / "base")
    decoding = DecodingConfig(mode=mode, reasoning_tokens=reasoning_tokens)
    return write_bundle(work / "bundle", work / "base", sid_map, items, prompt, decoding)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(bundle: Path, port: int, threads: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gr2.serve.server",
        "--model",
        str(bundle),
        "--port",
        str(port),
        "--set",
        f"threads={threads}",
        "--set",
        "timeout_seconds=600",
    ]
    environment = os.environ | {"HF_HUB_OFFLINE": "1"}
    with log.open("w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)


def wait_ready(client: httpx.Client, process: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-2000:]}")
        try:
            if client.get("/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"server not ready after {seconds} s")


def generated_tokens(client: httpx.Client) -> float:
    lines = client.get("/metrics").text.splitlines()
    return sum(
        float(line.split()[-1])
        for line in lines
        if line.startswith("gr2_generated_tokens_total{") and 'phase="chat"' not in line
    )


def predict(client: httpx.Client, example: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post("/v1/models/gr2:predict", json={"instances": [example]})
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["predictions"][0]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure_server(bundle: Path, examples: list[dict], clients: int, threads: int, work: Path) -> dict:
    port = free_port()
    process = start_server(bundle, port, threads, work / "server.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
    try:
        wait_ready(client, process, work / "server.log")
        predict(client, examples[0])  # warm-up
        tokens_before = generated_tokens(client)
        timed = [predict(client, example) for example in examples]
        tokens = generated_tokens(client) - tokens_before
        latencies = [seconds for seconds, _ in timed]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(lambda example: predict(client, example), examples))
        concurrent_seconds = time.perf_counter() - started
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=60)
    reasons = Counter(p["fallback_reason"] for _, p in timed if p["fallback"])
    return {
        "p50_latency_s": statistics.median(latencies),
        "p95_latency_s": percentile(latencies, 0.95),
        "requests_per_s_concurrent": len(examples) / concurrent_seconds,
        "server_tokens_per_s": tokens / sum(latencies),
        "tokens_per_request": tokens / len(examples),
        "fallback_rate": sum(reasons.values()) / len(examples),
        "fallback_reasons": dict(reasons),
    }


def measure_plain_generate(bundle: Path, examples: list[dict], tokens_per_request: int, threads: int) -> dict:
    """Greedy `model.generate` on the same rendered prompts, forced to the same number of new tokens."""
    import torch

    from gr2.lm.models import load_model_and_tokenizer
    from gr2.serve.bundle import load_bundle
    from gr2.serve.reranker import request_prompt

    torch.set_num_threads(threads)
    model, tokenizer = load_model_and_tokenizer(bundle)
    loaded = load_bundle(bundle)
    prompts = [request_prompt(tokenizer, loaded, e["history"], e["candidates"]) + ANSWER_OPEN for e in examples]
    seconds = 0.0
    for prompt in prompts:
        batch = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **batch,
                max_new_tokens=tokens_per_request,
                min_new_tokens=tokens_per_request,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds += time.perf_counter() - started
    return {"plain_generate_tokens_per_s": tokens_per_request * len(prompts) / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gr2.serve.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="tiny-random", help="base model name (gr2.lm.models)")
    parser.add_argument("--data", type=Path, default=OFFICE, help="dataset folder (normalised format)")
    parser.add_argument("--examples", type=Path, help="a prerank stage's examples folder (uses split 'test')")
    parser.add_argument("--requests", type=int, default=40, help="test examples (sequential and concurrent runs)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the throughput run")
    parser.add_argument("--reasoning-tokens", type=int, default=64, help="reasoning budget of the bundle")
    parser.add_argument("--mode", choices=("reasoning", "direct"), default="reasoning", help="the bundle's decoding")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (server and plain)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    if args.examples:
        examples = prerank_examples(args.examples, args.requests, 20)
    else:
        examples = popular_candidate_examples(args.data, args.requests, 20, 10, args.seed)
    with tempfile.TemporaryDirectory(prefix="gr2-serve-bench-") as tmp:
        work = Path(tmp)
        bundle = build_bundle(args.base, args.data, work, args.reasoning_tokens, args.seed, args.mode)
        numbers = measure_server(bundle, examples, args.clients, args.threads, work)
        if args.mode == "reasoning":
            numbers |= measure_plain_generate(bundle, examples, round(numbers["tokens_per_request"]), args.threads)
    numbers |= {
        "base": args.base,
        "requests": len(examples),
        "clients": args.clients,
        "threads": args.threads,
        "mode": args.mode,
        "reasoning_tokens": args.reasoning_tokens,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(numbers, indent=2))
    if args.out:
        from gr2.storage.atomic import write_json_atomic

        write_json_atomic(args.out, numbers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
