"""The depth order of a table's layers (input to output)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def layer_order(table: pd.DataFrame, manifest: dict[str, Any] | None = None) -> list[str]:
    """Layers of ``table`` in model order: the job's listed order when the results manifest has
    one, else natural order (``layer.2`` before ``layer.10``)."""
    import pandas as pd

    present = [str(v) for v in pd.unique(table["layer"])]
    listed = ((manifest or {}).get("spec") or {}).get("layers")
    if isinstance(listed, list):
        names = [v if isinstance(v, str) else v.get("name") for v in listed]
        ordered = [n for n in names if n in present]
        return ordered + sorted(set(present) - set(ordered), key=_natural_key)
    return sorted(present, key=_natural_key)
