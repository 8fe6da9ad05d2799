"""Renderers: flamebearer JSON, tree JSON, SVG and HTML flame graphs (and their diffs).

All of them read a :class:`~fleetprof.model.Profile` through the shared vectorised layout
in :mod:`fleetprof.render.layout`.
"""

from fleetprof.render.flamebearer import diff_flamebearer, to_flamebearer
from fleetprof.render.html import render_html
from fleetprof.render.svg import render_diff_svg, render_svg
from fleetprof.render.tree_json import to_tree

__all__ = ["diff_flamebearer", "render_diff_svg", "render_html", "render_svg", "to_flamebearer", "to_tree"]
