"""The semantic-ID map: item id <-> a tuple of codes, and the token spelling of a SID."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

SID_BEGIN = "<|sid_begin|>"
SID_END = "<|sid_end|>"


def level_letter(level: int) -> str:
    return string.ascii_lowercase[level]


def code_token(level: int, code: int) -> str:
    """The vocabulary token of one code at one level, e.g. level 0 code 12 -> '<s_a_12>'."""
    return f"<s_{level_letter(level)}_{code}>"


def sid_text(codes: tuple[int, ...]) -> str:
    return SID_BEGIN + "".join(code_token(level, code) for level, code in enumerate(codes)) + SID_END


@dataclass
class SidMap:
    """Item id -> codes (one per level), and back. Every item's codes are unique."""

    levels: int
    codebook_size: int
    codes: dict[str, tuple[int, ...]]

    def __post_init__(self) -> None:
        self._items_by_codes = {codes: item for item, codes in self.codes.items()}
        if len(self._items_by_codes) != len(self.codes):
            raise ValueError("SidMap: two items share one SID; every SID must name exactly one item")

    def text(self, item_id: str) -> str:
        return sid_text(self.codes[item_id])

    def item_for(self, codes: tuple[int, ...]) -> str | None:
        return self._items_by_codes.get(tuple(codes))

    def vocabulary(self) -> list[str]:
        """Tokens to add to an LLM: begin/end markers and one token per code per level."""
        codes = [code_token(level, code) for level in range(self.levels) for code in range(self.codebook_size)]
        return [SID_BEGIN, SID_END, *codes]

    def to_json(self) -> dict:
        return {
            "levels": self.levels,
            "codebook_size": self.codebook_size,
            "codes": {item: list(codes) for item, codes in self.codes.items()},
        }

    @classmethod
    def from_json(cls, payload: dict) -> SidMap:
        return cls(
            levels=int(payload["levels"]),
            codebook_size=int(payload["codebook_size"]),
            codes={item: tuple(int(c) for c in codes) for item, codes in payload["codes"].items()},
        )

    def save(self, path: str | Path) -> None:
        from gr2.storage.atomic import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> SidMap:
        return cls.from_json(json.loads(Path(path).read_text()))
