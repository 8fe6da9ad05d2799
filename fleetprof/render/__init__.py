"""Renderers: flamebearer JSON, tree JSON, SVG and HTML flame graphs (and their diffs).

All of them read a :class:`~fleetprof.model.Profile` through the shared vectorised layout
in :mod:`fleetprof.render.layout`. The names below are imported on first access (PEP 562),
so importing one renderer's module does not load the others (nor polars, which the
profile-model renderers need but the SVG of a plain call tree does not).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetprof.render.flamebearer import diff_flamebearer, to_flamebearer
    from fleetprof.render.html import render_html
    from fleetprof.render.svg import render_diff_svg, render_svg
    from fleetprof.render.tree_json import to_tree

_HOMES = {
    "diff_flamebearer": "fleetprof.render.flamebearer",
    "to_flamebearer": "fleetprof.render.flamebearer",
    "render_html": "fleetprof.render.html",
    "render_diff_svg": "fleetprof.render.svg",
    "render_svg": "fleetprof.render.svg",
    "to_tree": "fleetprof.render.tree_json",
}

__all__ = ["diff_flamebearer", "render_diff_svg", "render_html", "render_svg", "to_flamebearer", "to_tree"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
