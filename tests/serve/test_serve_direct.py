"""Direct-mode serving over HTTP: one prefill ranks each request, as evaluation scores it."""

from __future__ import annotations

import shutil

import pytest

from gr2.lm.models import load_model_and_tokenizer
from gr2.rank.direct import DirectScorer, PromptContext, fused_scores, ranking_from_scores
from gr2.serve.bundle import load_bundle, write_bundle
from gr2.serve.config import DecodingConfig
from gr2.traces.collaborative import CollaborativeCounts
from tests.serve.test_serve_http import outputs_by_name, running_server, v2_body

FUSION_LAMBDA = 0.5


@pytest.fixture(scope="module", params=["answer", "candidate"])
def direct_bundle_dir(request, bundle_dir, sequences, tmp_path_factory):
    """Shuffled candidates with their upstream ranks; the `candidate` readout also cites collaborative counts,
    which the bundle carries."""
    bundle = load_bundle(bundle_dir)
    work = tmp_path_factory.mktemp("direct")
    checkpoint = shutil.copytree(bundle_dir, work / "checkpoint")
    evidence = request.param == "candidate"
    if evidence:
        CollaborativeCounts.from_sequences(dict(enumerate(sequences))).save(checkpoint)
    prompt_settings = {"direct_shuffle": True, "direct_show_ranks": True, "direct_readout": request.param}
    return write_bundle(
        work / "bundle",
        checkpoint,
        bundle.sid_map,
        bundle.catalog,
        bundle.manifest.prompt.model_copy(update={**prompt_settings, "direct_evidence": evidence}),
        DecodingConfig(mode="direct", fusion_lambda=FUSION_LAMBDA, max_candidates=10),
        source={"test": "tiny-random, direct"},
    )


@pytest.fixture(scope="module")
def direct_server(direct_bundle_dir, tmp_path_factory):
    with running_server(direct_bundle_dir, tmp_path_factory.mktemp("direct-server")) as client:
        yield client


def library_ranking(bundle_dir, history, candidates) -> list[str]:
    """The ranking evaluation would give this request (gr2.rank.direct on the bundle's model and prompt)."""
    bundle = load_bundle(bundle_dir)
    model, tokenizer = load_model_and_tokenizer(bundle_dir)
    context = PromptContext(bundle.catalog, bundle.sid_map, bundle.manifest.prompt, bundle.evidence)
    scorer = DirectScorer(model, tokenizer, context)
    scores = scorer.score([(history, candidates)])[0]
    return list(ranking_from_scores(candidates, fused_scores(scores, FUSION_LAMBDA)))


def test_direct_v1_ranks_like_evaluation_with_an_empty_explanation(direct_server, direct_bundle_dir, example):
    history, candidates = example
    instances = [
        {"history": history, "candidates": candidates, "explain": True},
        {"history": [], "candidates": candidates[:4]},
    ]
    response = direct_server.post("/v1/models/gr2:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["ranking"] == library_ranking(direct_bundle_dir, history, candidates)
    assert first["explanation"] == "" and first["fallback"] is False
    assert sorted(second["ranking"]) == sorted(candidates[:4]) and "explanation" not in second


def test_direct_v2_and_bad_requests(direct_server, example):
    history, candidates = example
    response = direct_server.post("/v2/models/gr2/infer", json=v2_body(history, candidates))
    assert response.status_code == 200, response.text
    outputs = outputs_by_name(response.json())
    assert sorted(outputs["ranking"]) == sorted(candidates) and outputs["fallback"] == [False]
    too_many = {"instances": [{"history": history, "candidates": [*candidates, "extra-1"]}]}
    assert direct_server.post("/v1/models/gr2:predict", json=too_many).status_code == 400
