import math

import pytest
import torch

from gr2.rank.generation import rerank_with_model
from gr2.train.config import SftConfig
from gr2.train.sft import PROMPT, RANKING, REASONING, decoupled_nll, encode_trace, train_sft


def test_decoupled_nll_weights_each_span_mean():
    vocab = 4
    logits = torch.zeros(1, 5, vocab)  # uniform: every token costs log(4)
    logits[0, 2, 3] = 10.0  # predicts token 3 at position 3 almost surely
    labels = torch.tensor([[-100, -100, 1, 3, 2]])
    spans = torch.tensor([[PROMPT, PROMPT, REASONING, RANKING, RANKING]])
    loss = decoupled_nll(logits, labels, spans, lambda_reasoning=0.5, lambda_ranking=1.0)
    ranking_mean = (torch.nn.functional.cross_entropy(logits[0, 2:3], labels[0, 3:4]).item() + math.log(4)) / 2
    assert loss.item() == pytest.approx(0.5 * math.log(4) + 1.0 * ranking_mean, rel=1e-5)
    only_reasoning = decoupled_nll(logits, labels, spans, lambda_reasoning=1.0, lambda_ranking=0.0)
    assert only_reasoning.item() == pytest.approx(math.log(4), rel=1e-5)


def test_encode_trace_marks_prompt_reasoning_and_ranking(tiny, traces):
    _, tokenizer = tiny
    trace = traces[0]
    encoded = encode_trace(tokenizer, trace["messages"], trace["answer"])
    first_reasoning = encoded.spans.index(REASONING)
    first_ranking = encoded.spans.index(RANKING)
    assert all(label == -100 for label in encoded.labels[:first_reasoning])
    assert encoded.labels[first_reasoning:] == encoded.input_ids[first_reasoning:]
    assert first_reasoning < first_ranking
    # the token holding the key's opening quote may also hold the '", ' before it: it stays reasoning
    assert tokenizer.decode(encoded.input_ids[first_ranking:]).lstrip(' "').startswith('recommendations"')
    assert "Step 1" in tokenizer.decode(encoded.input_ids[first_reasoning:first_ranking])
    assert set(encoded.spans[first_ranking:]) == {RANKING}


@pytest.mark.slow
def test_sft_lowers_the_loss_resumes_and_generates(tmp_path, tiny, traces, office, prompt_config):
    model, tokenizer = tiny
    config = SftConfig(max_steps=4, save_steps=2, learning_rate=3e-3, per_device_train_batch_size=2, warmup_ratio=0)
    trainer, metrics = train_sft(model, tokenizer, traces, config, seed=0, checkpoint_dir=tmp_path / "ckpt")
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert metrics["train_steps"] == 4 and losses[-1] < losses[0]
    longer = config.model_copy(update={"max_steps": 6})
    resumed, resumed_metrics = train_sft(model, tokenizer, traces, longer, seed=0, checkpoint_dir=tmp_path / "ckpt")
    assert resumed.state.global_step == 6 and resumed_metrics["resumed_from_step"] == 4
    catalog, sids, _, examples = office
    run = rerank_with_model(model, tokenizer, examples[:2], catalog, sids, prompt_config, max_new_tokens=16)
    assert len(run.parsed) == 2 and run.new_tokens > 0
