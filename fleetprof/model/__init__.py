"""Canonical profile model and its vectorised operations (see ``profile.py`` for the tables)."""

from fleetprof.model.hashing import ROOT_ID, frame_id, labels_id, mix, mix_scalar, series_id
from fleetprof.model.merge import empty_profile, merge, select_type
from fleetprof.model.profile import (
    Expanded,
    Profile,
    Stacks,
    ValueType,
    build,
    expand,
    from_tables,
    rebuild,
)
from fleetprof.model.tree import node_values

__all__ = [
    "ROOT_ID", "Expanded", "Profile", "Stacks", "ValueType", "build", "empty_profile", "expand",
    "frame_id", "from_tables", "labels_id", "merge", "mix", "mix_scalar", "node_values", "rebuild",
    "select_type", "series_id",
]
