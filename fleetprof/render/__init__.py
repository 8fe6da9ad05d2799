"""Renderers: flamebearer JSON, tree JSON, SVG and HTML flame graphs (and their diffs).

All of them read a :class:`~fleetprof.model.Profile` through the shared vectorised layout
in :mod:`fleetprof.render.layout`.
"""

from fleetprof.render.flamebearer import diff_flamebearer, to_flamebearer
from fleetprof.render.tree_json import to_tree

__all__ = ["diff_flamebearer", "to_flamebearer", "to_tree"]
