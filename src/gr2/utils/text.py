"""Text helpers."""

import re


def slug(text: str) -> str:
    """Lower-case words joined by underscores: a metric-safe name for a free-text reason."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
