"""Prefix trie over the SIDs of the whole catalogue, for constrained decoding.

Built from the full SidMap (never from a split), so decoding can produce every catalogue item and
nothing else. JSON form: {"levels": L, "codebook_size": C, "root": {"12": {"3": {"7": {"200": "item"}}}}}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gr2.sid.sidmap import SidMap
from gr2.storage.atomic import write_text_atomic

Node = dict  # code -> Node, or code -> item id at the last level


@dataclass
class PrefixTrie:
    levels: int
    codebook_size: int
    root: Node

    @classmethod
    def from_sid_map(cls, sid_map: SidMap) -> PrefixTrie:
        root: Node = {}
        for item, codes in sid_map.codes.items():
            node = root
            for code in codes[:-1]:
                node = node.setdefault(code, {})
            node[codes[-1]] = item
        return cls(sid_map.levels, sid_map.codebook_size, root)

    def allowed_next(self, prefix: Sequence[int]) -> list[int]:
        """Codes that can follow a partial SID; [] after a full SID or an unknown prefix."""
        node = self.root
        for code in prefix:
            node = node.get(code) if isinstance(node, dict) else None
            if node is None:
                return []
        return sorted(node) if isinstance(node, dict) else []

    def to_json(self) -> dict:
        def encode(node: Node) -> dict:
            return {str(code): child if isinstance(child, str) else encode(child) for code, child in node.items()}

        return {"levels": self.levels, "codebook_size": self.codebook_size, "root": encode(self.root)}

    @classmethod
    def from_json(cls, payload: dict) -> PrefixTrie:
        def decode(node: dict) -> Node:
            return {int(code): child if isinstance(child, str) else decode(child) for code, child in node.items()}

        return cls(int(payload["levels"]), int(payload["codebook_size"]), decode(payload["root"]))

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> PrefixTrie:
        return cls.from_json(json.loads(Path(path).read_text()))
