"""The text of an item that the sentence encoder embeds."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from gr2.data.schema import Item

FIELD_LABELS = {
    "title": "Title",
    "brand": "Brand",
    "categories": "Categories",
    "description": "Description",
    "text_id": "Keywords",
}

_WHITESPACE = re.compile(r"\s+")


def clean_text(value: str) -> str:
    """HTML entities unescaped and whitespace collapsed ('Bath &amp;  Body' -> 'Bath & Body')."""
    return _WHITESPACE.sub(" ", html.unescape(value)).strip()


def field_value(item: Item, field: str) -> str:
    raw = item.category_path if field == "categories" else getattr(item, field)
    return clean_text(raw) if raw else ""


def item_text(item: Item, fields: Sequence[str]) -> str:
    """The labelled text of the fields the item has, e.g. 'Title: X; Brand: Y'; '' when it has none."""
    parts = [f"{FIELD_LABELS[field]}: {value}" for field in fields if (value := field_value(item, field))]
    return "; ".join(parts)
