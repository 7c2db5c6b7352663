"""The direct mode's losses and its Plackett-Luce policy, as small pure functions.

Scores are label logits of one prompt, shape (..., K). A ranking is a permutation of 0..K-1, best first.
"""

from __future__ import annotations

import torch
from torch.nn import functional


def label_cross_entropy(scores: torch.Tensor, target: int) -> torch.Tensor:
    """-log softmax(scores)[target]: the target's label should win."""
    return functional.cross_entropy(scores.unsqueeze(0), torch.tensor([target], device=scores.device))


def target_pairwise_loss(scores: torch.Tensor, target: int, gold_positions: torch.Tensor) -> torch.Tensor:
    """FIRST's weighted RankNet over the pairs (target, other): sum_j w_j log(1 + exp(s_j - s_target)) / sum_j
    w_j, with w_j = 1 / (1 + gold_j), gold_j the 1-based position of j in the gold order (target first, the
    others as they came), so mistakes against the strongest competitors weigh most."""
    others = torch.arange(scores.shape[-1], device=scores.device) != target
    weights = 1.0 / (1.0 + gold_positions[others].float())
    margins = functional.softplus(scores[others] - scores[target])
    return (weights * margins).sum() / weights.sum()


def gold_positions(k: int, target: int) -> torch.Tensor:
    """1-based positions in the gold order: the target first, the other candidates in their given order."""
    order = [target, *(i for i in range(k) if i != target)]
    positions = torch.empty(k, dtype=torch.long)
    positions[order] = torch.arange(1, k + 1)
    return positions


def listwise_loss(scores: torch.Tensor, target: int, pairwise_weight: float) -> torch.Tensor:
    """Cross-entropy on the target's label plus `pairwise_weight` times the weighted pairwise term."""
    loss = label_cross_entropy(scores, target)
    if pairwise_weight:
        loss = loss + pairwise_weight * target_pairwise_loss(scores, target, gold_positions(len(scores), target))
    return loss


def sample_plackett_luce(scores: torch.Tensor, samples: int, generator: torch.Generator) -> torch.Tensor:
    """`samples` rankings (samples, K) from the Plackett-Luce model with these scores (Gumbel-max trick:
    sorting scores plus independent Gumbel noise draws a ranking with exactly the PL probability)."""
    uniform = torch.rand((samples, scores.shape[-1]), generator=generator).clamp_min(1e-12)
    gumbel = -torch.log(-torch.log(uniform))
    return torch.argsort(scores.detach().cpu() + gumbel, dim=-1, descending=True).to(scores.device)


def plackett_luce_log_probs(scores: torch.Tensor, rankings: torch.Tensor) -> torch.Tensor:
    """Log-probability of each placement of each ranking (N, K-1): at step i, the chosen item's score
    against the log-sum-exp of the items not yet placed. The last placement is forced and left out."""
    ordered = scores.expand(rankings.shape[0], -1).gather(-1, rankings)
    # logcumsumexp from the right: the normaliser over the items still unplaced at each step
    remaining = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
    return (ordered - remaining)[:, :-1]


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO's group-normalised advantage of each sample: (r - mean) / (std + 1e-4)."""
    return (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-4)


def clipped_surrogate(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """DAPO's per-action objective to minimise, -min(ratio A, clip(ratio, 1-eps_low, 1+eps_high) A), for
    log-probs (N, T) and advantages (N,); and which actions were clipped."""
    ratio = torch.exp(log_probs - old_log_probs)
    advantage = advantages.unsqueeze(-1)
    unclipped, clipped = ratio * advantage, ratio.clamp(1 - eps_low, 1 + eps_high) * advantage
    return -torch.minimum(unclipped, clipped), (clipped < unclipped)
