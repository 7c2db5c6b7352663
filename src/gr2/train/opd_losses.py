"""On-policy distillation's loss (the GR2 technical report's Eq. 4), as small pure functions.

Per completion token t of a sample y drawn from the student (log-probs of shape (N, T), a 0/1 mask (N, T)
over the completion tokens, one group-normalised advantage per sample):

    loss = sum_t mask_t * [ -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) + beta * kl_t ] / sum_t mask_t

with rho_t = pi_s(y_t) / pi_old(y_t) and kl_t the per-token reverse KL of the student to the teacher,
estimated on the sampled token: d_t = log pi_s(y_t) - log pi_T(y_t) (the teacher gives log-probs only).

The KL term is `sg(d_t) * rho_t` (sg: stop-gradient). Its value is d_t at the first update (rho = 1) and its
gradient d_t * rho_t * grad log pi_s(y_t), whose expectation over y_t ~ pi_old is the exact gradient of
KL(pi_s || pi_T) at that position. Two other estimators were not taken: d_t itself as a loss has the
gradient grad log pi_s(y_t), whose expectation is 0 (nothing pulls toward the teacher), and
exp(-d_t) + d_t - 1 ("k3") has a gradient whose expectation is that of the forward KL(pi_T || pi_s)
(mode-covering), not the reverse KL the report names. Summing the KL over the whole vocabulary at each
position would need the teacher's full distribution, which the report's teacher does not give.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional

from gr2.train.direct_losses import clipped_surrogate


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] for logits (N, T, V) and tokens (N, T): the log-prob of each token."""
    return functional.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def sampled_reverse_kl(log_probs: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """d_t = log pi_s(y_t) - log pi_T(y_t) per token: a one-sample estimate of KL(pi_s || pi_T) at t."""
    return log_probs - teacher_log_probs


def reverse_kl_term(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor
) -> torch.Tensor:
    """Per-token KL loss sg(d_t) * rho_t: value d_t * rho_t, gradient d_t * rho_t * grad log pi_s(y_t)
    (the importance-weighted score-function gradient of the reverse KL; see the module docstring)."""
    ratio = torch.exp(log_probs - old_log_probs)
    return sampled_reverse_kl(log_probs, teacher_log_probs).detach() * ratio


class OpdLoss(NamedTuple):
    """Eq. 4's loss to minimise and its parts, each summed over the masked tokens and divided by the same
    token count (so the parts of several groups divided by the batch's count add up to the batch's mean)."""

    loss: torch.Tensor
    kl: torch.Tensor
    clip_ratio: torch.Tensor


def opd_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    eps_low: float,
    eps_high: float,
    tokens: float | None = None,
) -> OpdLoss:
    """The token-level mean (DAPO: every completion token of the batch weighs the same) of the clipped
    surrogate plus `kl_coef` times the per-token reverse KL, over the tokens where `mask` is 1; `tokens`
    is the count to divide by (default: this call's masked tokens). `kl` is the mean of d_t (detached),
    `clip_ratio` the share of masked tokens whose ratio was clipped."""
    surrogate, clipped = clipped_surrogate(log_probs, old_log_probs, advantages, eps_low, eps_high)
    per_token = surrogate + kl_coef * reverse_kl_term(log_probs, old_log_probs, teacher_log_probs)
    count = mask.sum() if tokens is None else tokens
    kl = (sampled_reverse_kl(log_probs, teacher_log_probs).detach() * mask).sum() / count
    return OpdLoss((per_token * mask).sum() / count, kl, (clipped * mask).sum() / count)
