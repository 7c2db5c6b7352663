"""On-policy distillation: Eq. 4 on hand-computed tensors, the tokenizer check, OPD steps on the tiny model."""

import math

import pytest
import torch
from transformers import AutoTokenizer

from gr2.lm.models import load_model_and_tokenizer
from gr2.train.config import OpdConfig
from gr2.train.direct_losses import clipped_surrogate
from gr2.train.opd import (
    TokenizerMismatch,
    check_same_tokenizer,
    load_teacher,
    teacher_checkpoint,
    teacher_max_memory,
    train_opd,
)
from gr2.train.opd_losses import opd_loss, reverse_kl_term, sampled_reverse_kl, token_log_probs


def test_token_log_probs_pick_each_token_s_log_softmax():
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(4.0), 0.0]]])
    assert token_log_probs(logits, torch.tensor([[1, 1]])).tolist()[0] == pytest.approx(
        [math.log(3 / 4), math.log(1 / 5)]
    )


def test_opd_loss_on_hand_computed_tokens_leaves_masked_tokens_out():
    log_probs = torch.log(torch.tensor([[0.5, 0.25], [0.8, 0.1]])).requires_grad_()
    kl = torch.tensor([[0.1, -0.2], [0.3, 9.0]])  # d_t; the last token is masked out
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    parts = opd_loss(
        log_probs, log_probs.detach(), log_probs.detach() - kl, torch.tensor([1.0, -1.0]), mask, 0.5, 0.2, 0.28
    )
    # ratio 1 everywhere: the surrogate is -A per token (-1, -1, +1), the KL sum 0.1 - 0.2 + 0.3, over 3 tokens
    assert parts.loss.item() == pytest.approx((-1 + 0.5 * 0.2) / 3)
    assert parts.kl.item() == pytest.approx(0.2 / 3)
    assert parts.clip_ratio.item() == 0.0
    parts.loss.backward()
    # d loss / d log pi_t = (-A + beta * d_t) / 3 on the masked tokens, 0 on the padding
    expected = [[(-1 + 0.05) / 3, (-1 - 0.1) / 3], [(1 + 0.15) / 3, 0.0]]
    for row, wanted in zip(log_probs.grad.tolist(), expected, strict=True):
        assert row == pytest.approx(wanted)


def test_only_the_surrogate_is_clipped_and_tokens_sets_the_divisor():
    old = torch.zeros(1, 2)
    log_probs = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()  # ratios 1.5 and 1.1
    teacher = log_probs.detach() - 0.4  # d_t = 0.4
    parts = opd_loss(log_probs, old, teacher, torch.tensor([1.0]), torch.ones(1, 2), 1.0, 0.2, 0.28, tokens=4)
    # surrogate -1.28 (clipped at 1 + eps_high) and -1.1; KL term d_t * ratio = 0.6 and 0.44; divided by 4
    assert parts.loss.item() == pytest.approx((-1.28 - 1.1 + 0.6 + 0.44) / 4)
    assert (parts.kl.item(), parts.clip_ratio.item()) == (pytest.approx(0.8 / 4), 0.25)
    parts.loss.backward()
    # the clipped token keeps only the KL gradient d_t * ratio; the other one -A * ratio + d_t * ratio
    assert log_probs.grad.tolist()[0] == pytest.approx([0.6 / 4, (-1.1 + 0.44) / 4])


def test_the_kl_term_s_expected_gradient_is_the_exact_reverse_kl_gradient():
    logits = torch.tensor([1.0, -0.5, 0.3], requires_grad=True)
    log_probs = torch.log_softmax(logits, -1)
    teacher = torch.log_softmax(torch.tensor([0.2, 0.9, -1.0]), -1)
    probabilities = log_probs.exp().detach()  # each token is sampled with the student's probability
    exact = (log_probs.exp() * (log_probs - teacher)).sum()
    estimate = (probabilities * reverse_kl_term(log_probs, log_probs.detach(), teacher)).sum()
    assert estimate.item() == pytest.approx(exact.item())
    (exact_grad,) = torch.autograd.grad(exact, logits, retain_graph=True)
    (estimate_grad,) = torch.autograd.grad(estimate, logits, retain_graph=True)
    assert torch.allclose(estimate_grad, exact_grad, atol=1e-6) and exact_grad.abs().sum() > 0.1
    # d_t itself as a loss would pull nowhere: its expected gradient is 0
    (naive_grad,) = torch.autograd.grad((probabilities * sampled_reverse_kl(log_probs, teacher)).sum(), logits)
    assert torch.allclose(naive_grad, torch.zeros(3), atol=1e-6)


def test_the_sampled_kl_term_alone_pulls_a_categorical_student_onto_the_teacher():
    generator = torch.Generator().manual_seed(0)
    logits = torch.zeros(100, requires_grad=True)
    teacher = torch.log_softmax(3 * torch.randn(100, generator=generator), -1)
    optimizer = torch.optim.AdamW([logits], lr=0.05, weight_decay=0.0)

    def reverse_kl() -> float:
        student = torch.log_softmax(logits, -1)
        return (student.exp() * (student - teacher)).sum().item()

    start = reverse_kl()
    for _ in range(150):
        with torch.no_grad():
            tokens = torch.multinomial(logits.softmax(-1), 32, replacement=True, generator=generator).view(1, -1)
        log_probs = token_log_probs(logits.expand(1, 32, -1), tokens)
        mask, no_advantage = torch.ones(1, 32), torch.zeros(1)
        opd_loss(log_probs, log_probs.detach(), teacher[tokens], no_advantage, mask, 1.0, 0.2, 0.28).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert start > 5.0 and reverse_kl() < 0.1 * start


def test_with_the_teacher_equal_to_the_student_the_loss_and_gradient_are_dapo_s():
    generator = torch.Generator().manual_seed(0)
    log_probs = (-torch.rand(2, 3, generator=generator)).requires_grad_()
    old = log_probs.detach() + 0.3 * torch.randn(2, 3, generator=generator)  # some ratios are clipped
    advantages, mask = torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    parts = opd_loss(log_probs, old, log_probs.detach(), advantages, mask, 1.0, 0.2, 0.28)
    surrogate, _ = clipped_surrogate(log_probs, old, advantages, 0.2, 0.28)
    dapo = (surrogate * mask).sum() / mask.sum()
    assert parts.kl.item() == 0.0
    assert parts.loss.item() == pytest.approx(dapo.item())
    (opd_grad,) = torch.autograd.grad(parts.loss, log_probs, retain_graph=True)
    (dapo_grad,) = torch.autograd.grad(dapo, log_probs)
    assert torch.equal(opd_grad, dapo_grad)


def test_a_teacher_with_another_tokenizer_is_refused_naming_the_difference(tiny_dir):
    def tokenizer(*added: str, eos: str | None = None):
        loaded = AutoTokenizer.from_pretrained(tiny_dir)
        loaded.add_tokens(list(added))
        if eos:
            loaded.eos_token = eos
        return loaded

    student = tokenizer()
    check_same_tokenizer(student, tokenizer())
    size = len(student)
    with pytest.raises(TokenizerMismatch, match=rf"vocabulary size {size} \(student\) vs {size + 1} \(teacher\)"):
        check_same_tokenizer(student, tokenizer("<extra>"))
    with pytest.raises(TokenizerMismatch, match=rf"token id {size} is '<mine>' \(student\) vs '<theirs>' \(teacher\)"):
        check_same_tokenizer(tokenizer("<mine>"), tokenizer("<theirs>"))
    with pytest.raises(
        TokenizerMismatch, match=r"special token eos_token is '<\|im_end\|>' \(student\) vs '<\|im_start"
    ):
        check_same_tokenizer(student, tokenizer(eos="<|im_start|>"))
    with pytest.raises(ValueError, match="opd.teacher is not set"):
        load_teacher(OpdConfig(), student, tiny_dir)


def test_the_teacher_checkpoint_is_resolved_like_base_model_name_or_is_the_student_itself(tiny_dir, tmp_path):
    assert teacher_checkpoint(OpdConfig(teacher="student"), tiny_dir) == str(tiny_dir)
    assert teacher_checkpoint(OpdConfig(teacher=str(tmp_path)), tiny_dir) == str(tmp_path)
    assert teacher_checkpoint(OpdConfig(teacher="Qwen/Qwen3-32B"), tiny_dir) == "Qwen/Qwen3-32B"
    with pytest.raises(ValueError, match=r"^opd.teacher: unknown base model '/nowhere/teacher'"):
        teacher_checkpoint(OpdConfig(teacher="/nowhere/teacher"), tiny_dir)
    with pytest.raises(ValueError, match="opd.teacher is not set"):
        OpdConfig(enabled=True)


def test_the_teacher_takes_every_gpu_but_the_student_s():
    assert teacher_max_memory([]) == {} and teacher_max_memory([80]) == {}
    assert teacher_max_memory([70, 80, 79]) == {1: 80, 2: 79}


def tiny_config(**changes) -> OpdConfig:
    defaults = {"num_generations": 4, "prompts_per_step": 2, "max_steps": 2, "save_steps": 1}
    return OpdConfig(**{**defaults, "max_completion_length": 12, "learning_rate": 1e-3, **changes})


@pytest.mark.slow
def test_two_opd_steps_resume_as_an_uninterrupted_run(tiny_dir, office, prompt_config, tmp_path):
    catalog, sids, _, examples = office
    config = tiny_config(teacher=str(tiny_dir), updates_per_batch=2)
    student, tokenizer = load_model_and_tokenizer(tiny_dir)
    teacher = load_teacher(config, tokenizer, tiny_dir)
    with torch.no_grad():
        teacher.model.norm.weight.mul_(3.0)  # a sharper teacher than the student
    run = (teacher, tokenizer, examples[:6], catalog, sids, prompt_config)
    metrics, curve = train_opd(student, *run, config, 0, tmp_path / "whole")
    assert metrics["train_steps"] == 2 and [row["step"] for row in curve] == [1, 2]
    assert {"loss", "kl_mean", "clip_ratio", "reward_mean", "reward_std", "valid_share"} <= set(curve[0])
    assert all(row["kl_mean"] != 0.0 for row in curve) and curve[0]["mean_completion_tokens"] <= 12
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    interrupted, _ = load_model_and_tokenizer(tiny_dir)
    train_opd(interrupted, *run, config.model_copy(update={"max_steps": 1}), 0, tmp_path / "halves")
    resumed, _ = load_model_and_tokenizer(tiny_dir)  # the weights of step 1 come from the checkpoint
    again, resumed_curve = train_opd(resumed, *run, config, 0, tmp_path / "halves")
    assert (again["resumed_from_step"], again["train_steps"]) == (1, 2)
    assert resumed_curve[-1] == pytest.approx(curve[-1])
    for (name, a), b in zip(student.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.slow
def test_with_the_student_as_teacher_the_kl_is_zero_and_the_step_is_dapo_s(tiny_dir, office, prompt_config, tmp_path):
    catalog, sids, _, examples = office
    config = tiny_config(max_steps=1, prompts_per_step=1, constrained_rollouts=True, reasoning_tokens=2)
    runs = {}
    for kl_coef in (1.0, 0.0):
        student, tokenizer = load_model_and_tokenizer(tiny_dir)
        teacher = load_model_and_tokenizer(tiny_dir)[0].requires_grad_(False)
        run = (student, teacher, tokenizer, examples[:6], catalog, sids, prompt_config)
        _, curve = train_opd(*run, config.model_copy(update={"kl_coef": kl_coef}), 0, tmp_path / str(kl_coef))
        runs[kl_coef] = student, curve[0]
    (distilled, row), (dapo, _) = runs[1.0], runs[0.0]
    assert row["kl_mean"] == 0.0
    assert row["valid_share"] == 1.0 and row["reward_std"] > 0  # constrained answers: rewards to learn from
    before = teacher.state_dict()
    assert any(not torch.equal(before[name], value) for name, value in dapo.state_dict().items())
    for (name, a), b in zip(distilled.state_dict().items(), dapo.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
