"""The evidence teacher: a deterministic analyst, not an LLM, for machines with no teacher model.

It reads collaborative evidence from the train split (direct transitions from the user's recent items,
co-purchases anywhere in a sequence, category and SID-prefix overlap with the history, popularity),
scores each candidate, samples an order with Gumbel noise at a temperature, and writes the three-step
trace citing the semantic IDs and the figures it used.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from gr2.data.schema import Item
from gr2.sid.sidmap import SidMap
from gr2.traces.collaborative import CollaborativeCounts
from gr2.traces.prompt import format_answer


@dataclass(frozen=True)
class EvidenceWeights:
    transition: float = 3.0
    copurchase: float = 1.0
    category: float = 1.0
    sid_prefix: float = 0.5
    popularity: float = 0.3


@dataclass
class CandidateEvidence:
    item: str
    transitions: int
    copurchases: int
    category_share: float
    prefix_share: float
    popularity: int
    score: float = 0.0


@dataclass
class EvidenceTeacher:
    catalog: dict[str, Item]
    sids: SidMap
    train_sequences: dict[str, list[str]]
    temperature: float = 0.5
    weights: EvidenceWeights = field(default_factory=EvidenceWeights)
    name: str = "evidence-analyst"

    def __post_init__(self) -> None:
        self.counts = CollaborativeCounts.from_sequences(self.train_sequences)
        self.popularity = self.counts.popularity
        self.max_log_popularity = math.log1p(max(self.popularity.values(), default=1))

    def gather(self, history: Sequence[str], candidate: str) -> CandidateEvidence:
        category = self.catalog[candidate].categories
        prefix = self.sids.codes[candidate][:2]
        evidence = CandidateEvidence(
            item=candidate,
            transitions=self.counts.followed(history, candidate),
            copurchases=self.counts.bought_with(history, candidate),
            category_share=sum(self.catalog[h].categories == category for h in history) / max(len(history), 1),
            prefix_share=sum(self.sids.codes[h][:2] == prefix for h in history) / max(len(history), 1),
            popularity=self.popularity.get(candidate, 0),
        )
        evidence.score = self.score(evidence)
        return evidence

    def score(self, e: CandidateEvidence) -> float:
        w = self.weights
        return (
            w.transition * math.log1p(e.transitions)
            + w.copurchase * math.log1p(e.copurchases)
            + w.category * e.category_share
            + w.sid_prefix * e.prefix_share
            + w.popularity * math.log1p(e.popularity) / self.max_log_popularity
        )

    def sample_order(self, evidence: list[CandidateEvidence], rng: random.Random) -> list[CandidateEvidence]:
        """Plackett-Luce sampling via Gumbel noise; temperature 0 is the arg-sort of the scores."""

        def noisy(e: CandidateEvidence) -> float:
            if self.temperature == 0:
                return e.score
            return e.score / self.temperature - math.log(-math.log(rng.random() or 1e-12))

        return sorted(evidence, key=noisy, reverse=True)

    def answer(
        self, history: Sequence[str], candidates: Sequence[str], rng: random.Random, forced_first: str | None = None
    ) -> str:
        """A sampled ranking with its trace; `forced_first` (targeted mode) puts that item first."""
        evidence = [self.gather(history, c) for c in candidates]
        ordered = self.sample_order(evidence, rng)
        if forced_first is not None:
            ordered.sort(key=lambda e: e.item != forced_first)
        explanation = self.explain(history, ordered)
        return format_answer(explanation, [e.item for e in ordered], self.sids)

    def explain(self, history: Sequence[str], ordered: list[CandidateEvidence]) -> str:
        counts = Counter(self.catalog[h].categories[-1] for h in history if self.catalog[h].categories)
        top_categories = ", ".join(f"{name} ({n})" for name, n in counts.most_common(2)) or "no category"
        last = history[-1]
        step1 = (
            f"Step 1: the history has {len(history)} items, mostly {top_categories}; the latest is "
            f"{self.sids.text(last)} {self.catalog[last].display_title[:40]}."
        )
        linked = [e for e in ordered if e.transitions or e.copurchases][:3]
        step2 = (
            "Step 2: "
            + (
                "; ".join(
                    f"{self.sids.text(e.item)} followed the recent items {e.transitions} times and was bought "
                    f"with the history {e.copurchases} times"
                    for e in linked
                )
                if linked
                else "no candidate was bought together with these items in the training data"
            )
            + "."
        )
        best = ordered[0]
        step3 = (
            f"Step 3: {self.sids.text(best.item)} matches best (same category as {best.category_share:.0%} of the "
            f"history, shared SID prefix with {best.prefix_share:.0%}, {best.popularity} purchases overall)."
        )
        return " ".join([step1, step2, step3])
