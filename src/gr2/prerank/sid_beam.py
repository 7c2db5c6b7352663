"""The paper's "pre-rank (MTL)": a mid-trained model as the candidate generator, by trie-constrained
beam search over the catalogue's semantic IDs (`gr2.lm.retrieval`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gr2.data.split import RankingExample
from gr2.prerank.cooccurrence import PopularityRetriever


class SidBeamRetriever:
    """Top-k next items of a mid-trained checkpoint; items already in the history are skipped and the list
    is topped up by popularity when the beams return too few new items."""

    def __init__(
        self, model_dir: Path, sid_map_path: Path, popular: PopularityRetriever, system_prompt: str, history_length: int
    ):
        from gr2.lm.models import load_model_and_tokenizer
        from gr2.sid.sidmap import SidMap

        self.model, self.tokenizer = load_model_and_tokenizer(model_dir)
        self.sids = SidMap.load(sid_map_path)
        self.popular = popular
        self.system_prompt = system_prompt
        self.history_length = history_length

    def top_k(self, examples: Sequence[RankingExample], k: int) -> list[list[str]]:
        from gr2.lm.retrieval import generate_candidates

        histories = [[item for item in e.history if item in self.sids.codes] for e in examples]
        beams = generate_candidates(
            self.model,
            self.tokenizer,
            self.sids,
            histories,
            2 * k,
            system_prompt=self.system_prompt,
            history_length=self.history_length,
        )
        return [self.fill(beam, set(e.history), k) for beam, e in zip(beams, examples, strict=True)]

    def fill(self, beam: list[str], seen: set[str], k: int) -> list[str]:
        fresh = [item for item in beam if item not in seen][:k]
        return (
            fresh + [i for i in self.popular.top_k_excluding(seen | set(fresh), k) if i not in fresh][: k - len(fresh)]
        )
