"""Direct scores from a model split at a layer boundary, with the lower layers' output computed once per prompt.

Direct training freezes the lower layers and trains the top ones; every model it produces from the same
frozen weights (direct SFT, direct DAPO and its ablation) gives the same lower-layer output for a prompt.
`cached_lower_states` keeps that output on disk under a hash of the frozen weights and the prompt tokens, so
training epochs, stages and the evaluation of every such model compute it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gr2.rank.direct import DirectPrompt, PromptContext, direct_prompt, head_token_ids, label_head
from gr2.storage.atomic import atomic_path
from gr2.storage.hashing import hash_json


class FrozenLowerLayers:
    """A decoder-only model split at a layer boundary: everything below is frozen and run once per prompt
    (`lower`), the top `trainable_layers` and the final norm are trainable (`label_scores`). `head_ids`: the
    tokens whose logits are the scores (`gr2.rank.direct.head_token_ids`). `exact`: keep the lower output in
    the compute dtype, so scores equal a full forward pass (evaluation); otherwise a float32 model keeps it
    as float16, half the memory (training)."""

    def __init__(self, model, trainable_layers: int, head_ids: Sequence[int], exact: bool = False):
        self.decoder = model.get_decoder()
        layers = self.decoder.layers
        if trainable_layers > len(layers):
            raise ValueError(f"trainable_layers={trainable_layers} but the model has {len(layers)} decoder layers")
        self.boundary = len(layers) - trainable_layers
        model.requires_grad_(False)
        for module in (*layers[self.boundary :], self.decoder.norm):
            module.requires_grad_(True)
        self.model = model
        self.head = label_head(model, head_ids).detach()
        self.compute_dtype = self.head.dtype
        halve = self.compute_dtype == torch.float32 and not exact
        self.storage_dtype = torch.float16 if halve else self.compute_dtype

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the frozen part (embeddings and the layers below the boundary) and the storage dtype: equal
        fingerprints give equal `lower` outputs, so cached activations can be shared between stages and runs.
        Computed once: the frozen part does not change."""
        digest = hashlib.sha256(f"{self.boundary} {self.storage_dtype}".encode())
        frozen = [self.decoder.embed_tokens, *self.decoder.layers[: self.boundary]]
        for module in frozen:
            for name, tensor in module.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def run_layers(self, hidden: torch.Tensor, layers) -> torch.Tensor:
        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        rotary = self.decoder.rotary_emb(hidden, positions)
        for layer in layers:
            hidden = layer(hidden, attention_mask=None, position_embeddings=rotary, position_ids=positions)
        return hidden

    @torch.no_grad()
    def lower(self, input_ids: Sequence[int]) -> torch.Tensor:
        """The frozen layers' output for one prompt, (T, hidden), kept in CPU memory."""
        ids = torch.tensor([list(input_ids)], device=self.model.device)
        hidden = self.run_layers(self.decoder.embed_tokens(ids), self.decoder.layers[: self.boundary])
        return hidden[0].to(self.storage_dtype).cpu()

    def label_scores(self, lower: torch.Tensor, prompt: DirectPrompt) -> torch.Tensor:
        """The per-label scores (float32) of `prompt` from the frozen layers' output (with grad)."""
        hidden = lower.to(self.model.device, self.compute_dtype).unsqueeze(0)
        hidden = self.run_layers(hidden, self.decoder.layers[self.boundary :])
        return prompt.scores(self.decoder.norm(hidden[0]), self.head).float()


def cached_lower_states(
    split: FrozenLowerLayers, token_ids: list[list[int]], cache_dir: Path | None
) -> list[torch.Tensor]:
    """`split.lower` of every prompt; with `cache_dir`, read from or saved to one file named by the frozen
    weights and the prompts."""
    compute = lambda: [split.lower(ids) for ids in tqdm(token_ids, desc="frozen layers", unit="prompt")]  # noqa: E731
    if cache_dir is None:
        return compute()
    key = hash_json({"frozen": split.fingerprint, "prompts": token_ids})[:32]
    path = Path(cache_dir) / f"{key}.pt"
    if path.is_file():
        return torch.load(path)
    states = compute()
    with atomic_path(path) as staging:
        torch.save(states, staging)
    return states


@dataclass
class CachedDirectScorer:
    """Scores requests as `gr2.rank.direct.DirectScorer` does (the same prompts, scores in the incoming order),
    running only the top `trainable_layers` on the lower layers' cached output. Models trained from the same
    frozen weights (direct SFT, direct DAPO, its ablation) share the cache, so each prompt's lower layers run
    once however many of them are scored."""

    model: object
    tokenizer: object
    context: PromptContext
    trainable_layers: int
    cache_dir: Path | None = None

    @torch.no_grad()
    def score(
        self, requests: Sequence[tuple[Sequence[str], Sequence[str]]], progress: bool = False
    ) -> list[torch.Tensor]:
        """Per request (history, candidates): the candidates' scores in the incoming order."""
        self.model.eval()
        split = self.split
        prompts = [direct_prompt(self.tokenizer, history, candidates, self.context) for history, candidates in requests]
        lowers = cached_lower_states(split, [list(p.token_ids) for p in prompts], self.cache_dir)
        pairs = tqdm(zip(prompts, lowers, strict=True), total=len(prompts), desc="top layers", disable=not progress)
        return [prompt.incoming_order(split.label_scores(lower, prompt)) for prompt, lower in pairs]

    @cached_property
    def split(self) -> FrozenLowerLayers:
        head_ids = head_token_ids(self.tokenizer, self.context.config)
        return FrozenLowerLayers(self.model, self.trainable_layers, head_ids, exact=True)
