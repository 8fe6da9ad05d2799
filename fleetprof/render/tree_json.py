"""Nested tree JSON of one value column.

Shape: ``{"name": "total", "file": "", "self": S, "total": T, "unit": U,
"sample_type": TYPE, "children": [{"name", "file", "self", "total", "children"}, ...]}``.
Frames stay distinct by (name, file); children are sorted by name; nodes with a zero
total are omitted; ``max_nodes`` folds small siblings into ``"other"`` (Pyroscope's rule)
so every total stays exact. The JSON text is built column-wise (no per-node Python) and
parsed once.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl

from fleetprof.model.profile import Profile
from fleetprof.render.layout import Layout, profile_layout


def _quoted(strings: np.ndarray) -> np.ndarray:
    """JSON string literal of every entry (one json.dumps per unique string)."""
    return np.array([json.dumps(str(s), ensure_ascii=False) for s in strings], dtype=object)


def tree_json_text(lay: Layout, *, unit: str, sample_type: str) -> str:
    """The tree JSON document of ``lay`` as text (see module docstring)."""
    qn = _quoted(lay.names)[lay.name]
    qf = _quoted(lay.files)[lay.file]
    qf[0] = '""'
    depth = lay.depth
    nxt = np.concatenate([depth[1:], [-1]])
    closes = depth - nxt + 1  # closes before the next row (or at the end)
    closes[nxt == depth + 1] = 0
    closes[-1] = depth[-1] + 1
    sep = np.where((nxt >= 0) & (closes > 0), ",", "")
    df = pl.DataFrame(
        {
            "n": qn.astype(str), "f": qf.astype(str),
            "s": lay.self[:, 0], "t": lay.total[:, 0], "c": closes, "sep": sep,
        }
    )
    head = pl.lit(f'{{"unit":{json.dumps(unit)},"sample_type":{json.dumps(sample_type)},"name":')
    text = df.with_row_index("i").select(
        pl.concat_str(
            [
                pl.when(pl.col("i") == 0).then(head).otherwise(pl.lit('{"name":')),
                pl.col("n"), pl.lit(',"file":'), pl.col("f"),
                pl.lit(',"self":'), pl.col("s").cast(pl.Utf8),
                pl.lit(',"total":'), pl.col("t").cast(pl.Utf8),
                pl.lit(',"children":['),
                pl.lit("]}").repeat_by(pl.col("c")).list.join(""),
                pl.col("sep"),
            ]
        )
    ).to_series()
    return "".join(text.to_list())


def to_tree(profile: Profile, type_index: int, *, max_nodes: int | None = None) -> dict[str, Any]:
    """Tree JSON (as a dict) of value column ``type_index`` of ``profile``."""
    lay = profile_layout(profile, type_index, max_nodes=max_nodes, by_name=False)
    st = profile.sample_types[type_index]
    return json.loads(tree_json_text(lay, unit=st.unit, sample_type=st.type))
