"""From quantiser codes to one unique SID per item: the random last level and the collision rule.

Collision rule ("nearest free SID"), applied to every item whose SID another item already holds:
1. Who keeps a SID: the item first in priority order. Priority is the random draw order when the last
   level is random, otherwise the quantisation error (the item closest to its codes keeps them).
2. Every other item takes the first free SID found along this search:
   a. its own prefix (first levels-1 codes) with a free last code;
   b. else, for level k = levels-2 down to 0: its codes above k kept, level k's code replaced by the
      next-nearest code of its residual at k (nearest first), the levels between k and the last
      re-quantised greedily, with a free last code.
   The free last code is the nearest one to the item's last residual when the last level is learned,
   a seeded random one when it is random. The level k of the change is counted per item
   (metric collisions_resolved_level_k; k = levels-1 means only the last code changed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

Prefix = tuple[int, ...]


def draw_random_last_codes(
    prefixes: np.ndarray, codebook_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(last codes, draw order): in a random item order, each item draws its last code among the codes
    not yet used by items with the same prefix. When every code of the prefix is used (more than
    codebook_size items share it) it draws among all codes, so it collides: the collision rule fixes it.
    """
    order = rng.permutation(len(prefixes))
    used: dict[Prefix, set[int]] = defaultdict(set)
    last = np.empty(len(prefixes), dtype=np.int64)
    all_codes = np.arange(codebook_size)
    for row in order:
        taken = used[tuple(prefixes[row].tolist())]
        free = all_codes[~np.isin(all_codes, list(taken))] if taken else all_codes
        last[row] = rng.choice(free) if len(free) else rng.integers(codebook_size)
        taken.add(int(last[row]))
    rank = np.empty(len(prefixes), dtype=np.int64)
    rank[order] = np.arange(len(prefixes))
    return last, rank


def nearest_codes(residual: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Code indices ordered from nearest to farthest from one residual."""
    return np.argsort(((codebook - residual) ** 2).sum(1), kind="stable")


def residual_before(latent: np.ndarray, codes: Sequence[int], codebooks: Sequence[np.ndarray]) -> np.ndarray:
    """What the quantiser still has to encode after the given leading codes."""
    return latent - sum((codebooks[level][code] for level, code in enumerate(codes)), np.zeros_like(latent))


def candidate_prefixes(
    latent: np.ndarray, codes: Sequence[int], codebooks: Sequence[np.ndarray], prefix_length: int
) -> Iterator[tuple[int, Prefix]]:
    """(level changed, prefix) in the search order of the collision rule (step 2 of the module doc)."""
    yield prefix_length, tuple(codes[:prefix_length])
    for level in reversed(range(prefix_length)):
        residual = residual_before(latent, codes[:level], codebooks)
        for code in nearest_codes(residual, codebooks[level]):
            if code == codes[level]:
                continue
            prefix = [*codes[:level], int(code)]
            remainder = residual - codebooks[level][code]
            for deeper in range(level + 1, prefix_length):
                nearest = int(nearest_codes(remainder, codebooks[deeper])[0])
                prefix.append(nearest)
                remainder = remainder - codebooks[deeper][nearest]
            yield level, tuple(prefix)


def pick_free_last_code(
    free: set[int],
    latent: np.ndarray,
    prefix: Prefix,
    codebooks: Sequence[np.ndarray],
    rng: np.random.Generator,
) -> int:
    """The nearest free code when the last level is learned, a random free one when it is random."""
    if len(codebooks) > len(prefix):
        ordered = nearest_codes(residual_before(latent, prefix, codebooks), codebooks[len(prefix)])
        return int(next(code for code in ordered if code in free))
    return int(rng.choice(sorted(free)))


@dataclass(frozen=True)
class Resolution:
    codes: np.ndarray  # (items, levels), every row unique
    changed_level: np.ndarray  # (items,) shallowest level whose code the rule changed; -1 when kept


def resolve_collisions(
    codes: np.ndarray,
    priority: np.ndarray,
    latents: np.ndarray,
    codebooks: Sequence[np.ndarray],
    codebook_size: int,
    rng: np.random.Generator,
    item_ids: Sequence[str],
) -> Resolution:
    """Apply the collision rule of the module doc; codebooks are the learned levels (levels or levels-1)."""
    items, levels = codes.shape
    used: dict[Prefix, set[int]] = defaultdict(set)
    losers = []
    for row in np.argsort(priority, kind="stable"):
        prefix, last = tuple(codes[row, :-1].tolist()), int(codes[row, -1])
        if last in used[prefix]:
            losers.append(row)
        else:
            used[prefix].add(last)
    resolved = codes.copy()
    changed = np.full(items, -1, dtype=np.int64)
    all_codes = set(range(codebook_size))
    for row in tqdm(losers, desc="SID collisions", unit="item", disable=not losers):
        for level, prefix in candidate_prefixes(latents[row], codes[row].tolist(), codebooks, levels - 1):
            free = all_codes - used[prefix]
            if free:
                last = pick_free_last_code(free, latents[row], prefix, codebooks, rng)
                used[prefix].add(last)
                resolved[row] = (*prefix, last)
                changed[row] = level
                break
        else:
            raise RuntimeError(
                f"no free SID near item {item_ids[row]!r} (codes {codes[row].tolist()}): "
                f"raise codebook_size={codebook_size} or levels={levels}"
            )
    return Resolution(resolved, changed)
