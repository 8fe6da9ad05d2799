"""Graphviz DOT text of a profile's call graph (what ``/pyroscope/render?format=dot``
answers, as ``pprof -dot`` draws it).

Contract of :func:`render_dot` for value column ``type_index``:

* one node per function name, labelled ``name``, ``flat`` and ``cum`` with their shares of
  the total (flat/cum as :func:`fleetprof.model.top.top` computes them by function);
* one edge ``caller -> callee`` per distinct caller/callee pair of the call tree, weighted
  by the value flowing through it (the totals of the call-tree nodes of that pair);
* only the ``max_nodes`` functions with the largest ``cum`` (ties: larger flat, then name)
  and the edges between them are drawn;
* every name is escaped for a DOT double-quoted string; a profile without samples (total
  0) is the empty string, as Pyroscope answers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fleetprof.model.profile import Profile, frame_lookup
from fleetprof.model.top import top
from fleetprof.model.tree import node_values
from fleetprof.render.units import format_value

DEFAULT_MAX_NODES = 100


def dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string (backslashes, quotes, line breaks escaped)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{out}"'


def _edges(profile: Profile, type_index: int) -> pl.DataFrame:
    """``caller, callee, weight`` summed over the call tree's non-root nodes."""
    nv = node_values(profile, type_index)
    if nv.height == 0:
        return pl.DataFrame(schema={"caller": pl.Utf8, "callee": pl.Utf8, "weight": pl.Int64})
    names = frame_lookup(profile, nv["frame_id"].to_numpy())
    tab = nv.select("node_id", "parent_id", "total").with_columns(pl.Series("callee", names.astype(str), dtype=pl.Utf8))
    parents = tab.select(pl.col("node_id").alias("parent_id"), pl.col("callee").alias("caller"))
    return (
        tab.join(parents, on="parent_id", how="inner")
        .group_by("caller", "callee")
        .agg(pl.col("total").sum().alias("weight"))
        .filter(pl.col("weight") != 0)
    )


def render_dot(profile: Profile, type_index: int = 0, *, max_nodes: int = DEFAULT_MAX_NODES, title: str = "profile") -> str:
    """DOT text of ``profile`` (module contract)."""
    grand = int(profile.totals()[type_index]) if profile.sample_types else 0
    if grand == 0:
        return ""
    unit = profile.sample_types[type_index].unit
    funcs = (
        top(profile, type_index, by="function")
        .group_by("name").agg(pl.col("self").sum(), pl.col("total").max())
        .sort(["total", "self", "name"], descending=[True, True, False])
        .head(max(1, max_nodes))
    )
    ids = {name: f"N{i + 1}" for i, name in enumerate(funcs["name"].to_list())}
    lines = [f"digraph {dot_quote(title)} {{", 'node [style=filled fillcolor="#f8f8f8" shape=box fontname="sans-serif"];']
    legend = dot_quote(title + "\ntotal " + format_value(grand, unit))
    lines.append(f"legend [shape=note label={legend}];")
    for name, flat, cum in funcs.select("name", "self", "total").iter_rows():
        label = (f"{name}\n{format_value(flat, unit)} ({100 * flat / grand:.2f}%)\n"
                 f"of {format_value(cum, unit)} ({100 * cum / grand:.2f}%)")
        size = 8 + int(16 * np.sqrt(flat / grand))
        lines.append(f"{ids[name]} [label={dot_quote(label)} fontsize={size} tooltip={dot_quote(name)}];")
    edges = _edges(profile, type_index).filter(pl.col("caller").is_in(list(ids)) & pl.col("callee").is_in(list(ids)))
    for caller, callee, weight in edges.sort("weight", descending=True).iter_rows():
        width = 1 + 4 * weight / grand
        lines.append(f"{ids[caller]} -> {ids[callee]} [label={dot_quote(' ' + format_value(weight, unit))} "
                     f"weight={max(1, int(100 * weight / grand))} penwidth={width:.2f}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
